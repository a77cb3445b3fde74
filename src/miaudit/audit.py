"""Run the configured attacks on cached signals and measure them: the step after signals.

Used by ``miaudit run`` (signals from its own pool) and ``miaudit audit --signals`` (signals of
models trained elsewhere, ``audit_signals``). Each model in ``targets`` plays the target in turn
while the others are its references; metrics are reported per target and averaged over
targets, with bootstrap confidence intervals of the averages.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.attacks import ATTACKS, AttackInput, NotApplicable, make_input
from miaudit.config import AuditConfig, RunConfig
from miaudit.errors import BelowChanceWarning, ConfigError, FewReferencesWarning, RunDirError, SkippedAttackWarning, UnreliableEstimateWarning
from miaudit.io import save_npy, sha256_file, write_json, write_text
from miaudit.metrics import attack_metrics, average_metrics, bootstrap_ci, bootstrap_seed
from miaudit.progress import NullProgress, Progress
from miaudit.results import results_document
from miaudit.signals import Signals

log = logging.getLogger(__name__)

#: below this many reference models, per-record-variance LiRA is flagged (Carlini et al. 2022, §VI-B)
FEW_REFS_FOR_PER_RECORD_VARIANCE = 64


def resolve_targets(targets: int | list[int] | None, n_models: int) -> list[int]:
    if targets is None:
        return list(range(n_models))
    if isinstance(targets, int):
        if not 1 <= targets <= n_models:
            raise ConfigError(f"audit.targets: must be between 1 and the number of models ({n_models}), got {targets}")
        return list(range(targets))
    bad = [t for t in targets if not 0 <= t < n_models]
    if bad or not targets:
        raise ConfigError(f"audit.targets: indices must lie in 0..{n_models - 1}, got {list(targets)}")
    return list(targets)


def default_attacks(is_image: bool, *, opt_in: bool = False) -> list[str]:
    """Every registered attack the data supports, in registry order (``opt_in``: also those a pool runs
    only when named in ``audit.attacks``, such as qmia)."""
    return [name for name, spec in ATTACKS.items()
            if (is_image or not spec.images_only) and (opt_in or spec.pool_default)]


@dataclass
class AttackRun:
    """Scores and metrics of every attack that ran; warnings for those skipped."""

    results: dict[str, dict] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, N) float64
    roc: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    targets: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per attack, scores + metrics
    warnings: list[str] = field(default_factory=list)


def utility(signals: Signals, targets: list[int]) -> dict:
    """Train accuracy (on each model's own IN records) and test accuracy, mean over targets."""
    # model by model: argmax copies a read-only memmap whole (2x the logits in RSS at 200k x 64 x 100)
    pred = np.stack([np.asarray(signals.logits[m, 0]).argmax(-1) for m in range(signals.n_models)])  # (M, N)
    correct = pred == signals.labels[None, :]
    per_model = []
    for m in range(signals.n_models):
        row = {"member": m, "train_acc": float(correct[m][signals.in_mask[m]].mean()) if signals.in_mask[m].any() else None}
        if signals.test_logits is not None and signals.test_labels is not None and len(signals.test_labels):
            row["test_acc"] = float((signals.test_logits[m, 0].argmax(-1) == signals.test_labels).mean())
        per_model.append(row)
    train = [per_model[t]["train_acc"] for t in targets if per_model[t]["train_acc"] is not None]
    out = {"train_acc": float(np.mean(train)) if train else None}
    if "test_acc" in per_model[0]:
        out["test_acc"] = float(np.mean([per_model[t]["test_acc"] for t in targets]))
    out["per_model"] = per_model
    return out


def _target_inputs(signals: Signals, targets: list[int], seed: int) -> Iterator[tuple[int, AttackInput]]:
    """One ``AttackInput`` per target, built once and shared by every attack (they share its
    references' derived quantities through ``attacks._common.memo``)."""
    # memory-mapped arrays are read once here, not once per target
    logits = np.asarray(signals.logits)
    pop = None if signals.population_logits is None else np.asarray(signals.population_logits)
    for i, t in enumerate(targets):
        yield i, make_input(
            logits, signals.in_mask, signals.labels, t,
            population_logits=pop, population_labels=signals.population_labels,
            is_image=signals.is_image, seed=seed,
            features=signals.features, population_features=signals.population_features,
        )


def run_attacks(
    signals: Signals,
    cfg: AuditConfig,
    *,
    seed: int,
    scores_dir: Path | None = None,
    progress: Progress | None = None,
) -> AttackRun:
    """Every configured attack against every target; scores saved to ``scores_dir`` as (T, N) arrays.

    Per attack, ``results[name]`` holds the target-averaged ``auc``, ``advantage``,
    ``tpr_at_fpr``, ``fpr_achieved``, ``reliable``, ``ppv`` (per prior and FPR), ``ci95`` (when
    ``cfg.bootstrap`` > 0), ``knowledge`` and the ``per_target`` figures. The bootstrap of each
    attack draws from the run seed and the attack's name, so it is stable across runs.
    """
    progress = progress or NullProgress()
    targets = resolve_targets(cfg.targets, signals.n_models)
    names = cfg.attacks if cfg.attacks is not None else default_attacks(signals.is_image)
    specs = {name: ATTACKS.get(name, where="audit.attacks") for name in names}
    run = AttackRun(targets=targets)
    run.seconds = dict.fromkeys(names, 0.0)
    for name, spec in specs.items():
        if spec.images_only and not signals.is_image:
            run.skipped[name] = "needs an image dataset"
    pending = [name for name in names if name not in run.skipped]
    scores = {name: np.empty((len(targets), signals.logits.shape[2])) for name in pending}
    chosen: dict[str, list[dict[str, float]]] = {name: [] for name in pending}  # values tuned per target
    # targets outside, attacks inside: every attack on a target reads the same AttackInput
    with progress.bar("attacks", len(targets) * max(len(pending), 1)) as advance:
        for i, inp in _target_inputs(signals, targets, seed):
            for name in pending:
                if name in run.skipped:
                    advance(1)
                    continue
                start = time.perf_counter()
                try:
                    scores[name][i], picked = specs[name].run(inp, cfg.attack_params.get(name))
                    chosen[name].append(picked)
                except NotApplicable as exc:
                    run.skipped[name] = str(exc)
                run.seconds[name] += time.perf_counter() - start
                advance(1)
            del inp
    unreliable: set[str] = set()
    for name in names:
        if name in run.skipped:
            msg = f"attack {name!r} skipped: {run.skipped[name]}"
            run.warnings.append(msg)
            warnings.warn(msg, SkippedAttackWarning, stacklevel=2)
            progress.info(msg)
            continue
        start = time.perf_counter()
        members = [np.asarray(signals.in_mask[t], dtype=bool) for t in targets]
        per_target = [attack_metrics(scores[name][i], members[i], cfg.fprs) for i in range(len(targets))]
        res = average_metrics(per_target, cfg.priors)
        if cfg.bootstrap > 0:
            res["ci95"] = bootstrap_ci(
                list(scores[name]), members, cfg.fprs, n_boot=cfg.bootstrap, seed=bootstrap_seed(seed, name)
            )
        res["knowledge"] = specs[name].knowledge
        if any(chosen[name]):  # values the attack tuned on its references, per target (e.g. RMIA's a)
            res["chosen"] = {k: [c.get(k) for c in chosen[name]] for k in chosen[name][0]}
        run.results[name] = res
        hidden = [k for k, ok in res["reliable"].items()
                  if ok and float(k) > 0 and res["fpr_achieved"][k] < 0.5 * float(k)]
        if hidden:  # a block of tied scores spans the FPR range: TPR there is the block's lower edge
            msg = (
                f"attack {name!r}: tied scores leave no threshold between FPR "
                + ", ".join(f"{100 * res['fpr_achieved'][k]:.2g}% and {100 * float(k):g}%" for k in hidden)
                + " (TPR is reported at the lower edge, never interpolated upward)"
            )
            run.warnings.append(msg)
            warnings.warn(msg, UnreliableEstimateWarning, stacklevel=2)
        below = _below_chance(res)
        if below is not None:
            msg = (
                f"attack {name!r} scores below chance (AUC {below}): its interval lies wholly under 0.5, "
                "which signals a broken setup (queries, references or labels that do not match the models), "
                "not a private model"
            )
            run.warnings.append(msg)
            warnings.warn(msg, BelowChanceWarning, stacklevel=2)
        run.scores[name] = scores[name]
        run.roc[name] = [(m.roc_fpr, m.roc_tpr) for m in per_target]
        unreliable |= {k for k, ok in res["reliable"].items() if not ok}
        if scores_dir is not None:
            save_npy(scores_dir / f"{name}.npy", scores[name])
        run.seconds[name] += time.perf_counter() - start
    for name in run.results:
        params = specs[name].params.model_validate(cfg.attack_params.get(name) or {})
        if getattr(params, "fixed_variance", True) is False and signals.n_models - 1 < FEW_REFS_FOR_PER_RECORD_VARIANCE:
            msg = (
                f"attack {name!r}: a per-record variance from {(signals.n_models - 1) // 2} reference models per side "
                f"is mostly noise (LiRA paper §VI-B: use fixed variance below ~{FEW_REFS_FOR_PER_RECORD_VARIANCE} "
                f"references); compare {name}-fixed"
            )
            run.warnings.append(msg)
            warnings.warn(msg, FewReferencesWarning, stacklevel=2)
    if unreliable:
        keys = sorted(unreliable, key=float)
        msg = (
            f"TPR at FPR {', '.join(keys)} is backed by fewer than 10/FPR non-members per target "
            "(flagged 'reliable': false, marked * in the table)"
        )
        run.warnings.append(msg)
        warnings.warn(msg, UnreliableEstimateWarning, stacklevel=2)
    return run


def _below_chance(res: dict) -> str | None:
    """The AUC interval as text when it lies wholly below 0.5 (bootstrap CI, else the per-target range), else None."""
    ci = (res.get("ci95") or {}).get("auc")
    if ci is not None:
        lo, hi = ci
    else:
        aucs = [t["auc"] for t in res.get("per_target", [])]
        if len(aucs) < 2:
            return None
        lo, hi = min(aucs), max(aucs)
    return f"{res['auc']:.3f}, interval {lo:.3f}–{hi:.3f}" if hi < 0.5 else None


# --- auditing signals of models trained elsewhere ---------------------------------------------

def _prepare_audit_dir(root: Path, fingerprint: str, *, force: bool) -> None:
    """Create or reopen ``root`` for an audit of the signals with ``fingerprint``; refuse another run's directory."""
    from miaudit.io import ARTEFACTS, read_json, start_artefact_list
    from miaudit.rundir import MANIFEST, clear_run_dir, describe_removal

    manifest = root / MANIFEST
    if root.exists() and not root.is_dir():
        raise RunDirError(f"--out {root}: exists and is not a directory")
    if root.is_dir():
        if manifest.is_file():
            if read_json(manifest).get("pool_fingerprint") != fingerprint:
                if not force:
                    raise RunDirError(
                        f"{root} holds another run or the audit of other signals; use another --out, "
                        f"or --force to {describe_removal(root)} and replace it"
                    )
                clear_run_dir(root)
        elif any(p.name not in (".lock", ARTEFACTS) for p in root.iterdir()):
            raise RunDirError(f"--out {root}: directory is not empty and is not a miaudit run; choose another --out")
    try:
        root.mkdir(parents=True, exist_ok=True)
        start_artefact_list(root)
    except OSError as exc:
        raise RunDirError(f"--out {root}: cannot create it ({exc.strerror or exc})") from None


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
    from miaudit.config import apply_overrides, read_yaml, validate_config

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
    signals : a ``Signals`` record, or the path of a signals ``.npz`` (``miaudit.signals_file``)
    out : run directory for results.json, summary.txt, scores/, figures/roc.png and, with
        ``analysis.vulnerability``, the per-record analysis (``vulnerable_records.csv``, ``analysis/``,
        ``figures/deciles.png``; see ``pipeline.analysis.analyze_signals``); None = attacks only, nothing written
    config : only ``seed``, ``audit`` and ``analysis`` are used (default: the defaults; see ``load_audit_config``)
    source_path : the file ``signals`` was read from, recorded with its SHA-256 in results.json

    Returns
    -------
    The content of results.json.
    """
    from miaudit.signals_file import load_signals_file

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
    from miaudit.rundir import RunDir, locked

    root = Path(out)
    _prepare_audit_dir(root, fingerprint, force=force)
    rd = RunDir(root)
    with locked(rd):
        write_text(root / "config.resolved.yaml", config.to_yaml())
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
        write_text(root / "summary.txt", format_summary(results))
        if attack_run.roc:
            write_roc_figure(rd.figures / "roc.png", attack_run.roc, attack_run.results)
        write_json(root / "timing.json", {
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
    from dataclasses import replace

    a = signals.logits.shape[1]
    if queries is None or queries == a:
        return signals
    if queries > a:
        raise ConfigError(f"audit.queries={queries}: the signals hold {a} quer{'y' if a == 1 else 'ies'} per record")
    pop = signals.population_logits
    return replace(signals, logits=signals.logits[:, :queries],
                   population_logits=None if pop is None else pop[:, :queries])


def _array_fingerprint(signals: Signals) -> str:
    import hashlib

    h = hashlib.sha256()
    for arr in (signals.logits, signals.in_mask, signals.labels, signals.population_logits, signals.population_labels):
        if arr is not None:
            a = np.ascontiguousarray(arr)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.tobytes())
    return h.hexdigest()
