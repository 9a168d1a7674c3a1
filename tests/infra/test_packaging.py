"""The Lambda archive: contents for the target platform, determinism, caching, importability.

These tests install wheels with uv (PyPI on a cold cache, uv's cache afterwards); the
archives they build for the real targets live in ``build/lambda`` like the program's, so
repeated runs are cache hits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from components import packaging
from components.packaging import LAMBDA_TARGET, Target, build_lambda_archive
from runtime.routes import ROUTES
from runtime.settings import parse_settings
from runtime.tables import TABLES
from tests.infra.harness import ROOT

# ELF e_machine values.
EM_AARCH64 = 183
EM_X86_64 = 62
THIS_MACHINE = Target(python_platform="x86_64-manylinux2014", python_version="3.11")


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return int.from_bytes(data[18:20], "little")


@pytest.fixture(scope="module")
def lambda_archive() -> packaging.LambdaArchive:
    return build_lambda_archive(LAMBDA_TARGET)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the project's packaging inputs (the work tree may change meanwhile)."""
    project = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "runtime", project / "runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    return project


def runtime_files() -> dict[str, bytes]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_bytes()
        for path in (ROOT / "runtime").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_archive_holds_runtime_and_its_dependencies_for_arm64(lambda_archive):
    with zipfile.ZipFile(lambda_archive.path) as archive:
        names = archive.namelist()
        for name, content in runtime_files().items():
            assert archive.read(name) == content, name
        tops = {n.split("/")[0] for n in names}
        assert {"runtime", "jwt", "loguru", "cryptography", "cffi"} <= tops
        # boto3 and what only it needs are the Lambda runtime's.
        assert not tops & {"boto3", "botocore", "s3transfer", "jmespath", "dateutil"}
        assert "bin" not in tops
        rust = archive.read("cryptography/hazmat/bindings/_rust.abi3.so")
        assert elf_machine(rust) == EM_AARCH64
        cffi = [n for n in names if re.fullmatch(r"_cffi_backend\.cpython-312-.*\.so", n)]
        assert cffi == ["_cffi_backend.cpython-312-aarch64-linux-gnu.so"]
        assert elf_machine(archive.read(cffi[0])) == EM_AARCH64


def test_archive_entries_are_deterministic(lambda_archive):
    with zipfile.ZipFile(lambda_archive.path) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_pinned_requirements_come_from_the_lock_file_without_boto3():
    requirements = packaging.pinned_requirements()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\n]+)", requirements, re.MULTILINE))
    assert {"cryptography", "pyjwt", "loguru", "cffi"} <= set(pins)
    assert not set(pins) & {"boto3", "botocore", "s3transfer"}
    lock = (ROOT / "uv.lock").read_text()
    for name, version in pins.items():
        assert f'name = "{name}"\nversion = "{version}"' in lock, name


def test_same_inputs_build_a_byte_identical_archive(snapshot, tmp_path):
    first = build_lambda_archive(LAMBDA_TARGET, root=snapshot, build_dir=tmp_path / "a")
    second = build_lambda_archive(LAMBDA_TARGET, root=snapshot, build_dir=tmp_path / "b")
    assert not first.cache_hit and not second.cache_hit
    assert first.path.name == second.path.name
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()


def test_second_build_is_an_offline_cache_hit(snapshot, tmp_path, monkeypatch):
    built = build_lambda_archive(LAMBDA_TARGET, root=snapshot, build_dir=tmp_path)
    assert not built.cache_hit

    def no_install(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a warm cache must not install anything")

    monkeypatch.setattr(packaging, "_install_dependencies", no_install)
    monkeypatch.setenv("UV_OFFLINE", "1")
    again = build_lambda_archive(LAMBDA_TARGET, root=snapshot, build_dir=tmp_path)
    assert again.cache_hit and again.dependencies_cache_hit
    assert (again.path, again.sha256) == (built.path, built.sha256)
    assert again.source_code_hash == built.source_code_hash


def test_a_runtime_change_rebuilds_the_archive_but_not_the_dependencies(
    snapshot, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    shutil.copytree(snapshot, project)
    build_dir = tmp_path / "build"
    before = build_lambda_archive(LAMBDA_TARGET, root=project, build_dir=build_dir)

    monkeypatch.setattr(
        packaging, "_install_dependencies", lambda *a, **k: pytest.fail("reinstalled")
    )
    (project / "runtime" / "routes.py").write_text(
        (project / "runtime" / "routes.py").read_text() + "\n# changed\n"
    )
    after = build_lambda_archive(LAMBDA_TARGET, root=project, build_dir=build_dir)
    assert after.dependencies_cache_hit and not after.cache_hit
    assert after.sha256 != before.sha256


def provided_by_lambda(dest: Path) -> Path:
    """boto3 and its dependency closure, linked from this venv (Lambda provides them)."""
    dest.mkdir()
    pending, seen = ["boto3"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith(".dist-info") or top == ".." or top == "__pycache__":
                continue
            target = dest / top
            if not target.exists():
                target.symlink_to(Path(str(dist.locate_file(top))))
    return dest


IMPORT_CHECK = """
import importlib, json, sys
sys.path[:0] = sys.argv[1:3]
modules = json.loads(sys.argv[3])
for module in modules:
    importlib.import_module(module)
import cryptography, jwt, loguru, _cffi_backend, boto3
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
token = jwt.encode({"sub": "speaker"}, key, algorithm="RS256")
assert jwt.decode(token, key.public_key(), algorithms=["RS256"])["sub"] == "speaker"
print(json.dumps({
    "handlers": [m for m in modules if m in sys.modules],
    "files": {m.__name__: m.__file__ for m in (cryptography, jwt, loguru, _cffi_backend, boto3)},
    "site": [p for p in sys.path if "site-packages" in p],
}))
"""


def test_an_archive_for_this_machine_imports_every_handler_in_isolation(tmp_path):
    archive = build_lambda_archive(THIS_MACHINE)
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(archive.path) as zipped:
        zipped.extractall(unpacked)
    boto = provided_by_lambda(tmp_path / "provided")
    modules = sorted({function.module for function in ROUTES})
    settings = parse_settings("dev", {})
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **settings.runtime_environment(),
        **{table.env: table.physical_name("dev") for table in TABLES},
        "CONNECTIONS_ENDPOINT": "https://example.execute-api.eu-west-1.amazonaws.com/dev",
        "IP_HASH_KEY_PARAMETER": "/session-management-dev/ip-hash-key",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            IMPORT_CHECK,
            str(unpacked),
            str(boto),
            json.dumps(modules),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["handlers"] == modules
    assert report["site"] == []  # nothing from this venv's site-packages …
    for name in ("cryptography", "jwt", "loguru", "_cffi_backend"):
        assert report["files"][name].startswith(str(unpacked)), name  # … all from the archive
    assert report["files"]["boto3"].startswith(str(boto))
