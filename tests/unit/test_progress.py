"""Progress: an overall estimate from finished members and epochs; plain lines for logs."""

from __future__ import annotations

from miaudit.progress import BarClock, LineProgress, NestedBars, format_seconds, unit_weight


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_eta_from_average_pace_not_a_recent_window():
    now = Clock()
    bar = BarClock(8, now=now)
    now.t += 200  # a member that takes 200 s (a window-based estimate would show nothing)
    bar.advance(1)
    assert bar.eta() == 1400  # 7 more at 200 s each
    now.t += 100
    bar.advance(1)
    assert bar.eta() == 900  # 300 s for 2 -> 150 s each, 6 left


def test_reused_work_does_not_speed_up_the_estimate():
    now = Clock()
    bar = BarClock(8, now=now)
    bar.advance(4)  # reported as the bar opens: members finished by an earlier run
    assert bar.eta() is None
    now.t += 60
    bar.advance(1)
    assert bar.eta() == 180  # 60 s per member for the 3 left, not 12 s


def test_epochs_of_the_running_member_move_the_pool_estimate():
    now = Clock()
    bars = NestedBars(now)
    pool = bars.open("pool", 4)
    member = bars.open("member 1/4", 20)
    now.t += 50
    member.advance(5)
    bars.advanced()
    assert pool.completed == 0.25 and pool.eta() == 750  # a quarter member in 50 s -> 200 s per member
    bars.close(member)
    assert pool.partial == 0.0
    assert unit_weight("members 1, 2, 3/8 (batched)") == 3 and unit_weight("signals") == 1


def test_line_progress_writes_a_line_per_finished_member_with_the_pool_estimate():
    now, lines = Clock(), []
    p = LineProgress(lines.append, now=now)
    p.stage("training")
    with p.bar("pool", 3) as advance_pool:
        for m in range(3):
            with p.bar(f"member {m + 1}/3", 2) as advance:
                now.t += 10
                advance(1)
                now.t += 10
                advance(1)
            advance_pool(1)
    assert lines[0] == "[0:00] training\n"
    assert lines[1] == "[0:20] member 1/3 done in 0:20; pool 1/3, 0:20 elapsed, about 0:40 left\n"
    assert lines[3] == "[1:00] member 3/3 done in 0:20; pool 3/3, 1:00 elapsed\n"
    assert len(lines) == 4  # no per-epoch lines, no duplicate summary


def test_line_progress_throttles_fast_bars_and_summarises_them():
    now, lines = Clock(), []
    p = LineProgress(lines.append, every_s=10, now=now)
    with p.bar("attacks", 100) as advance:
        for _ in range(100):
            now.t += 0.5
            advance(1)
    assert 1 <= len(lines) <= 6
    assert lines[-1].startswith("[0:50] attacks") and "100/100" in lines[-1]
    assert sum("100/100" in line for line in lines) == 1  # the summary is not repeated


def test_format_seconds():
    assert format_seconds(None) == "?" and format_seconds(65) == "1:05" and format_seconds(3725) == "1:02:05"
