"""The code's layout keeps the dependency rule of docs/architecture.md, read from the imports.

Every ``import`` and ``from … import`` in a module counts, wherever it is (inside a function
or under ``TYPE_CHECKING`` too): a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "components", "local", "client", "bench")
PULUMI = ("pulumi", "pulumi_aws", "pulumi_random")

# What each top-level package must never import (docs/architecture.md, "the rule").
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runtime": ("components", "local", "client", "bench", *PULUMI),
    "components": ("local", "client", "bench"),
    "local": ("components", "bench", *PULUMI),
    "client": ("local", "components", "bench", *PULUMI),
}

# Inside local/: what each subpackage may import from the rest of local/ (a name allows the
# module or package and everything under it). Anything else of local/ — another subpackage,
# the stack's wiring (local.stack, local.__main__, local.process, local.control,
# local.tokens) — is refused. A new subpackage must be added here with its rule.
LOCAL_ALLOWED: dict[str, tuple[str, ...]] = {
    "local.common": (),
    "local.aws": ("local.common",),
    "local.functions": ("local.common", "local.config", "local.aws", "local.drills.faults"),
    "local.gateway": ("local.common", "local.aws", "local.functions"),
    "local.monitoring": (
        "local.common",
        "local.config",
        "local.aws",
        "local.functions",
        "local.gateway",
        "local.drills.faults",
    ),
    "local.drills": ("local.common",),
}
# The drills use a stack only through its HTTP routes: the runner's modules import nothing
# of local/ but each other.
HTTP_ONLY = ("local.drills.runner", "local.drills.scenarios", "local.drills.base")
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 450
SIZE_CHECKED = ("local", "client", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(*packages: str) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield _module_name(path), path


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(name: str, path: Path) -> set[str]:
    """The modules ``path`` imports (``from a import b`` is ``a.b`` when b is a module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _unit(module: str) -> str:
    """The dependency unit a module belongs to: a local/ subpackage, a top-level module of
    local/, or a top-level package (client, runtime, …)."""
    parts = module.split(".")
    if parts[0] == "local" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


GRAPH = {name: imports_of(name, path) for name, path in _modules(*PACKAGES)}


def test_the_import_graph_is_read():
    assert "local.stack" in GRAPH["local.__main__"]
    assert "local.common.console" in GRAPH["local.stack"]  # ``from local.common import console``
    assert "runtime.routes" in GRAPH["local.gateway.websocket"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_dependency_rule_between_top_level_packages(package):
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _within(module, package)
        for target in targets
        for forbidden in FORBIDDEN[package]
        if _within(target, forbidden)
    )
    assert not broken, broken


def test_every_subpackage_of_local_has_a_rule_and_a_docstring_saying_what_it_must_not_import():
    subpackages = {f"local.{path.parent.name}" for path in (ROOT / "local").glob("*/__init__.py")}
    assert subpackages == set(LOCAL_ALLOWED)
    for name in subpackages:
        doc = ast.get_docstring(
            ast.parse((ROOT / name.replace(".", "/") / "__init__.py").read_text())
        )
        assert doc and "Must not import" in doc, name


@pytest.mark.parametrize("subpackage", sorted(LOCAL_ALLOWED))
def test_each_subpackage_of_local_imports_only_what_its_rule_allows(subpackage):
    allowed = (subpackage, *LOCAL_ALLOWED[subpackage])
    broken = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _within(module, subpackage)
        for target in targets
        if _within(target, "local") and not any(_within(target, a) for a in allowed)
    )
    assert not broken, broken


def test_the_gateway_never_imports_the_monitoring_and_the_drill_runner_only_http():
    # Spelled out, though the rules above imply it: these two are what the layout is for.
    for module, targets in GRAPH.items():
        if _within(module, "local.gateway"):
            assert not any(_within(t, "local.monitoring") for t in targets), module
    for module in HTTP_ONLY:
        assert not [t for t in GRAPH[module] if _within(t, "local") and t not in HTTP_ONLY], module


def test_no_import_cycle_between_subpackages_or_packages():
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        for target in targets:
            if _unit(target) in {_unit(m) for m in GRAPH} and _unit(target) != _unit(module):
                edges.setdefault(_unit(module), set()).add(_unit(target))
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = "open"
        for after in sorted(edges.get(unit, ())):
            if state.get(after) == "open":
                cycles.append([*path[path.index(after) :], after])
            elif after not in state:
                visit(after, [*path, after])
        state[unit] = "done"

    for unit in sorted(edges):
        if unit not in state:
            visit(unit, [unit])
    assert edges["local.stack"], "the graph has edges"
    assert not cycles, cycles


def test_local_has_at_most_8_modules_at_its_top_level():
    top = sorted(path.name for path in (ROOT / "local").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("package", SIZE_CHECKED)
def test_no_module_is_over_450_lines(package):
    long = sorted(
        f"{path.relative_to(ROOT)}: {lines} lines"
        for _, path in _modules(package)
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    )
    assert not long, long


@pytest.mark.parametrize("doc", ["docs/architecture.md", "docs/local.md"])
def test_the_docs_show_every_subpackage_and_the_client(doc):
    text = (ROOT / doc).read_text()
    for name in (*LOCAL_ALLOWED, "client"):
        assert f"{name.replace('.', '/')}/" in text, (doc, name)
