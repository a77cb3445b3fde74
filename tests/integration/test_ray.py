"""The Ray executor: same members and results as the local one, retries, failure reports, resume across executors."""

import contextlib
import json
import logging
import sys
from types import SimpleNamespace

import pytest
import torch

from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError, MembersFailedError, RunDirError
from miaudit.io import load_weights
from miaudit.pipeline.data import split_data
from miaudit.pipeline.executors_ray import RayExecutor
from miaudit.pipeline.members import (
    MemberJob,
    check_visible,
    make_executor,
    release_context,
    run_members,
    train_pool,
)
from miaudit.pipeline.pool import PoolInputs, member_done, membership_design
from miaudit.pipeline.run import run_audit
from miaudit.progress import NullProgress
from miaudit.rundir import prepare_run_dir

#: one thread per model in both executors, one model per unit: byte-identical members
SAME_ARITHMETIC = ["runtime.batched=false", "pool.n_models=4"]
RAY = ["runtime.executor=ray", "runtime.ray_num_cpus=1"]


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    release_context()


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray instance with 2 CPUs for the module; the executor reuses it and leaves it running.

    Its workers inherit ``MIAUDIT_FAILPOINT=ray-task=kill-once:<marker>`` with a marker that
    exists, so the failpoint is disarmed; deleting the marker arms it for the next task.
    """
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("failpoint") / "killed-once"
    marker.touch()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIAUDIT_FAILPOINT", f"ray-task=kill-once:{marker}")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield marker
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The reference: the whole audit with the local executor, one member after another."""
    from conftest import TINY

    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("local") / "run"
    run_audit(load_config(None, [*TINY, *SAME_ARITHMETIC]), out)
    torch.set_num_threads(before)
    release_context()
    return out


class StopAfter(NullProgress):
    """Records the pool bar; with ``stop``, interrupts the run once that many members are done."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.pool_steps = stop, []

    @contextlib.contextmanager
    def bar(self, description, total):
        def advance(n=1):
            if description == "pool":
                self.pool_steps.append(n)
                if self.stop is not None and sum(self.pool_steps) >= self.stop:
                    raise KeyboardInterrupt

        yield advance


def assert_same_run(a, b, n_models=4):
    for m in range(n_models):
        wa = load_weights(a / "models" / f"member_{m:03d}.safetensors")
        wb = load_weights(b / "models" / f"member_{m:03d}.safetensors")
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (m, k)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for r in (ra, rb):
        del r["config"]["runtime"]  # how it ran, never what it found
    assert ra == rb


def pool_inputs(cfg):
    dataset, splits = split_data(cfg)
    return PoolInputs.build(cfg, dataset, splits, membership_design(cfg.pool.n_models, len(splits.audit), cfg.seed))


@pytest.mark.slow
def test_ray_writes_the_same_members_and_results_as_local(ray_local, local_run, tiny_overrides, tmp_path):
    progress = StopAfter()
    run_audit(load_config(None, [*tiny_overrides, *SAME_ARITHMETIC, *RAY]), tmp_path / "ray", progress=progress)
    assert sum(progress.pool_steps) == 4 and len(progress.pool_steps) >= 4  # one step per finished task
    assert_same_run(local_run, tmp_path / "ray")
    side = json.loads((tmp_path / "ray" / "models" / "member_000.json").read_text())
    assert side["threads"] == 1
    assert json.loads((tmp_path / "ray" / "timing.json").read_text())["runtime"]["executor"] == "RayExecutor"


@pytest.mark.slow
def test_a_killed_task_is_retried_and_a_failing_member_is_reported_by_id(
    ray_local, local_run, tiny_overrides, tmp_path
):
    cfg = load_config(None, [*tiny_overrides, *SAME_ARITHMETIC, *RAY])
    inputs = pool_inputs(cfg)
    # armed: the first task kills its worker process; Ray retries it
    marker = ray_local
    marker.unlink()
    rd = prepare_run_dir(tmp_path / "retry", cfg.pool_fingerprint())
    with make_executor(cfg, input_shape=inputs.input_shape, n_classes=inputs.n_classes) as ex:
        train_pool(inputs, rd, device=torch.device("cpu"), executor=ex)
    assert marker.is_file()  # the kill happened (and disarmed the hook again)
    for m in range(4):
        w, ref = (load_weights(d / "models" / f"member_{m:03d}.safetensors") for d in (rd.root, local_run))
        assert all(torch.equal(w[k], ref[k]) for k in ref), m

    # member 2 can never be written (a directory holds its weights' name): reported, the others kept
    cfg = load_config(None, [*tiny_overrides, *SAME_ARITHMETIC, *RAY, "runtime.ray_max_retries=1"])
    rd = prepare_run_dir(tmp_path / "fails", cfg.pool_fingerprint())
    rd.member_weights(2).mkdir(parents=True)
    with pytest.raises(MembersFailedError, match=r"member\(s\) 2 failed after 1 retries") as err:
        train_pool(inputs, rd, device=torch.device("cpu"),
                   executor=make_executor(cfg, input_shape=inputs.input_shape, n_classes=inputs.n_classes))
    assert "\n" not in str(err.value) and "miaudit only replaces files" in str(err.value)
    fp = cfg.pool_fingerprint()
    assert [member_done(rd, m, fp) for m in range(4)] == [True, True, False, True]


@pytest.mark.slow
def test_a_pool_resumes_across_executors(ray_local, local_run, tiny_overrides, tmp_path):
    local = load_config(None, [*tiny_overrides, *SAME_ARITHMETIC])
    ray_cfg = load_config(None, [*tiny_overrides, *SAME_ARITHMETIC, *RAY])
    fp = local.pool_fingerprint()
    assert ray_cfg.pool_fingerprint() == fp  # runtime.* never enters the fingerprint

    # local -> ray: interrupted after two members, finished by Ray
    out = tmp_path / "local-then-ray"
    with pytest.raises(KeyboardInterrupt):
        run_audit(local, out, progress=StopAfter(stop=2))
    assert sum(member_done(prepare_run_dir(out, local.pool_fingerprint()), m, fp) for m in range(4)) == 2
    progress = StopAfter()
    run_audit(ray_cfg, out, progress=progress)
    assert progress.pool_steps[0] == 2  # the two finished members were reused, not retrained
    assert_same_run(local_run, out)

    # ray -> local: a Ray run interrupted before training; Ray tasks train members 1 and 3,
    # the local executor the rest and the audit
    out = tmp_path / "ray-then-local"
    with pytest.raises(KeyboardInterrupt):
        run_audit(ray_cfg, out, progress=StopAfter(stop=0))
    rd = prepare_run_dir(out, ray_cfg.pool_fingerprint())
    inputs = pool_inputs(ray_cfg)
    with make_executor(ray_cfg, input_shape=inputs.input_shape, n_classes=inputs.n_classes) as ex:
        ex.run([1, 3], MemberJob.create(ray_cfg, rd, device="cpu", train=True))
    assert [member_done(rd, m, fp) for m in range(4)] == [False, True, False, True]
    run_audit(local, out)
    assert_same_run(local_run, out)


def test_executor_ray_without_ray_is_a_one_line_config_error(tiny_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    cfg = load_config(None, [*tiny_overrides, "runtime.executor=ray"])
    with pytest.raises(ConfigError, match=r'runtime.executor: ray needs Ray: pip install "miaudit\[ray\]"') as err:
        make_executor(cfg, input_shape=(60,), n_classes=5)
    assert "\n" not in str(err.value)


def test_cuda_with_ray_needs_a_gpu_per_task(tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "runtime.executor=ray", "runtime.device=cuda"])
    with pytest.raises(ConfigError, match="ray_num_gpus"):
        make_executor(cfg, input_shape=(60,), n_classes=5)


def test_files_a_task_wrote_elsewhere_are_reported(tiny_config, tmp_path):
    rd = prepare_run_dir(tmp_path / "run", tiny_config.pool_fingerprint())
    job = MemberJob.create(tiny_config, rd, device="cpu", train=True)
    with pytest.raises(RunDirError, match="every Ray node sees at the same path"):
        check_visible(job, [0, 1], wait_s=0)  # as if the tasks wrote to their own node's disk


def test_resources_no_node_has_are_refused_on_our_instance(caplog):
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}]
    fake_ray = SimpleNamespace(nodes=lambda: nodes)
    RayExecutor(work=run_members, num_cpus=2).check_feasible(fake_ray)
    ours = RayExecutor(work=run_members, num_gpus=1)
    ours._started = True  # a local instance it started: nothing will join
    with pytest.raises(ConfigError, match=r"ray_num_gpus=1: no Ray node has that much \(nodes: CPU 2, GPU 0\)"):
        ours.check_feasible(fake_ray)
    with caplog.at_level(logging.WARNING):
        RayExecutor(work=run_members, num_cpus=4).check_feasible(fake_ray)  # a cluster's autoscaler may add such a node
    assert "ray_num_cpus=4" in caplog.text
