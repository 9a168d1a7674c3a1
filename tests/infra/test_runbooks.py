"""docs/runbooks.md and the alarms stay one to one, and every alarm links its section.

A section is a heading that is exactly one code span (``## `server-errors` ``): GitHub gives
it the anchor ``server-errors``, the alarm's ``runbook_anchor``. The alarms' descriptions are
read from the program run under Pulumi mocks, so what CloudWatch is given is what is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.monitoring import QUERIES
from runtime import dashboard
from runtime.alarms import (
    ALARMS,
    DESCRIPTION_MAX,
    FUNCTION_ERRORS,
    RUNBOOK_LEAD,
    runbook_anchor,
    stack_alarms,
)
from runtime.routes import ROUTES
from runtime.settings import BY_KEY, PROJECT, SettingsError, parse_settings
from tests.infra.harness import PROD_OPERATOR, ROOT, ProgramRun, run_program
from tests.infra.test_program import settings_of

RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PARTS = (
    "What it means for users.",
    "First look",
    "Likely causes",
    "What to do",
    "Rehearse",
)
# The parts a function's own section needs; the family section above it holds the rest.
FUNCTION_PARTS = ("What it means for users.", "Rehearse.")
_HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)
_SECTION = re.compile(r"^`([a-z0-9-]+)`$")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(document: str) -> dict[str, str]:
    """Each heading's anchor → its text up to the next heading."""
    found: dict[str, str] = {}
    heads = list(_HEADING.finditer(document))
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(document)
        anchor = github_anchor(head.group(2))
        assert anchor not in found, f"two headings with the anchor {anchor}"
        found[anchor] = document[head.end() : end]
    return found


def alarm_sections(document: str) -> dict[str, str]:
    return {
        match.group(1): text
        for head in _HEADING.finditer(document)
        if (match := _SECTION.match(head.group(2)))
        for text in [sections(document)[github_anchor(head.group(2))]]
    }


def every_anchor() -> set[str]:
    return {runbook_anchor(spec.slug) for spec in ALARMS} | {
        runbook_anchor(FUNCTION_ERRORS.slug, f.name) for f in ROUTES
    }


@pytest.fixture(scope="module")
def document() -> str:
    return RUNBOOKS.read_text()


def test_every_alarm_has_a_section_and_every_section_an_alarm(document: str):
    settings = parse_settings("dev", {})
    names = [f"{PROJECT}-dev-{f.name}" for f in ROUTES]
    alarms = stack_alarms(settings, names)
    linked = sorted(a.runbook.split("#", 1)[1] for a in alarms)
    assert len(set(linked)) == len(alarms), "two alarms share a runbook section"
    assert sorted(alarm_sections(document)) == linked == sorted(every_anchor())


def test_each_section_says_what_it_means_where_to_look_and_how_to_rehearse(document: str):
    found = alarm_sections(document)
    family = sections(document)[github_anchor("Function errors: `<function>-errors`")]
    for anchor, text in found.items():
        is_function = anchor in {runbook_anchor(FUNCTION_ERRORS.slug, f.name) for f in ROUTES}
        for part in FUNCTION_PARTS if is_function else PARTS:
            assert f"**{part}" in text, f"{anchor}: no '{part}'"
        if is_function:
            continue
        assert "python -m local drill" in text, f"{anchor}: no drill to rehearse it"
    for part in ("First look", "Likely causes", "What to do", "Rehearse"):
        assert f"**{part}" in family, f"function errors: no '{part}'"


def test_first_looks_name_real_widgets_and_saved_queries(document: str):
    titles = {w.title for w in dashboard.WIDGETS}
    family = sections(document)[github_anchor("Function errors: `<function>-errors`")]
    looks = [text for text in alarm_sections(document).values() if "**First look" in text]
    for text in [*looks, family]:
        look = text.split("**First look", 1)[1].split("**Likely causes", 1)[0]
        widgets = re.findall(r'"([^"]+)"', look)
        assert widgets, look
        named = [w for w in widgets if w in titles]
        assert named, f"no dashboard widget named in: {look}"
        queries = re.findall(r"session-management-<stack>/([a-z-]+)", look)
        assert queries, f"no saved query named in: {look}"
        assert set(queries) <= set(QUERIES), queries
    # Every quoted widget of the whole document exists.
    for quoted in re.findall(r'widget "([^"]+)"', document):
        assert quoted in titles, quoted


@pytest.mark.parametrize(
    "overrides",
    [{}, {"runbookBaseUrl": "https://github.com/example/sessions/blob/main/docs/runbooks.md"}],
    ids=["default", "web-address"],
)
def test_every_deployed_alarm_description_ends_with_its_runbook_address(overrides):
    run = run_program("dev", overrides)
    settings = settings_of(run)
    alarms = run.of_type(ALARM)
    assert len(alarms) == len(ALARMS) + len(ROUTES)
    anchors = set()
    for alarm in alarms:
        description = alarm["alarmDescription"]
        assert len(description) <= DESCRIPTION_MAX
        lead, _, address = description.rpartition(RUNBOOK_LEAD)
        assert lead, description
        base, _, anchor = address.partition("#")
        assert base == settings.runbookBaseUrl
        anchors.add(anchor)
    assert anchors == every_anchor()


def test_the_longest_runbook_address_still_fits_in_1024_characters():
    base = "https://runbooks.example.com/" + "x" * (900 - len("https://runbooks.example.com/"))
    run: ProgramRun = run_program("prod", {**PROD_OPERATOR, "runbookBaseUrl": base})
    for alarm in run.of_type(ALARM):
        description = alarm["alarmDescription"]
        assert len(description) <= DESCRIPTION_MAX, alarm["name"]
        assert description.split(RUNBOOK_LEAD)[-1].startswith(base + "#")


@pytest.mark.parametrize("bad", ["docs/runbooks.md#x", "two words", "x" * 901])
def test_a_runbook_address_that_cannot_be_linked_is_refused(bad: str):
    with pytest.raises(SettingsError, match="runbookBaseUrl"):
        parse_settings("dev", {"runbookBaseUrl": bad})


def test_the_default_runbook_address_is_this_file():
    default = BY_KEY["runbookBaseUrl"].default
    assert (ROOT / default).resolve() == Path(RUNBOOKS).resolve()
