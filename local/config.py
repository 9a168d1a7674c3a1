"""Stack configuration for the local stack, read the way ``pulumi up`` reads it.

Precedence, lowest first: the project's ``config:`` block in ``Pulumi.yaml`` (``default`` or
``value`` of each key), then ``Pulumi.<stack>.yaml`` (``session-management:key: value``), then
``--set KEY=VALUE``. Project keys are validated by ``runtime.settings.parse_settings``, the same
model the Pulumi program uses; ``aws:region`` picks the region; other keys the AWS provider
reads are accepted and ignored, and any other ``aws:`` key is rejected by name, as ``pulumi up``
rejects it.
Encrypted (``secure:``) values cannot be decrypted without Pulumi, so they are skipped with a
note and the setting keeps its default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runtime.settings import PROJECT, SettingsError, StackSettings, check_aws_keys, parse_settings

DEFAULT_REGION = "us-east-1"
REGION_KEY = "aws:region"
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ConfigError(SettingsError):
    """The stack config cannot be read (bad YAML, bad ``--set``, bad stack name)."""


@dataclass(frozen=True)
class LocalConfig:
    """Validated settings of one stack plus what the local stack needs besides them."""

    settings: StackSettings
    region: str
    # Human notes for stderr: missing files, ignored secure values, overridden keys.
    notes: tuple[str, ...] = ()
    # Where the values came from, for the startup banner.
    sources: tuple[str, ...] = ()

    @property
    def stack(self) -> str:
        return self.settings.stack


def load_config(
    stack: str,
    overrides: Iterable[str] = (),
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LocalConfig:
    """Read ``Pulumi.yaml`` + ``Pulumi.<stack>.yaml`` under ``root`` and apply ``--set`` values.

    Raises ``SettingsError`` (or its subclass ``ConfigError``) with a message naming the key.
    """
    if not _STACK_NAME.match(stack):
        raise ConfigError(
            f"stack name {stack!r} is not valid: use letters, digits, '-', '_' or '.'"
        )
    root = root or project_root()
    environ = os.environ if environ is None else environ
    notes: list[str] = []
    sources: list[str] = []
    raw: dict[str, Any] = {}
    # Which file each project key was last read from (None: --set), for the error messages.
    origins: dict[str, Path | None] = {}
    region: str | None = None

    project_file = _first_existing(root, ("Pulumi.yaml", "Pulumi.yml"))
    project: dict[str, Any] = {}
    if project_file is None:
        notes.append(f"no Pulumi.yaml in {root}: using the settings model's defaults")
    else:
        project = _read_yaml(project_file)
        sources.append(project_file.name)
    namespace = str(project.get("name") or PROJECT)

    for key, spec in _mapping(project.get("config"), project_file).items():
        value = _project_value(spec)
        if value is _ABSENT:
            continue
        region = _apply(raw, namespace, str(key), value, region, notes, project_file)
        origins[str(key).rpartition(":")[2]] = project_file

    config_dir = root / str(project.get("stackConfigDir") or ".")
    stack_file = _first_existing(config_dir, (f"Pulumi.{stack}.yaml", f"Pulumi.{stack}.yml"))
    if stack_file is None:
        notes.append(f"no Pulumi.{stack}.yaml: stack '{stack}' uses the project defaults")
    else:
        sources.append(stack_file.name)
        stack_doc = _read_yaml(stack_file)
        for key, value in _mapping(stack_doc.get("config"), stack_file).items():
            if isinstance(value, Mapping) and "secure" in value:
                notes.append(
                    f"ignored encrypted value of {key} in {stack_file.name} "
                    "(secure values cannot be decrypted locally; the default applies)"
                )
                continue
            region = _apply(raw, namespace, str(key), value, region, notes, stack_file)
            origins[str(key).rpartition(":")[2]] = stack_file

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        region = _apply(raw, namespace, key.strip(), value, region, notes, None)
        origins[key.strip().rpartition(":")[2]] = None
        sources.append(f"--set {key.strip()}")

    try:
        settings = parse_settings(stack, raw)
    except SettingsError as error:  # name the file the bad value was read from
        raise type(error)(_from_files(str(error), namespace, origins, root)) from None
    region = (
        region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    )
    return LocalConfig(settings=settings, region=region, notes=tuple(notes), sources=tuple(sources))


def project_root() -> Path:
    """The directory holding ``Pulumi.yaml``: the repository root (parent of ``local/``)."""
    return Path(__file__).resolve().parent.parent


class _Absent:
    pass


_ABSENT: Any = _Absent()


def _project_value(spec: Any) -> Any:
    """A project-level config entry: a plain value, ``{value: …}`` or a schema with ``default``."""
    if isinstance(spec, Mapping):
        if "value" in spec:
            return spec["value"]
        if "default" in spec:
            return spec["default"]
        return _ABSENT  # declared without a default: the model's default applies
    return spec


def _apply(
    raw: dict[str, Any],
    namespace: str,
    key: str,
    value: Any,
    region: str | None,
    notes: list[str],
    source: Path | None,
) -> str | None:
    """Put one config entry into ``raw`` (project keys) or return the new region."""
    ns, _, name = key.rpartition(":")
    if key == REGION_KEY:
        return str(value) if value not in (None, "") else region
    if ns in ("", namespace, PROJECT):
        raw[name] = value
        return region
    if ns == "aws":
        try:
            check_aws_keys([name])  # a typo such as aws:regon is refused, not ignored
        except SettingsError as error:
            raise SettingsError(f"{source.name}: {error}" if source else str(error)) from None
        return region  # a provider setting with no local meaning
    if ns == "pulumi":
        return region  # engine settings with no local meaning
    where = source.name if source else "--set"
    notes.append(f"ignored {key} from {where}: not a {namespace} key")
    return region


def _from_files(
    message: str, namespace: str, origins: Mapping[str, Path | None], root: Path
) -> str:
    """``message`` led by the file(s) that set the keys it names (none for ``--set`` keys)."""
    files = []
    for key, origin in origins.items():
        prefixes = f"(?:{re.escape(namespace)}|{PROJECT})"
        named = re.search(rf"{prefixes}:{re.escape(key)}(?!\w)", message)
        if origin is not None and named:
            where = origin.relative_to(root) if origin.is_relative_to(root) else origin
            if str(where) not in files:
                files.append(str(where))
    return f"{', '.join(files)}: {message}" if files else message


def _mapping(value: Any, source: Path | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        name = source.name if source else "config"
        raise ConfigError(f"{name}: 'config' must be a mapping of keys to values")
    return dict(value)


def _first_existing(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        path = directory / name
        if path.is_file():
            return path
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path.name}: {error}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path.name} must be a YAML mapping")
    return doc
