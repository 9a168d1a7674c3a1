"""Cold-start proxy: how long a fresh process takes to import each handler module.

Each sample is one new ``python -I`` process that times ``import <module>`` and prints the
wall-clock and CPU seconds; the interpreter's own start-up is excluded. The environment is
minimal (PATH plus what a function is configured with), so nothing from the developer's
shell changes what gets imported. CPU time is shown beside wall time because it barely moves
when other work competes for the machine's cores, while wall time does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from bench.report import Section, fmt_ms, median
from runtime.settings import FUNCTION_ENVIRONMENT

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_MODULE = "boto3"
# A WebSocket route handler's import may cost at most this many times `import boto3` in CPU.
CPU_RATIO_TARGET = 1.3
SUBPROCESS_TIMEOUT_S = 60.0
# What the Lambda Python runtime brings, with bytecode: the standard library and boto3's closure.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# The handlers every listener's first requests go through.
UNCOMPILED_MODULES = ("runtime.handlers.connect", "runtime.handlers.join_session")

HASH_KEY_PARAMETER = "/session-management-bench/ip-hash-key"
# What a deployed function's environment holds (values are placeholders: nothing connects).
FUNCTION_ENV = {
    "STAGE": "bench",
    "IP_HASH_KEY_PARAMETER": HASH_KEY_PARAMETER,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/bench",
    "LANG": "C.UTF-8",
    **FUNCTION_ENVIRONMENT,  # what every deployed function gets beside its settings
}

_TIMED = """\
import sys, time
sys.path.insert(0, {root!r})
{setup}
wall, cpu = time.perf_counter(), time.process_time()
{timed}
print(repr(time.perf_counter() - wall), repr(time.process_time() - cpu))
"""
_MODULES = """\
import json, sys
sys.path.insert(0, {root!r})
import {module}
print(json.dumps([[n, getattr(m, "__file__", None) or ""] for n, m in list(sys.modules.items())]))
"""
_WARM = """\
import importlib
for name in {names!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


class ImportFailed(RuntimeError):
    """The module could not be imported in a fresh process."""


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class ImportTiming:
    module: str
    samples: tuple[Sample, ...]

    @property
    def median_s(self) -> float:
        return median([s.wall_s for s in self.samples])

    @property
    def median_cpu_s(self) -> float:
        return median([s.cpu_s for s in self.samples])


def clean_env() -> dict[str, str]:
    """PATH and the function's variables, nothing else."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **FUNCTION_ENV}


def _run(
    code: str,
    what: str,
    python: str,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> str:
    result = subprocess.run(
        [python, "-I", *options, "-c", code],
        capture_output=True,
        text=True,
        env={**clean_env(), **(env or {})},
        cwd=ROOT,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportFailed(f"{what} failed: {last}")
    return result.stdout


def _timed(
    timed: str,
    what: str,
    python: str,
    *,
    setup: str = "",
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Sample:
    out = _run(_TIMED.format(root=str(ROOT), setup=setup, timed=timed), what, python, options, env)
    wall, cpu = out.strip().splitlines()[-1].split()
    return Sample(float(wall), float(cpu))


def import_sample(module: str, *, python: str = sys.executable) -> Sample:
    """Wall and CPU seconds one fresh isolated process spends importing ``module``."""
    return _timed(f"import {module}", f"import {module}", python)


def import_seconds(module: str, *, python: str = sys.executable) -> float:
    """Wall seconds one fresh isolated process spends importing ``module``."""
    return import_sample(module, python=python).wall_s


def first_clients_sample(*, python: str = sys.executable) -> Sample:
    """After a handler's imports: creating the DynamoDB client (with EMF, the only one a
    request-path function needs besides @connections)."""
    return _timed(
        "aws.dynamodb()",
        "creating the boto3 clients",
        python,
        setup="import runtime.handlers.join_session\nfrom runtime import aws",
    )


@contextmanager
def parameter_store() -> Iterator[str]:
    """A local moto server holding the stack's HMAC key parameter; its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "ssm",
            endpoint_url=endpoint,
            region_name=FUNCTION_ENV["AWS_REGION"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).put_parameter(Name=HASH_KEY_PARAMETER, Value="bench-hmac-key", Type="SecureString")
        yield endpoint
    finally:
        server.stop()


def hash_key_samples(endpoint: str, *, python: str = sys.executable) -> tuple[Sample, Sample]:
    """After a handler's imports, reading the HMAC key: (creating the SSM client + the
    GetParameter call, the GetParameter call alone), against a local Parameter Store."""
    env = {"AWS_ENDPOINT_URL": endpoint}
    setup = "import runtime.handlers.join_session\nfrom runtime import aws, hash_key"
    both = _timed("hash_key.ip_hash_key()", "reading the key", python, setup=setup, env=env)
    call = _timed(
        "hash_key.ip_hash_key()",
        "reading the key",
        python,
        setup=setup + "\naws.ssm()",
        env=env,
    )
    return both, call


def provided_modules(module: str, *, python: str = sys.executable) -> list[str]:
    """The modules ``module`` imports that the Lambda runtime provides (stdlib, boto3 & co)."""
    out = _run(
        _MODULES.format(root=str(ROOT), module=module), f"listing {module}'s imports", python
    )
    stdlib = sysconfig.get_paths()["stdlib"]
    names = []
    for name, path in json.loads(out):
        in_stdlib = path.startswith(stdlib) and "site-packages" not in path
        if in_stdlib or not path or name.split(".")[0] in LAMBDA_PROVIDED:
            names.append(name)
    return names


def uncompiled_import_sample(
    module: str, provided: list[str], *, python: str = sys.executable
) -> Sample:
    """Import ``module`` when only ``provided`` modules have bytecode; the rest compiles.

    A fresh ``-X pycache_prefix`` directory gets bytecode for the provided modules only; the
    timed process reads it with ``-B`` (writing nothing), so whatever the archive ships is
    compiled from source, as on Lambda, where the code directory is read-only.
    """
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        cache = ("-X", f"pycache_prefix={prefix}")
        _run(_WARM.format(names=provided), "warming the provided modules", python, cache)
        return _timed(
            f"import {module}", f"import {module} without bytecode", python, options=("-B", *cache)
        )


def measure_import(
    module: str, runs: int = 5, *, python: str = sys.executable, warmup: bool = True
) -> ImportTiming:
    """``runs`` fresh-process samples (after one discarded run that warms bytecode caches)."""
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    if warmup:
        import_sample(module, python=python)
    return ImportTiming(module, tuple(import_sample(module, python=python) for _ in range(runs)))


def measure_imports(
    modules: list[str], runs: int = 5, *, python: str = sys.executable
) -> dict[str, ImportTiming | ImportFailed]:
    """Interleaved samples: one warm-up pass, then ``runs`` passes over every module.

    Round-robin rather than module by module, so a burst of other work on the machine lands
    on every module alike instead of inflating one of them.
    """
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    samples: dict[str, list[Sample]] = {module: [] for module in modules}
    failed: dict[str, ImportFailed] = {}
    for attempt in range(runs + 1):
        for module in modules:
            if module in failed:
                continue
            try:
                sample = import_sample(module, python=python)
            except (ImportFailed, subprocess.TimeoutExpired) as error:
                failed[module] = ImportFailed(str(error))
                continue
            if attempt:  # the first pass only warms the bytecode caches
                samples[module].append(sample)
    return {
        module: failed.get(module) or ImportTiming(module, tuple(samples[module]))
        for module in modules
    }


def measure_uncompiled(
    module: str, runs: int = 5, *, python: str = sys.executable
) -> tuple[ImportTiming, ImportTiming]:
    """(with bytecode, compiling the archive's modules), sampled in alternation."""
    provided = provided_modules(module, python=python)
    import_sample(module, python=python)  # bytecode for the cached runs
    cached, uncompiled = [], []
    for _ in range(runs):
        cached.append(import_sample(module, python=python))
        uncompiled.append(uncompiled_import_sample(module, provided, python=python))
    return ImportTiming(module, tuple(cached)), ImportTiming(module, tuple(uncompiled))


def handler_modules() -> list[str]:
    """Every distinct handler module of the route table, in table order."""
    from runtime.routes import ROUTES

    return list(dict.fromkeys(function.module for function in ROUTES))


def websocket_modules() -> set[str]:
    """The handler modules of WebSocket routes (the ones a client's request waits for)."""
    from runtime.routes import ROUTES

    return {function.module for function in ROUTES if function.route_key}


def cpu_ratio(timing: ImportTiming, reference: ImportTiming) -> float:
    return timing.median_cpu_s / reference.median_cpu_s


def _versus(timing: ImportTiming, reference: ImportTiming) -> str:
    wall = timing.median_s / reference.median_s
    cpu = timing.median_cpu_s / reference.median_cpu_s
    return f"{wall:.2f}× boto3 · CPU {fmt_ms(timing.median_cpu_s)} ({cpu:.2f}×)"


def cold_start_section(runs: int = 5, modules: list[str] | None = None) -> Section:
    """The table section: median import time per handler, next to ``import boto3``."""
    section = Section(f"Cold-start proxy (median import time over {runs} fresh processes)")
    handlers = modules if modules is not None else handler_modules()
    timings = measure_imports([REFERENCE_MODULE, *handlers], runs)
    reference = timings[REFERENCE_MODULE]
    if isinstance(reference, ImportFailed):
        section.notes.append(f"reference import failed: {reference}")
        return section
    section.add(
        f"`import {REFERENCE_MODULE}` (reference)",
        fmt_ms(reference.median_s),
        f"1.00× · CPU {fmt_ms(reference.median_cpu_s)}",
    )
    slowest: tuple[float, str] | None = None
    routes = websocket_modules()
    for module in handlers:
        timing = timings[module]
        if isinstance(timing, ImportFailed):
            section.add(f"`import {module}`", "failed", "", "ERROR")
            section.notes.append(str(timing))
            continue
        versus = _versus(timing, reference)
        status = ""
        if module in routes:
            ratio = cpu_ratio(timing, reference)
            versus += f"; target CPU ≤ {CPU_RATIO_TARGET}×"
            status = "OK" if ratio <= CPU_RATIO_TARGET else "OVER"
        section.add(f"`import {module}`", fmt_ms(timing.median_s), versus, status)
        slowest = max(slowest or (0.0, ""), (timing.median_cpu_s, module))
    try:
        clients = ImportTiming("clients", tuple(first_clients_sample() for _ in range(runs)))
    except (ImportFailed, subprocess.TimeoutExpired) as error:
        section.notes.append(str(error))
    else:
        section.add(
            "then creating the DynamoDB client (first AWS call's set-up)",
            fmt_ms(clients.median_s),
            _versus(clients, reference),
        )
    try:
        with parameter_store() as endpoint:
            pairs = [hash_key_samples(endpoint) for _ in range(runs)]
    except (ImportFailed, subprocess.TimeoutExpired) as error:
        section.notes.append(str(error))
    else:
        with_client = ImportTiming("hash key", tuple(both for both, _ in pairs))
        call_only = ImportTiming("GetParameter", tuple(call for _, call in pairs))
        section.add(
            "then reading the HMAC key from SSM, once per cold start (SSM client + "
            "GetParameter, local Parameter Store)",
            fmt_ms(with_client.median_s),
            f"{_versus(with_client, reference)}; the GetParameter call alone "
            f"{fmt_ms(call_only.median_s)} (+ the network round trip to SSM on AWS)",
        )
    for module in UNCOMPILED_MODULES if modules is None else ():
        try:
            cached, uncompiled = measure_uncompiled(module, runs)
        except (ImportFailed, subprocess.TimeoutExpired) as error:
            section.notes.append(str(error))
            continue
        extra = uncompiled.median_cpu_s - cached.median_cpu_s
        section.add(
            f"`import {module}` compiling what the archive ships (it has no .pyc)",
            fmt_ms(uncompiled.median_s),
            f"{_versus(uncompiled, reference)}; CPU {extra * 1000:+.0f} ms vs with bytecode",
        )
    if slowest is not None:
        try:
            shares = importtime_by_package(slowest[1])
        except (ImportFailed, subprocess.TimeoutExpired) as error:
            section.notes.append(str(error))
        else:
            total = sum(shares.values()) or 1.0
            ranked = list(shares.items())[:5]
            top = ", ".join(f"{name} {share / total:.0%}" for name, share in ranked)
            section.add(
                f"where `{slowest[1].rsplit('.', 1)[-1]}`'s import time goes (-X importtime)",
                top,
                "share of import time, by the package our code imported",
            )
    return section


def importtime_by_package(module: str, *, python: str = sys.executable) -> dict[str, float]:
    """Seconds of import work (``-X importtime`` self time) by what brought it in."""
    result = subprocess.run(
        [
            python,
            "-I",
            "-X",
            "importtime",
            "-c",
            _TIMED.format(root=str(ROOT), setup="", timed=f"import {module}"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise ImportFailed(f"import {module} failed under -X importtime")
    return parse_importtime(result.stderr, module)


def parse_importtime(stderr: str, module: str | None = None) -> dict[str, float]:
    """``-X importtime`` output → seconds of self time by what brought it in, largest first.

    Each module's self time is charged to the first package outside ``runtime`` on its import
    chain (so asyncio imported by loguru counts as loguru); the service's own modules, and
    only they, count as ``runtime``. Only the tree of ``module`` (the last top-level import
    when None) is read, so interpreter start-up is left out.
    """
    entries: list[tuple[int, int, str]] = []  # (self µs, depth, name), in output order
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split(":", 1)[1].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        raw = fields[2][1:]  # one space after the bar, then two per nesting level
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        entries.append((int(fields[0]), depth, raw.strip()))
    roots = [i for i, (_, depth, name) in enumerate(entries) if depth == 0]
    roots = [i for i in roots if module is None or entries[i][2] == module]
    if not roots:
        return {}
    root = roots[-1]
    first = root
    while first > 0 and entries[first - 1][1] > 0:
        first -= 1
    totals: dict[str, float] = {}
    chain: list[str] = []
    for self_us, depth, name in reversed(entries[first : root + 1]):  # pre-order
        del chain[depth:]
        chain.append(name)
        owner = next((n for n in chain[1:] if n.split(".")[0] != "runtime"), "runtime")
        key = owner.split(".")[0]
        totals[key] = totals.get(key, 0.0) + self_us / 1e6
    return dict(sorted(totals.items(), key=lambda item: item[1], reverse=True))
