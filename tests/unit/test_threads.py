"""runtime.threads: the thread choice from faked machine facts (affinity, cgroup quota, load)."""

from __future__ import annotations

import pytest

from miaudit.pipeline.configure import load_config
from miaudit.pipeline.executors import threads_per_worker
from miaudit.pipeline.members import make_executor
from miaudit.threads import (
    _cpu_times,
    busy_cores,
    cgroup_cpu_quota,
    decide_threads,
    omp_env,
)


def test_auto_takes_only_idle_cores():
    quiet = decide_threads("auto", affinity=8, quota=None, busy=0.2, load_avg=0.2)
    assert quiet.threads == 8 and "auto" in quiet.reason
    half = decide_threads("auto", affinity=8, quota=None, busy=3.0, load_avg=3.0)
    assert half.threads == 5
    # a core counts as taken from half busy on: a barrier waits for a thread that shares one
    assert decide_threads("auto", affinity=2, quota=None, busy=0.6, load_avg=None).threads == 1
    assert decide_threads("auto", affinity=2, quota=None, busy=0.4, load_avg=None).threads == 2


def test_auto_keeps_one_thread_when_every_core_is_busy():
    c = decide_threads("auto", affinity=2, quota=None, busy=2.0, load_avg=12.0)
    assert c.threads == 1 and c.per_worker == 1
    assert c.reason.endswith("-> 1 thread")  # singular


def test_quota_caps_the_usable_cores():
    c = decide_threads("auto", affinity=16, quota=2.5, busy=0.0, load_avg=0.0)
    assert c.usable_cores == 2 and c.threads == 2 and "quota 2.5 of 16" in c.reason
    assert decide_threads("all", affinity=16, quota=0.5, busy=None, load_avg=None).threads == 1


def test_load_average_when_busy_cores_are_unknown():
    # 4 of 16 cores usable, machine load 8: a quarter of it falls on ours on average -> 2 taken
    c = decide_threads("auto", affinity=4, quota=None, busy=None, load_avg=8.0, total_cores=16)
    assert c.threads == 2 and "load average 8.0" in c.reason


def test_fixed_and_all_ignore_the_load():
    assert decide_threads(3, affinity=2, quota=None, busy=2.0, load_avg=9.0).threads == 3
    assert decide_threads("all", affinity=4, quota=None, busy=4.0, load_avg=9.0).threads == 4
    assert decide_threads(None, affinity=4, quota=None, busy=None, load_avg=None).setting == "all"


def test_user_omp_num_threads_caps_auto():
    c = decide_threads("auto", affinity=8, quota=None, busy=0.0, load_avg=0.0, env_threads=2)
    assert c.threads == 2 and "OMP_NUM_THREADS=2" in c.reason


def test_threads_split_among_workers():
    c = decide_threads("auto", affinity=8, quota=None, busy=2.0, load_avg=None, workers=3)
    assert c.threads == 6 and c.per_worker == 2 and "3 workers x 2 threads" in c.reason
    over = decide_threads("auto", affinity=2, quota=None, busy=1.0, load_avg=None, workers=4)
    assert over.per_worker == 1 and "expect contention" in over.reason
    cfg = load_config(None, ["runtime.workers=3"])
    assert threads_per_worker(cfg.runtime, c) == 2


def test_workers_get_passive_waiting_only_when_cores_are_busy(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    busy = decide_threads("auto", affinity=4, quota=None, busy=1.0, load_avg=None, workers=2)
    quiet = decide_threads("auto", affinity=4, quota=None, busy=0.0, load_avg=None, workers=2)
    assert busy.omp_wait_policy == "PASSIVE" and quiet.omp_wait_policy is None  # recorded in run.json
    assert omp_env(busy) == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert omp_env(quiet) == {"OMP_NUM_THREADS": "2"}  # spinning is faster on a quiet machine
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert "OMP_WAIT_POLICY" not in omp_env(busy)  # never over the user's setting


def test_process_executor_carries_the_choice(tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "runtime.workers=2", "runtime.threads=auto"])
    choice = decide_threads("auto", affinity=2, quota=None, busy=1.5, load_avg=None, workers=2)
    ex = make_executor(cfg, input_shape=(60,), n_classes=5, threads=choice)
    assert ex.threads == 1 and ex.env["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize(("files", "want"), [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({}, None),
])
def test_cgroup_quota_v1_and_v2(tmp_path, files, want):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("1:cpu:/\n0::/\n")
    assert cgroup_cpu_quota(tmp_path, proc) == want


def test_cgroup_v2_nested_path(tmp_path):
    (tmp_path / "user.slice" / "job").mkdir(parents=True)
    (tmp_path / "user.slice" / "job" / "cpu.max").write_text("50000 100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/user.slice/job\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 0.5


def test_cpu_times_read_busy_share(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 10 0 0 40 0 0 0 0 0 0\ncpu1 0 0 10 40 0 0 0 0 0 0\nintr 5\n")
    assert _cpu_times({0}, stat) == (10.0, 50.0)
    assert _cpu_times(None, stat) == (20.0, 100.0)
    assert busy_cores(0.0, tmp_path / "missing") is None


def test_serial_executor_retunes_auto_threads_between_units(tiny_overrides, monkeypatch):
    from miaudit.pipeline import executors

    cfg = load_config(None, [*tiny_overrides, "runtime.threads=auto"])
    auto = decide_threads("auto", affinity=2, quota=None, busy=0.0, load_avg=None)
    ex = make_executor(cfg, input_shape=(60,), n_classes=5, threads=auto)
    assert ex.retune is executors.retune_threads
    fixed = make_executor(cfg, input_shape=(60,), n_classes=5, threads=decide_threads(1, affinity=2, quota=None,
                                                                                        busy=None, load_avg=None))
    assert fixed.retune is None
    calls = []
    ex.work = lambda job, unit, progress=None: unit  # the executor runs the work it was given
    ex.retune, ex.batched = (lambda: calls.append(1)), False
    ex.run([0, 1, 2], job=None)
    assert len(calls) == 2  # before the 2nd and 3rd member, not before the first
