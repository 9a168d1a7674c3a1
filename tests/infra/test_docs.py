"""README.md (deploying, configuration) stays in step with the settings model and the program."""

from __future__ import annotations

import re

from components import config_docs
from components.monitoring import ALARMS, QUERIES
from runtime.settings import SETTINGS

DOC = config_docs.DOC


def test_config_table_is_generated_from_the_settings_model():
    document = DOC.read_text()
    assert config_docs.render(document) == document, (
        "README.md drifted from runtime/settings.py: run python -m components.config_docs"
    )
    table = document.split(config_docs.BEGIN)[1].split(config_docs.END)[0]
    for setting in SETTINGS:
        assert f"| `{setting.key}` |" in table


def test_every_stack_output_is_documented(dev):
    document = DOC.read_text()
    for name in dev.outputs:
        assert f"`{name}`" in document, name


def test_every_alarm_and_query_is_documented():
    document = DOC.read_text()
    for spec in ALARMS:
        assert f"`{spec.slug}`" in document
    for name in QUERIES:
        assert f"`{name}`" in document


def test_the_operator_commands_are_there():
    document = DOC.read_text()
    for command in (
        "pulumi stack select",
        "pulumi stack init",
        "pulumi config set --secret ipHashKey",
        "pulumi up --stack dev",
        "admin-create-user",
        "initiate-auth",
        "pulumi destroy",
    ):
        assert command in document, command


# Repository paths named in the project's prose (comments in the Pulumi files, the README…).
_PATH_IN_PROSE = re.compile(
    r"\b(?:tests|runtime|components|local|client|bench|docs)/[\w/.-]+\.(?:py|md|yaml)"
)
_PROSE = ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "README.md", "Makefile")


def test_every_file_the_docs_point_to_exists():
    root = DOC.parent
    named = {
        (source, path)
        for source in _PROSE
        for path in _PATH_IN_PROSE.findall((root / source).read_text())
    }
    assert named, "the pattern finds the paths the docs name"
    missing = sorted(f"{source}: {path}" for source, path in named if not (root / path).exists())
    assert not missing, missing
