"""The rehearsal's report and verdict (``client.rehearsal_report``) and its bench rows."""

from __future__ import annotations

from bench.rehearsal import rehearsal_section
from client.rehearsal_report import Outcome, fired_since, peak_per_second, percentile, render

T = 1_800_000_000.0


def _outcome(**changes) -> Outcome:
    o = Outcome(listeners=3, refresh_window_s=(100.0, 115.0), started_at=T, finished_at=T + 200)
    o.join_ms = [100.0, 200.0, 300.0]
    o.connects = [T + 1, T + 1.5, T + 2, T + 2.2, T + 110, T + 111, T + 112, T + 113]
    o.refresh_pushes = [T + 110, T + 111, T + 112]
    o.refreshed, o.speaker_refreshed, o.ended, o.joins_took_s = 3, True, 3, 3.0
    for key, value in changes.items():
        setattr(o, key, value)
    return o


def test_it_passes_only_with_everyone_joined_refreshed_told_and_no_alarm():
    assert _outcome().passed
    assert not _outcome(refused=["listener join RATE_LIMIT_EXCEEDED"]).passed
    assert not _outcome(alarms=["x (in ALARM)"]).passed
    assert not _outcome(ended=2).passed
    assert not _outcome(refreshed=2).passed
    assert not _outcome(speaker_refreshed=False).passed
    assert not _outcome(join_ms=[1.0, 2.0]).passed


def test_percentiles_peaks_and_the_printed_lines():
    assert percentile([100, 200, 300], 50) == 200 and percentile([], 95) == 0
    assert peak_per_second([T + 1, T + 1.5, T + 2]) == 2
    text = render(_outcome(), {"stack": "dev", "alarmTimeScale": 60}, 8080)
    assert "joined          3 of 3" in text and "refused 0" in text
    assert "p50 200 ms · p95 300 ms" in text
    assert "3 of 3 listeners, spread over 2.0 s" in text
    assert "joining 2/s, refreshing 1/s" in text
    assert "alarms fired    none" in text and "sessionEnded    3 of 3" in text
    assert text.splitlines()[-1].startswith("result: PASS")


def test_an_alarm_that_fired_during_the_rehearsal_or_is_in_alarm_is_reported():
    before = [{"name": "a", "state": "OK"}, {"name": "b", "state": "ALARM"}]
    after = [
        {"name": "a", "state": "OK", "transitions": [
            {"to": "ALARM", "at": "2027-01-15T08:00:10.000Z", "reason": "crossed"},
            {"to": "OK", "at": "2027-01-15T08:00:20.000Z"}]},
        {"name": "b", "state": "ALARM", "transitions": []},
        {"name": "c", "state": "OK", "transitions": [
            {"to": "ALARM", "at": "2020-01-01T00:00:00.000Z", "reason": "long ago"}]},
    ]  # fmt: skip
    fired = fired_since(before, after, since=1_800_000_000.0)
    assert [f.split(" ")[0] for f in fired] == ["a", "b"]
    assert "crossed" in fired[0] and "already in ALARM" in fired[1]


def test_the_bench_rows_say_ok_only_for_a_clean_event():
    good = rehearsal_section(_outcome(), ["logs kept in /tmp/x"])
    assert {row.status for row in good.rows} <= {"OK", ""}
    bad = rehearsal_section(_outcome(refused=["x"], alarms=["a (in ALARM)"], ended=1), [])
    assert sum(row.status == "FAIL" for row in bad.rows) == 3
