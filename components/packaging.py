"""The Lambda deployment archive: ``runtime/`` plus its third-party dependencies.

One archive serves every function (they share the code and differ only in handler, memory
and timeout). A layer was considered and rejected: the whole archive is a few MB, far below
Lambda's limits, and a single versioned unit means the code and the dependencies it was
tested with can never drift apart (no layer-version bookkeeping, no partial updates).

How the archive is built:

1. The pinned requirements come from ``uv.lock`` (``uv export --frozen --offline``), minus
   boto3 and whatever only boto3 needs (``--prune boto3``): the Lambda runtime provides it.
2. They are installed for the functions' platform — ``aarch64-manylinux2014``, CPython 3.12,
   wheels only — into ``build/lambda/deps-<key>/`` with ``uv pip install --target``, where
   ``<key>`` hashes (requirements, platform, Python version, format version). That directory
   is the dependency cache: the same lock and platform never reinstall anything.
3. The archive ``build/lambda/<target>-<key>.zip`` is keyed by the dependency key plus a hash
   of every file under ``runtime/``. A cache hit returns it untouched; otherwise it is written
   deterministically (sorted entries, fixed timestamps and permissions, no ``__pycache__``),
   so the same inputs always give a byte-identical archive and ``pulumi up`` shows no diff.

With a warm cache nothing touches the network: ``uv export --offline`` reads the lock file
and a cache hit skips the install.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGE = "runtime"
# Bump when the layout or the zip format changes, so stale caches are not reused.
FORMAT_VERSION = "1"
# Provided by the Lambda Python runtime; pruned (with its exclusive dependencies).
PROVIDED_BY_LAMBDA = ("boto3",)
# Fixed metadata of every zip entry: the earliest timestamp a zip can hold, rw-r--r--.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644
_EXCLUDED_DIRS = {"__pycache__"}
# Console scripts that ``pip install --target`` puts beside the packages: not importable.
_EXCLUDED_TOP_LEVEL = {"bin"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_KEPT_ARCHIVES = 3


class PackagingError(RuntimeError):
    """The archive could not be built (no uv, no network on a cold cache, bad lock file)."""


@dataclass(frozen=True)
class Target:
    """A platform the dependencies are installed for."""

    python_platform: str  # uv's --python-platform
    python_version: str

    @property
    def slug(self) -> str:
        return f"{self.python_platform}-py{self.python_version}"


# The functions run on arm64 (Graviton) with the Python 3.12 runtime.
LAMBDA_TARGET = Target(python_platform="aarch64-manylinux2014", python_version="3.12")


@dataclass(frozen=True)
class LambdaArchive:
    """A built archive and what identifies it."""

    path: Path
    sha256: str
    target: Target
    cache_hit: bool
    dependencies_cache_hit: bool

    @property
    def source_code_hash(self) -> str:
        """base64(sha256) of the zip, the form Lambda reports as ``CodeSha256``."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


def uv_command() -> list[str]:
    """How to run uv: ``$UV`` (set by ``uv run``), uv on PATH, or ``python -m uv``."""
    from_env = os.environ.get("UV")
    if from_env and Path(from_env).exists():
        return [from_env]
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    if importlib.util.find_spec("uv") is None:
        raise PackagingError("uv is needed to build the Lambda archive: pip install uv")
    return [sys.executable, "-m", "uv"]


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        args, cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PackagingError(
            f"{' '.join(args[:3])} … failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def pinned_requirements(root: Path = ROOT) -> str:
    """The runtime's third-party requirements, pinned by ``uv.lock``, without boto3."""
    args = [
        *uv_command(),
        "export",
        "--frozen",
        "--offline",
        "--no-default-groups",
        "--no-emit-project",
        "--no-hashes",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements.txt",
    ]
    for package in PROVIDED_BY_LAMBDA:
        args += ["--prune", package]
    lines = [
        line.strip()
        for line in _run(args, cwd=root).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return "\n".join(sorted(lines)) + "\n"


def _runtime_files(root: Path) -> list[tuple[str, Path]]:
    """Every file of the runtime package as (archive name, path), sorted by name."""
    return sorted(_walk(root / RUNTIME_PACKAGE, RUNTIME_PACKAGE))


def _walk(directory: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for entry in directory.iterdir():
        if entry.name.startswith(".") or (entry.is_dir() and entry.name in _EXCLUDED_DIRS):
            continue
        if not prefix and entry.is_dir() and entry.name in _EXCLUDED_TOP_LEVEL:
            continue
        name = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_dir():
            yield from _walk(entry, name)
        elif entry.is_file() and not entry.name.endswith(_EXCLUDED_SUFFIXES):
            yield name, entry


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def dependencies_key(requirements: str, target: Target) -> str:
    return _digest(
        FORMAT_VERSION.encode(),
        requirements.encode(),
        target.python_platform.encode(),
        target.python_version.encode(),
    )[:20]


def archive_key(deps_key: str, runtime_files: list[tuple[str, Path]]) -> str:
    parts = [FORMAT_VERSION.encode(), deps_key.encode()]
    for name, path in runtime_files:
        parts += [name.encode(), path.read_bytes()]
    return _digest(*parts)[:20]


def _install_dependencies(requirements: str, target: Target, dest: Path, root: Path) -> None:
    """Install the pinned wheels for ``target`` into ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        requirements_file = staging / "requirements.txt"
        requirements_file.write_text(requirements)
        site = staging / "site"
        _run(
            [
                *uv_command(),
                "pip",
                "install",
                "--quiet",
                "--target",
                str(site),
                "--python-platform",
                target.python_platform,
                "--python-version",
                target.python_version,
                "--only-binary",
                ":all:",
                "--no-deps",
                "--link-mode",
                "copy",
                "--requirement",
                str(requirements_file),
            ],
            cwd=root,
        )
        try:
            site.rename(dest)
        except OSError:
            if not dest.is_dir():  # another process won the race with the same content
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_zip(entries: list[tuple[str, Path]], dest: Path) -> None:
    """Write ``entries`` deterministically, then move the zip into place atomically."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", dir=dest.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as archive:
            for name, path in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, so external_attr carries the permissions
                info.external_attr = _FILE_MODE << 16
                archive.writestr(info, path.read_bytes(), compresslevel=9)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _prune(build_dir: Path, target: Target, keep: Path) -> None:
    """Keep the newest few archives of a target; they are ~5 MB each."""
    archives = sorted(
        (p for p in build_dir.glob(f"{target.slug}-*.zip") if p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in archives[_KEPT_ARCHIVES - 1 :]:
        stale.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_lambda_archive(
    target: Target = LAMBDA_TARGET,
    root: Path = ROOT,
    build_dir: Path | None = None,
) -> LambdaArchive:
    """Build (or reuse) the archive of ``root/runtime`` and its dependencies for ``target``."""
    build_dir = build_dir or root / "build" / "lambda"
    build_dir.mkdir(parents=True, exist_ok=True)
    requirements = pinned_requirements(root)
    deps_key = dependencies_key(requirements, target)
    deps_dir = build_dir / f"deps-{target.slug}-{deps_key}"
    runtime_files = _runtime_files(root)
    if not runtime_files:
        raise PackagingError(f"no files under {root / RUNTIME_PACKAGE}")
    dest = build_dir / f"{target.slug}-{archive_key(deps_key, runtime_files)}.zip"
    deps_hit = deps_dir.is_dir()
    if dest.is_file():
        return LambdaArchive(dest, sha256_file(dest), target, True, deps_hit)
    if not deps_hit:
        _install_dependencies(requirements, target, deps_dir, root)
    dependencies = sorted(_walk(deps_dir, ""))
    clashes = {name for name, _ in dependencies if name.split("/")[0] == RUNTIME_PACKAGE}
    if clashes:
        raise PackagingError(f"a dependency ships a top-level '{RUNTIME_PACKAGE}' package")
    _write_zip(sorted([*runtime_files, *dependencies]), dest)
    _prune(build_dir, target, keep=dest)
    return LambdaArchive(dest, sha256_file(dest), target, False, deps_hit)
