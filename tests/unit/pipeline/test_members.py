"""Pool members: the JSON job a worker rebuilds its context from, and the batched/executor choice."""

import json

import numpy as np
import pytest

from miaudit.pipeline.configure import load_config
from miaudit.pipeline.data import split_data
from miaudit.pipeline.executors import ProcessExecutor, SerialExecutor, threads_per_worker
from miaudit.pipeline.members import MemberJob, batched_reason, make_executor, member_context, release_context
from miaudit.rundir import prepare_run_dir


#: the workers here run one thread each: this process does the same arithmetic
pytestmark = pytest.mark.usefixtures("one_thread_fresh_context")


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


def test_batched_groups_refuse_a_per_batch_schedule(tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "train.schedule_per=batch"])
    assert "schedule_per" in batched_reason(cfg, (60,), 5)
    assert batched_reason(load_config(None, tiny_overrides), (60,), 5) is None


def test_ray_executor_fails_before_training_when_it_cannot_work(tiny_overrides, monkeypatch):
    import sys

    from miaudit.errors import ConfigError

    cuda = load_config(None, [*tiny_overrides, "runtime.executor=ray", "runtime.device=cuda"])
    with pytest.raises(ConfigError, match="runtime.ray_num_gpus > 0"):
        make_executor(cuda, input_shape=(60,), n_classes=5)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` fails
    with pytest.raises(ConfigError, match=r"needs Ray: pip install \"miaudit\[ray\]\""):
        make_executor(load_config(None, [*tiny_overrides, "runtime.executor=ray"]), input_shape=(60,), n_classes=5)
