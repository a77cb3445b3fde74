"""``run_audit``: the whole pipeline for one configuration, into one resumable run directory.

config -> data -> pool -> signals -> attacks -> metrics -> analysis -> results/report.
Every stage reuses what a previous, interrupted run of the same configuration finished.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from miaudit import failpoints
from miaudit.pipeline.attack import default_attacks, run_attacks, utility
from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits
from miaudit.pipeline.data import split_data
from miaudit.pipeline.members import make_executor, release_context
from miaudit.io import save_npz, write_json, write_text
from miaudit.pipeline.pool import PoolInputs, member_done, membership_design, resolve_device
from miaudit.pipeline.members import train_pool
from miaudit.progress import NullProgress, Progress, StageTimer
from miaudit.provenance import machine, package_versions
from miaudit.report.roc import write_roc_figure
from miaudit.report.summary import format_summary
from miaudit.results import results_document
from miaudit.rundir import RunDir, locked, prepare_run_dir
from miaudit.pipeline.members import compute_signals
from miaudit.threads import choose_threads
from miaudit.training.dp import dp_summary

log = logging.getLogger(__name__)


def train_units(sidecars: list[dict], trained_before: set[int]) -> list[dict]:
    """How the pool trained, one entry per unit (a batched group or one member), for ``timing.json``.

    ``wall_s`` is the unit's own wall time (a batched group's, not a share); ``this_run`` is
    False for members an earlier, perhaps interrupted, invocation trained (other load, threads).
    """
    units: dict[tuple[int, ...], dict] = {}
    for s in sidecars:
        members = tuple((s.get("trained_with") or {}).get("batched") or [s.get("member")])
        unit = units.setdefault(members, {"members": list(members), "wall_s": 0.0, "threads": s.get("threads"),
                                          "batched": len(members) > 1,
                                          "this_run": s.get("member") not in trained_before})
        unit["wall_s"] += float(s.get("wall_s") or 0.0)
    return list(units.values())


def run_audit(
    config: RunConfig, out: Path | str, *, force: bool = False, progress: Progress | None = None
) -> dict:
    """Train (or reuse) the pool, compute signals, run the attacks and write the run directory.

    Returns the content of ``results.json``.
    """
    if config.target is not None:  # one model trained outside miaudit (miaudit.pipeline.target)
        from miaudit.pipeline.target import run_target_audit

        return run_target_audit(config, out, force=force, progress=progress)
    progress = progress or NullProgress()
    timer = StageTimer()
    with timer("data", progress):  # bad data or splits fail here, before the run directory is touched
        data = split_data(config)
    rd = prepare_run_dir(Path(out), config.pool_fingerprint(), force=force)
    with locked(rd):
        return _run(config, rd, progress, data, timer)


def _run(config: RunConfig, rd: RunDir, progress: Progress, data: tuple[Dataset, Splits], timer: StageTimer) -> dict:
    # runtime.threads (auto: the usable cores other work leaves idle); recorded in run.json and timing.json
    thread_choice = choose_threads(config.runtime.threads, workers=config.runtime.workers)
    torch.set_num_threads(thread_choice.threads)
    log.info("threads: %s", thread_choice.reason)
    device = resolve_device(config.runtime.device)
    write_text(rd.resolved_config, config.to_yaml())
    write_json(rd.manifest, {
        "pool_fingerprint": config.pool_fingerprint(),
        "seed": config.seed,
        "versions": package_versions(),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "thread_choice": thread_choice.as_dict(),
        "device": str(device),
    })

    dataset, splits = data
    save_npz(rd.splits, **splits.as_dict(), audit_ids=dataset.ids[splits.audit])
    failpoints.hit("after-data")

    # where pool members train and infer (runtime.workers, runtime.batched); shared by both stages
    executor = make_executor(config, input_shape=dataset.input_shape, n_classes=dataset.n_classes, progress=progress,
                             threads=thread_choice)
    try:
        fp = config.pool_fingerprint()
        trained_before = {m for m in range(config.pool.n_models) if member_done(rd, m, fp)}
        with timer("training", progress):
            in_mask = membership_design(config.pool.n_models, len(splits.audit), config.seed)
            inputs = PoolInputs.build(config, dataset, splits, in_mask)
            sidecars = train_pool(inputs, rd, device=device, progress=progress, executor=executor)
        failpoints.hit("after-training")

        with timer("signals", progress):
            signals = compute_signals(config, dataset, splits, in_mask, rd, device=device, progress=progress,
                                      executor=executor)
        failpoints.hit("after-signals")
    finally:
        executor.close()
        release_context()

    names = config.audit.attacks if config.audit.attacks is not None else default_attacks(signals.is_image)
    if "qmia" in names:  # it models the records' features
        signals = dataclasses.replace(signals, features=dataset.x[splits.audit],
                                      population_features=dataset.x[splits.population])
    with timer("attacks", progress):
        attack_run = run_attacks(signals, config.audit, seed=config.seed, scores_dir=rd.scores, progress=progress)
        from miaudit.pipeline.signals import queries_mismatch

        mismatch = queries_mismatch(config, dataset.kind == "image")
        if mismatch:  # queries the models never trained on (issue 14): said in results, summary and report
            attack_run.warnings.insert(0, mismatch)
            progress.info(mismatch)
    failpoints.hit("after-attacks")

    vulnerability = None
    if config.analysis.vulnerability and attack_run.results:
        with timer("analysis", progress):  # which records leak, and why (miaudit.vulnerability)
            from miaudit.pipeline.analysis import analyze_run

            vulnerability = analyze_run(rd.root, config, progress, targets=attack_run.targets,
                                        attacks=list(attack_run.results), dataset=dataset, splits=splits)
        failpoints.hit("after-analysis")

    defences, defences_timing = None, None
    if config.defences:
        with timer("defences", progress):  # inference-time defences vs three attackers (miaudit.defences)
            from miaudit.pipeline.defences import evaluate_defences

            defences, defences_timing = evaluate_defences(signals, config, progress=progress)

    with timer("report", progress):
        results = results_document(
            config=config.model_dump(mode="json"),
            pool_fingerprint=config.pool_fingerprint(),
            seed=config.seed,
            versions=package_versions(),
            data={
                "name": dataset.name,
                "kind": dataset.kind,
                "n_records": len(dataset),
                "n_classes": dataset.n_classes,
                "input_shape": list(dataset.input_shape),
                "splits": splits.sizes(),
            },
            pool={
                "n_models": config.pool.n_models,
                "targets": attack_run.targets,
                "epochs_run": [s["epochs_run"] for s in sidecars],
            },
            utility=utility(signals, attack_run.targets),
            attacks=attack_run.results,
            skipped_attacks=attack_run.skipped,
            warnings=attack_run.warnings,
        )
        if vulnerability is not None:
            results["vulnerability"] = vulnerability
        if defences is not None:
            results["defences"] = defences
        if (dp := dp_summary(sidecars)) is not None:
            results["pool"]["dp"] = dp  # ε per model (DP-SGD recipe)
        failpoints.hit("before-results")
        write_json(rd.results, results)
        write_text(rd.summary, format_summary(results))
        if attack_run.roc:
            write_roc_figure(rd.roc_figure, attack_run.roc, attack_run.results)

    timing = {"stages_s": timer.seconds, "total_s": time.perf_counter() - timer.started, "attacks_s": attack_run.seconds,
              # per member; a member of a batched group holds its share (group wall ÷ members): see train_units
              "members_train_s": [s.get("wall_s") for s in sidecars],
              "train_units": train_units(sidecars, trained_before),
              "runtime": {"threads": torch.get_num_threads(), "workers": config.runtime.workers,
                          "threads_per_member": getattr(executor, "threads", None) or torch.get_num_threads(),
                          "executor": type(executor).__name__, "batched": getattr(executor, "batched", False)}}
    if defences_timing:
        timing["defences"] = defences_timing  # fit and per-query cost of each inference-time defence
    write_json(rd.timing, timing)
    # report.html / report.md: a view of the files above, never required for the results to be complete
    from miaudit.report.render import try_write_report

    try_write_report(rd.root)
    return results
