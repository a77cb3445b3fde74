"""Executors: members grouped into units, a worker's error raised, workers that outlive no parent.
That serial, batched and parallel training write the same members: integration/test_pool_training.py."""

import pytest

from miaudit.pipeline.executors import ProcessExecutor, plan_units
from miaudit.pipeline.members import MemberJob, run_members
from miaudit.rundir import prepare_run_dir


#: the workers here run one thread each: this process does the same arithmetic
pytestmark = pytest.mark.usefixtures("one_thread_fresh_context")


def test_plan_units_groups_evenly_and_keeps_every_member():
    assert plan_units([], batched=True, group_size=4) == []
    assert plan_units(range(10), batched=True, group_size=4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert plan_units([5, 7], batched=True, group_size=8, workers=4) == [[5], [7]]
    assert plan_units(range(3), batched=False, group_size=8, workers=2) == [[0], [1], [2]]


@pytest.mark.slow
def test_process_executor_raises_a_worker_error(tiny_config, tmp_path):
    rd = prepare_run_dir(tmp_path / "run", tiny_config)
    job = MemberJob.create(tiny_config, rd, device="cpu", train=True)
    bad = MemberJob(**{**job.__dict__, "fingerprint": "0" * 16})
    with ProcessExecutor(1, threads=1, work=run_members) as ex, pytest.raises(RuntimeError, match="fingerprint"):
        ex.run([0], bad)


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """A SIGKILLed run must not leave spawned workers waiting forever (holding their data)."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from miaudit.pipeline.executors import ProcessExecutor, _ready\n"
        "from miaudit.pipeline.members import run_members\n"
        "ex = ProcessExecutor(2, 1, work=run_members)\n"
        "ex.start()\n"
        "print(' '.join(str(p) for p in set(ex._get_pool().map(_ready, range(8)))), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids, "no worker started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in pids if _alive(p)]
    assert alive == [], f"workers {alive} outlived their parent"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
