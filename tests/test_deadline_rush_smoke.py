"""The deadline-rush benchmark (benchmarks/deadline_rush.py) at a tiny size, so that it cannot rot:
three people open their invitations and file a whole report with a photo, back to back, against
the real `ccn-bot run` process on SQLite through the stand-in Bot API. The bot runs *uncapped*
(the benchmark's own variant: its rate limiter's caps lifted, everything else as shipped): its
three people answer at once, and as shipped each of their ~15 steps after the fourth waited about
a second for the chat's pace, which the benchmark measures and this test does not."""

from __future__ import annotations

from benchmarks.deadline_rush import Target, run


async def test_three_people_file_their_reports_through_the_real_bot() -> None:
    result = await run([Target("uncapped", "sqlite", "saturation", 3)])

    assert result["problems"] == []
    (measured,) = result["runs"]
    assert measured["errors"]["total"] == 0, measured
    assert measured["people_finished"] == 3
    assert measured["reports_stored"] == 3 and measured["photos_stored"] == 3
    assert measured["updates"] >= 3 * 14  # invitation, /baocao, every question, photo, submit
    assert measured["latency_ms"]["p50"] is not None and measured["updates_per_s"] > 0
    assert measured["sql_commits_per_update"] > 0 and measured["cpu_s_per_update"] > 0
    assert measured["peak_rss_mb"] > 0
    # a slow window can be told from a machine that stalled: the hypervisor's share beside each
    assert all("steal_pct" in window for window in measured["latency_by_window"])
    assert measured["sql_connections_opened"] >= 0
