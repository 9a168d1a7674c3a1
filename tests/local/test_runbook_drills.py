"""Every drill docs/runbooks.md tells the on-call to run exists, and every drill is named in
the runbook section of the alarm it fires (the sections: tests/infra/test_runbooks.py)."""

from __future__ import annotations

import re

from local.drills.runner import DRILLS
from local.monitoring.webconsole.runbooks import RUNBOOKS_FILE, anchor, render

DRILL_COMMAND = re.compile(r"python -m local drill ([a-z][a-z-]*)")


def sections() -> dict[str, str]:
    text = RUNBOOKS_FILE.read_text()
    heads = list(re.finditer(r"^#{2,3} (.+)$", text, re.MULTILINE))
    return {
        anchor(h.group(1)): text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else None]
        for i, h in enumerate(heads)
    }


def test_every_drill_the_runbooks_name_exists():
    named = set(DRILL_COMMAND.findall(RUNBOOKS_FILE.read_text()))
    assert named, "the runbooks name no drill"
    assert named <= set(DRILLS), named - set(DRILLS)


def test_every_drill_is_in_the_runbook_of_the_alarm_it_fires():
    found = sections()
    for drill in DRILLS.values():
        (slug,) = drill.targets
        assert slug in found, f"{drill.name}: no runbook section {slug}"
        assert f"python -m local drill {drill.name}" in found[slug], (drill.name, slug)


def test_the_served_runbooks_page_has_every_sections_anchor():
    page = render(RUNBOOKS_FILE.read_text())
    for section in sections():
        assert f'id="{section}"' in page, section
