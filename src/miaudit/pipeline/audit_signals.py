"""Audit models trained elsewhere from their signals (``miaudit audit --signals``): the attack stage,
the per-record analysis and the results of ``miaudit run``, from a signals file instead of a pool."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from miaudit.config import RunConfig
from miaudit.errors import ConfigError
from miaudit.io import sha256_file, write_json, write_text
from miaudit.pipeline.attack import AttackRun, run_attacks, utility
from miaudit.progress import NullProgress, Progress
from miaudit.results import results_document
from miaudit.signals import Signals


def audit_results(signals: Signals, config: RunConfig, attack_run: AttackRun, *, source: dict | None = None) -> dict:
    """The results.json content of an audit of ``signals`` (same layout as ``miaudit run``)."""
    from miaudit.provenance import package_versions

    m, a, n, c = signals.logits.shape
    n_pop = 0 if signals.population_labels is None or signals.population_logits is None else len(signals.population_labels)
    n_test = 0 if signals.test_labels is None or signals.test_logits is None else len(signals.test_labels)
    return results_document(
        config=config.model_dump(mode="json"),
        seed=config.seed,
        versions=package_versions(),
        source=source or {},
        data={
            "name": "signals file",
            "kind": "image" if signals.is_image else "tabular",
            "n_records": n,
            "n_classes": c,
            "n_queries": a,
            "splits": {"audit": n, "population": n_pop, "test": n_test},
        },
        pool={"n_models": m, "targets": attack_run.targets},
        utility=utility(signals, attack_run.targets),
        attacks=attack_run.results,
        skipped_attacks=attack_run.skipped,
        warnings=attack_run.warnings,
    )


def load_audit_config(path: Path | str | None, overrides: list[str], *, n_models: int) -> RunConfig:
    """A run config for auditing ``n_models`` models: as ``load_config``, with ``pool.n_models`` taken
    from the signals (when even and not set) so ``audit.targets`` is checked against the real pool."""
    from miaudit.config import apply_overrides
    from miaudit.pipeline.configure import read_yaml, validate_config

    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, list(overrides))
    pool = raw.get("pool")
    if n_models % 2 == 0 and (pool is None or (isinstance(pool, dict) and "n_models" not in pool)):
        raw.setdefault("pool", {})["n_models"] = n_models
    return validate_config(raw, source=str(path) if path is not None else "config")


def audit_signals(
    signals: Signals | Path | str,
    out: Path | str | None = None,
    config: RunConfig | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    source_path: Path | str | None = None,
) -> dict:
    """Audit models trained anywhere from their signals: the attacks, metrics, plot and results of ``run``.

    Parameters
    ----------
    signals : a ``Signals`` record, or the path of a signals ``.npz`` (``miaudit.signals.file``)
    out : run directory for results.json, summary.txt, scores/, figures/roc.png and, with
        ``analysis.vulnerability``, the per-record analysis (``vulnerable_records.csv``, ``analysis/``,
        ``figures/deciles.png``; see ``pipeline.analysis.analyze_signals``); None = attacks only, nothing written
    config : only ``seed``, ``audit`` and ``analysis`` are used (default: the defaults; see ``load_audit_config``)
    source_path : the file ``signals`` was read from, recorded with its SHA-256 in results.json

    Returns
    -------
    The content of results.json.
    """
    from miaudit.signals.file import load_signals_file

    progress = progress or NullProgress()
    total_start = time.perf_counter()
    if not isinstance(signals, Signals):
        source_path = Path(signals)
        signals = load_signals_file(source_path)
    config = config or load_audit_config(None, [], n_models=signals.n_models)
    signals = _with_queries(signals, config.audit.queries)
    source = {"signals": str(source_path), "sha256": sha256_file(source_path)} if source_path is not None else {}
    fingerprint = "signals:" + (source.get("sha256") or _array_fingerprint(signals))
    if out is None:
        attack_run = run_attacks(signals, config.audit, seed=config.seed, progress=progress)
        return audit_results(signals, config, attack_run, source=source)

    from miaudit.provenance import machine, package_versions
    from miaudit.report.roc import write_roc_figure
    from miaudit.report.summary import format_summary
    from miaudit.rundir import locked, prepare_run_dir

    root = Path(out)
    rd = prepare_run_dir(root, fingerprint, force=force, holds="another run or the audit of other signals",
                         then="replace it")
    with locked(rd):
        write_text(rd.resolved_config, config.to_yaml())
        write_json(rd.manifest, {
            "pool_fingerprint": fingerprint, "kind": "audit", "source": source, "seed": config.seed,
            "versions": package_versions(), "machine": machine(),
        })
        progress.stage("attacks")
        start = time.perf_counter()
        attack_run = run_attacks(signals, config.audit, seed=config.seed, scores_dir=rd.scores, progress=progress)
        attacks_s = time.perf_counter() - start
        stages = {"attacks": attacks_s}
        vulnerability = None
        if config.analysis.vulnerability and attack_run.results:
            progress.stage("analysis")  # per-record analysis from the signals alone (no features, no images)
            from miaudit.pipeline.analysis import analyze_signals

            start = time.perf_counter()
            vulnerability = analyze_signals(root, config, signals, attack_run.targets, list(attack_run.results), progress)
            stages["analysis"] = time.perf_counter() - start
        progress.stage("report")
        results = audit_results(signals, config, attack_run, source=source)
        if vulnerability is not None:
            results["vulnerability"] = vulnerability
        write_json(rd.results, results)
        write_text(rd.summary, format_summary(results))
        if attack_run.roc:
            write_roc_figure(rd.roc_figure, attack_run.roc, attack_run.results)
        write_json(rd.timing, {
            "stages_s": stages, "attacks_s": attack_run.seconds,
            "total_s": time.perf_counter() - total_start,
        })
        from miaudit.report.render import try_write_report

        try_write_report(root)  # report.html / report.md (a view of the files above; never required)
    return results


def _with_queries(signals: Signals, queries: int | None) -> Signals:
    """``signals`` restricted to the first ``queries`` queries (``audit.queries``; None = all in the file).

    Raises ConfigError when the file holds fewer queries than asked: they cannot be made up.
    """

    a = signals.logits.shape[1]
    if queries is None or queries == a:
        return signals
    if queries > a:
        raise ConfigError(f"audit.queries={queries}: the signals hold {a} quer{'y' if a == 1 else 'ies'} per record")
    pop = signals.population_logits
    return replace(signals, logits=signals.logits[:, :queries],
                   population_logits=None if pop is None else pop[:, :queries])


def _array_fingerprint(signals: Signals) -> str:

    h = hashlib.sha256()
    for arr in (signals.logits, signals.in_mask, signals.labels, signals.population_logits, signals.population_labels):
        if arr is not None:
            a = np.ascontiguousarray(arr)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.tobytes())
    return h.hexdigest()
