"""timing.json's training units and the report's training-time line (issue 16)."""

from __future__ import annotations

from miaudit.report.run_page import _train_time_text
from miaudit.pipeline.run import train_units


def _side(m: int, wall: float, threads: int, group: list[int] | None = None) -> dict:
    s = {"member": m, "wall_s": wall, "threads": threads}
    if group:
        s["trained_with"] = {"batched": group}
    return s


def test_batched_group_time_is_recorded_once_as_the_groups():
    # a group of 4 took 40 s: each sidecar holds its 10 s share
    sides = [_side(m, 10.0, 1, [0, 1, 2, 3]) for m in range(4)] + [_side(4, 7.0, 1), _side(5, 9.0, 1)]
    units = train_units(sides, trained_before=set())
    assert units[0] == {"members": [0, 1, 2, 3], "wall_s": 40.0, "threads": 1, "batched": True, "this_run": True}
    assert [u["wall_s"] for u in units[1:]] == [7.0, 9.0] and not units[1]["batched"]


def test_training_time_leaves_out_an_earlier_interrupted_invocation():
    # members 0-2 trained at 764 s under load with 2 threads before a Ctrl-C; 3-7 now at ~55 s
    sides = [_side(m, 764.0, 2) for m in range(3)] + [_side(m, 55.0, 1) for m in range(3, 8)]
    timing = {"train_units": train_units(sides, trained_before={0, 1, 2})}
    text = _train_time_text(timing, [s["wall_s"] for s in sides])
    assert text.startswith("55 s (")
    assert "764" not in text and "mean of 5 trained in the last invocation, 1 thread)" in text
    assert text.endswith("3 models reused from an earlier invocation")
    assert "1 threads" not in text


def test_training_time_of_batched_groups_says_so():
    sides = [_side(m, 10.0, 2, [0, 1, 2, 3]) for m in range(4)]
    text = _train_time_text({"train_units": train_units(sides, set())}, [10.0] * 4)
    assert "1 batched group of 4" in text and "2 threads" in text


def test_older_timing_without_units_keeps_the_plain_mean():
    assert _train_time_text({"members_train_s": [130.0, 122.0]}, [130.0, 122.0]).endswith("(mean of 2)")
