"""Stack config for the local stack: read like `pulumi up`, validated by the settings model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local.config import ConfigError, load_config, project_root
from runtime.settings import SETTINGS, SettingsError

PROJECT_YAML = """
name: session-management
runtime: python
config:
  maxActiveSessions:
    type: integer
    default: 7
  logLevel:
    type: string
    default: DEBUG
  metricsNamespace:
    type: string
    description: declared without a default
  aws:region: ap-southeast-2
  tracing: false
"""


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text))


def test_no_files_means_model_defaults(tmp_path):
    config = load_config("dev", root=tmp_path, environ={})
    assert dict(config.settings.values) == {s.key: s.default for s in SETTINGS}
    assert config.region == "us-east-1"
    assert any("Pulumi.yaml" in note for note in config.notes)


def test_precedence_project_then_stack_then_set(tmp_path):
    write(tmp_path, "Pulumi.yaml", PROJECT_YAML)
    only_project = load_config("dev", root=tmp_path, environ={})
    assert only_project.settings.maxActiveSessions == 7
    assert only_project.settings.logLevel == "DEBUG"
    assert only_project.settings.tracing is False
    assert only_project.settings.metricsNamespace == "SessionManagement"
    assert only_project.region == "ap-southeast-2"

    write(
        tmp_path,
        "Pulumi.dev.yaml",
        """
        config:
          aws:region: eu-central-1
          aws:profile: someone
          session-management:maxActiveSessions: 9
          session-management:sessionsPerHour: "12"
        """,
    )
    stack = load_config("dev", root=tmp_path, environ={})
    assert stack.settings.maxActiveSessions == 9
    assert stack.settings.sessionsPerHour == 12
    assert stack.region == "eu-central-1"
    assert stack.sources == ("Pulumi.yaml", "Pulumi.dev.yaml")

    overridden = load_config(
        "dev",
        ["maxActiveSessions=11", "session-management:logLevel=warn", "aws:region=us-west-2"],
        root=tmp_path,
        environ={},
    )
    assert overridden.settings.maxActiveSessions == 11
    assert overridden.settings.logLevel == "WARN"
    assert overridden.region == "us-west-2"


def test_secure_values_are_ignored_with_a_note(tmp_path):
    write(tmp_path, "Pulumi.yaml", PROJECT_YAML)
    write(
        tmp_path,
        "Pulumi.dev.yaml",
        """
        config:
          session-management:ipHashKey:
            secure: AAABAKDu2f3x
        """,
    )
    config = load_config("dev", root=tmp_path, environ={})
    assert config.settings.ipHashKey == ""
    assert any("ipHashKey" in note and "secure" in note for note in config.notes)


def test_plaintext_ip_hash_key_is_used(tmp_path):
    config = load_config("dev", ["ipHashKey=s3cret"], root=tmp_path, environ={})
    assert config.settings.ipHashKey == "s3cret"


def test_stack_config_dir(tmp_path):
    write(tmp_path, "Pulumi.yaml", "name: session-management\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    stack_file = "config:\n  session-management:sessionsPerHour: 3\n"
    write(tmp_path / "stacks", "Pulumi.qa.yaml", stack_file)
    assert load_config("qa", root=tmp_path, environ={}).settings.sessionsPerHour == 3


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("maxActiveSessions=0", "maxActiveSessions"),
        ("dataRetentionHours=9000", "dataRetentionHours"),
        ("logLevel=LOUD", "logLevel"),
        ("activeSessionsAlarmRatio=1.5", "activeSessionsAlarmRatio"),
        ("noSuchKey=1", "noSuchKey"),
    ],
)
def test_bad_values_name_the_key(tmp_path, override, named):
    with pytest.raises(SettingsError, match=named):
        load_config("dev", [override], root=tmp_path, environ={})


def test_bad_stack_file_value_is_rejected_naming_the_file(tmp_path):
    stack_file = "config:\n  session-management:maxListenersPerSession: lots\n"
    write(tmp_path, "Pulumi.dev.yaml", stack_file)
    with pytest.raises(SettingsError, match="maxListenersPerSession") as refused:
        load_config("dev", root=tmp_path, environ={})
    assert str(refused.value).startswith("Pulumi.dev.yaml: ")


def test_a_bad_project_default_names_pulumi_yaml_and_a_bad_set_names_no_file(tmp_path):
    write(tmp_path, "Pulumi.yaml", "name: session-management\nconfig:\n  maxActiveSessions: 0\n")
    with pytest.raises(SettingsError, match=r"^Pulumi\.yaml: .*maxActiveSessions"):
        load_config("dev", root=tmp_path, environ={})
    with pytest.raises(SettingsError) as refused:  # --set wins, and is what is wrong
        load_config("dev", ["maxActiveSessions=-1"], root=tmp_path, environ={})
    assert str(refused.value).startswith("config key")


def test_a_wrong_case_key_in_the_stack_file_gets_its_spelling_and_the_file(tmp_path):
    write(tmp_path, "Pulumi.dev.yaml", "config:\n  session-management:loglevel: DEBUG\n")
    with pytest.raises(SettingsError) as refused:
        load_config("dev", root=tmp_path, environ={})
    message = str(refused.value)
    assert message.startswith("Pulumi.dev.yaml: unknown config key(s) session-management:loglevel")
    assert "(did you mean session-management:logLevel?)" in message


def test_a_misspelt_aws_key_in_the_stack_file_names_the_file(tmp_path):
    write(tmp_path, "Pulumi.dev.yaml", "config:\n  aws:regoin: eu-west-1\n")
    with pytest.raises(SettingsError) as refused:
        load_config("dev", root=tmp_path, environ={})
    assert str(refused.value).startswith("Pulumi.dev.yaml: unknown config key(s) aws:regoin")
    assert "(did you mean aws:region?)" in str(refused.value)


def test_a_misspelt_set_key_gets_a_suggestion_on_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "local", "--port", "0", "--set", "maxListenersPerSesion=2"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "session-management:maxListenersPerSesion" in line
    assert "(did you mean session-management:maxListenersPerSession?)" in line


@pytest.mark.parametrize("override", ["noequals", "=5"])
def test_malformed_set(tmp_path, override):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("dev", [override], root=tmp_path, environ={})


def test_bad_stack_name(tmp_path):
    with pytest.raises(ConfigError, match="stack name"):
        load_config("../etc", root=tmp_path, environ={})


def test_a_protected_stack_requires_alarm_email(tmp_path):
    with pytest.raises(SettingsError, match="alarmEmail"):
        load_config("prod", ["protect=true"], root=tmp_path, environ={})
    # Protection is a setting, not the stack's name.
    assert load_config("prod", root=tmp_path, environ={}).settings.protect is False


def test_region_from_environment_when_not_configured(tmp_path):
    config = load_config("dev", root=tmp_path, environ={"AWS_REGION": "sa-east-1"})
    assert config.region == "sa-east-1"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_repository_stack_files_load(stack):
    root = project_root()
    if not (root / f"Pulumi.{stack}.yaml").exists():
        pytest.skip(f"Pulumi.{stack}.yaml not in the tree")
    config = load_config(stack, root=root, environ={})
    assert config.stack == stack
    assert config.region


def test_cli_exits_non_zero_with_the_message():
    result = subprocess.run(
        [sys.executable, "-m", "local", "--port", "0", "--set", "maxActiveSessions=0"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "maxActiveSessions" in result.stderr
    assert result.stdout == ""


def test_a_misspelt_aws_key_is_rejected_by_name_on_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "local", "--port", "0", "--set", "aws:regon=us-east-1"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert "aws:regon" in lines[0] and "(did you mean aws:region?)" in lines[0]
    assert result.stdout == ""


def test_aws_keys_the_provider_reads_are_accepted_and_others_refused(tmp_path):
    write(tmp_path, "Pulumi.dev.yaml", "config:\n  aws:profile: someone\n  aws:regon: x\n")
    with pytest.raises(SettingsError, match="aws:regon"):
        load_config("dev", root=tmp_path, environ={})
    accepted = load_config(
        "dev",
        ["aws:profile=ops", "aws:skipCredentialsValidation=true", "aws:defaultTags={}"],
        root=tmp_path / "nowhere",
        environ={},
    )
    assert accepted.region == "us-east-1"


@pytest.mark.parametrize("written", ["debug", "Debug", " DEBUG "])
def test_log_level_is_read_in_any_case(tmp_path, written):
    config = load_config("dev", [f"logLevel={written}"], root=tmp_path, environ={})
    assert config.settings.logLevel == "DEBUG"
    assert config.settings.runtime_environment()["LOG_LEVEL"] == "DEBUG"


def test_an_unknown_log_level_is_refused_naming_the_allowed_ones(tmp_path):
    with pytest.raises(SettingsError, match=r"one of DEBUG, INFO, WARN, ERROR \(any case\)"):
        load_config("dev", ["logLevel=verbose"], root=tmp_path, environ={})
