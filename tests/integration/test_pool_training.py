"""Training a pool: serial, batched and parallel executors write the same members and signals."""

import numpy as np
import pytest
import torch

from miaudit.pipeline.configure import load_config
from miaudit.io import load_weights, read_json
from miaudit.pipeline.data import split_data
from miaudit.pipeline.executors import ProcessExecutor, SerialExecutor
from miaudit.pipeline.members import compute_signals, release_context, run_members, train_pool
from miaudit.pipeline.pool import PoolInputs, membership_design
from miaudit.rundir import prepare_run_dir


#: the workers here run one thread each: this process does the same arithmetic
pytestmark = pytest.mark.usefixtures("one_thread_fresh_context")


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
