"""The refresh-wave model of docs/benchmarks.md: the spread keeps a 5,000-listener event's
refresh far under API Gateway's 500 new connections per second; without it a reconnected
audience refreshes at the quota."""

from __future__ import annotations

from bench import refresh_model as model


def test_the_spread_keeps_every_scenario_far_under_the_quota() -> None:
    for scenario in model.SCENARIOS:
        times = model.refresh_times(scenario, model.SPREAD_MINUTES)
        assert model.peak_per_second(times) < model.QUOTA_PER_S / 10
        # Everyone refreshes, within the spread (+ a heartbeat and the connect window).
        assert len(times) == model.LISTENERS
        assert max(times) - min(times) < 15 * 60 + model.HEARTBEAT_S + scenario.window_s


def test_without_the_spread_a_reconnected_audience_refreshes_at_the_quota() -> None:
    blip = next(s for s in model.SCENARIOS if s.heartbeats_in_step)
    assert model.peak_per_second(model.refresh_times(blip, 0)) >= model.QUOTA_PER_S


def test_the_section_has_a_row_per_scenario_and_spread() -> None:
    section = model.refresh_section()
    assert len(section.rows) == 2 * len(model.SCENARIOS)
    assert {row.status for row in section.rows} == {"", "OK"}
