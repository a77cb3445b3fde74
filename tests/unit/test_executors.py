"""Executors: serial, batched and parallel pool training write the same members."""

import json

import numpy as np
import pytest
import torch

from miaudit.pipeline.configure import load_config
from miaudit.io import load_weights, read_json
from miaudit.pipeline.data import split_data
from miaudit.pipeline.executors import (
    ProcessExecutor,
    SerialExecutor,
    plan_units,
    threads_per_worker,
)
from miaudit.pipeline.members import (
    MemberJob,
    batched_reason,
    compute_signals,
    make_executor,
    member_context,
    release_context,
    run_members,
    train_pool,
)
from miaudit.pipeline.pool import PoolInputs, membership_design
from miaudit.rundir import prepare_run_dir


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers below run one thread each: the same arithmetic
    yield
    torch.set_num_threads(before)
    release_context()


def train(cfg, root, executor=None, signals=False):
    rd = prepare_run_dir(root, cfg)
    dataset, splits = split_data(cfg)
    in_mask = membership_design(cfg.pool.n_models, len(splits.audit), cfg.seed)
    inputs = PoolInputs.build(cfg, dataset, splits, in_mask)
    sidecars = train_pool(inputs, rd, device=torch.device("cpu"), executor=executor)
    sig = None
    if signals:
        sig = compute_signals(cfg, dataset, splits, in_mask, rd, device=torch.device("cpu"), executor=executor)
    weights = [load_weights(rd.member_weights(m)) for m in range(cfg.pool.n_models)]
    return sidecars, weights, sig, (dataset, splits, in_mask)


def test_plan_units_groups_evenly_and_keeps_every_member():
    assert plan_units([], batched=True, group_size=4) == []
    assert plan_units(range(10), batched=True, group_size=4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert plan_units([5, 7], batched=True, group_size=8, workers=4) == [[5], [7]]
    assert plan_units(range(3), batched=False, group_size=8, workers=2) == [[0], [1], [2]]


def test_member_job_is_json_and_rebuilds_the_same_pool(tiny_config, tmp_path):
    rd = prepare_run_dir(tmp_path / "run", tiny_config)
    job = MemberJob.create(tiny_config, rd, device="cpu", train=True)
    assert json.loads(json.dumps(job.__dict__)) == job.__dict__
    release_context()
    ctx = member_context(job)  # as a fresh worker process would
    assert ctx.config.pool_fingerprint() == tiny_config.pool_fingerprint()
    ctx.ensure_data()
    dataset, splits = split_data(tiny_config)
    np.testing.assert_array_equal(ctx.inputs.audit_x.numpy(), dataset.x[splits.audit])
    release_context()
    bad = MemberJob(**{**job.__dict__, "fingerprint": "0" * 16})
    with pytest.raises(RuntimeError, match="fingerprint"):
        member_context(bad)


def test_batched_choice_follows_runtime_and_model(tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    assert batched_reason(cfg, (60,), 5) is None  # a 4k-parameter MLP
    assert "false" in batched_reason(load_config(None, [*tiny_overrides, "runtime.batched=false"]), (60,), 5)
    big = load_config(None, [*tiny_overrides, "model.name=fcn", "model.params.hidden=[1024,512,256,128]"])
    assert "parameters" in batched_reason(big, (600,), 100)  # the study's 1.3 M FCN: not in auto mode
    forced = load_config(None, [*tiny_overrides, "model.name=fcn", "model.params.hidden=[1024,512,256,128]",
                                "runtime.batched=true"])
    assert batched_reason(forced, (600,), 100) is None
    assert isinstance(make_executor(cfg, input_shape=(60,), n_classes=5), SerialExecutor)
    two = load_config(None, [*tiny_overrides, "runtime.workers=2", "runtime.threads=2"])
    assert threads_per_worker(two.runtime) == 1
    ex = make_executor(two, input_shape=(60,), n_classes=5)
    assert isinstance(ex, ProcessExecutor) and ex.batched and ex.threads == 1
    ex.close()


def test_batched_pool_matches_one_at_a_time_pool(tiny_overrides, tmp_path):
    plain_cfg = load_config(None, [*tiny_overrides, "runtime.batched=false"])
    batched_cfg = load_config(None, [*tiny_overrides, "runtime.batched=true"])
    s_plain, w_plain, _, _ = train(plain_cfg, tmp_path / "plain")
    release_context()
    s_batched, w_batched, _, _ = train(batched_cfg, tmp_path / "batched")
    assert [s["trained_with"]["batched"] for s in s_batched] == [[0, 1, 2, 3]] * 4
    assert all("trained_with" not in s for s in s_plain)
    for a, b in zip(w_plain, w_batched):
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    for sp, sb in zip(s_plain, s_batched):
        assert sb["history"][-1]["val_acc"] == pytest.approx(sp["history"][-1]["val_acc"], abs=0.02)


@pytest.mark.slow  # starts two worker processes (torch import in each)
def test_process_executor_writes_the_same_members_and_signals_as_serial(tiny_overrides, tmp_path):
    cfg = load_config(None, [*tiny_overrides, "runtime.batched=false", "pool.n_models=4"])
    _, w_serial, sig_serial, _ = train(cfg, tmp_path / "serial", executor=SerialExecutor(run_members), signals=True)
    release_context()
    with ProcessExecutor(2, threads=1, work=run_members) as ex:
        sidecars, w_proc, sig_proc, _ = train(cfg, tmp_path / "proc", executor=ex, signals=True)
    for a, b in zip(w_serial, w_proc):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    np.testing.assert_array_equal(np.asarray(sig_serial.logits), np.asarray(sig_proc.logits))
    np.testing.assert_array_equal(np.asarray(sig_serial.population_logits), np.asarray(sig_proc.population_logits))
    assert all(s["threads"] == 1 for s in sidecars)
    assert read_json(tmp_path / "proc" / "models" / "member_000.json")["pool_fingerprint"] == cfg.pool_fingerprint()


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
