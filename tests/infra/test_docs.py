"""README.md (deploying, configuration) stays in step with the settings model and the program."""

from __future__ import annotations

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
