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

from miaudit.attacks import ATTACKS, AttackInput, NotApplicable, PoolStats, make_input
from miaudit.config import AuditConfig
from miaudit.errors import BelowChanceWarning, ConfigError, FewReferencesWarning, NonFiniteScoresWarning, SkippedAttackWarning, UnreliableEstimateWarning
from miaudit.io import save_npy
from miaudit.metrics import attack_metrics, average_metrics, bootstrap_ci, bootstrap_seed
from miaudit.progress import NullProgress, Progress
from miaudit.signals import Signals

log = logging.getLogger(__name__)

#: warnings raised inside attacks, passed on by ``run_attacks`` (shown once each, as by the default filter)
_PASSED_ON: dict = {}

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


def utility(signals: Signals, targets: list[int], *, logits: np.ndarray | None = None,
            test_logits: np.ndarray | None = None, per_model: bool = True) -> dict:
    """Train accuracy (on each model's own IN records) and test accuracy, mean over targets.

    ``logits`` (M, A, N, C) / ``test_logits`` (M, 1, T, C): outputs other than the signals' own (a
    defended pool, ``pipeline.defences``); ``per_model`` adds every model's figures.
    """
    logits = signals.logits if logits is None else logits
    test_logits = signals.test_logits if test_logits is None else test_logits
    m_total = logits.shape[0]
    # model by model: argmax copies a read-only memmap whole (2x the logits in RSS at 200k x 64 x 100)
    pred = np.stack([np.asarray(logits[m, 0]).argmax(-1) for m in range(m_total)])  # (M, N)
    correct = pred == signals.labels[None, :]
    rows = []
    for m in range(m_total):
        row = {"member": m, "train_acc": float(correct[m][signals.in_mask[m]].mean()) if signals.in_mask[m].any() else None}
        if test_logits is not None and signals.test_labels is not None and len(signals.test_labels):
            row["test_acc"] = float((test_logits[m, 0].argmax(-1) == signals.test_labels).mean())
        rows.append(row)
    train = [rows[t]["train_acc"] for t in targets if rows[t]["train_acc"] is not None]
    out = {"train_acc": float(np.mean(train)) if train else None}
    if "test_acc" in rows[0]:
        out["test_acc"] = float(np.mean([rows[t]["test_acc"] for t in targets]))
    if per_model:
        out["per_model"] = rows
    return out


def measure_attack(scores: np.ndarray, signals: Signals, targets: list[int], cfg: AuditConfig,
                   stream: np.random.SeedSequence, knowledge: str) -> tuple[dict, list]:
    """The figures of one attack's (T, N) ``scores``: per target, averaged over targets, and bootstrap
    intervals drawn from ``stream`` (``metrics.bootstrap_seed``); also the per-target metrics (ROC)."""
    members = [np.asarray(signals.in_mask[t], dtype=bool) for t in targets]
    per_target = [attack_metrics(scores[i], members[i], cfg.fprs) for i in range(len(targets))]
    res = average_metrics(per_target, cfg.priors)
    if cfg.bootstrap > 0:
        res["ci95"] = bootstrap_ci(list(scores), members, cfg.fprs, n_boot=cfg.bootstrap, seed=stream)
    res["knowledge"] = knowledge
    return res, per_target


def pool_stats(signals: Signals, logits: np.ndarray | None = None, population_logits: np.ndarray | None = None
               ) -> PoolStats:
    """The per-model statistics of the signals' pool (or of ``logits`` / ``population_logits``, e.g. a
    defended pool), computed on first use; one object for every target (``target_inputs``)."""
    # memory-mapped arrays are read once here, not once per target
    logits = np.asarray(signals.logits if logits is None else logits)
    pop = signals.population_logits if population_logits is None else population_logits
    pop = None if pop is None else np.asarray(pop)
    return PoolStats.of(logits, signals.labels, pop, signals.population_labels)


def target_inputs(signals: Signals, targets: list[int], seed: int, *, stats: PoolStats | None = None,
                  target_logits: np.ndarray | None = None, target_population: np.ndarray | None = None,
                  with_features: bool = True) -> Iterator[tuple[int, AttackInput]]:
    """Every target's ``AttackInput``, each built once and shared by every attack: the one place the
    pipeline scores targets (the attack stage, and each attacker of ``pipeline.defences``).

    The references' outputs are ``stats.logits`` (``pool_stats(signals)`` when None), whose per-model
    statistics every target shares. ``target_logits`` (M, A, N, C) / ``target_population`` (M, A, P, C):
    the targets' own outputs when they differ from the references' (a defended target queried by
    an attacker with undefended references). ``with_features``: hand the records' features to the
    attacks that model them (qmia).
    """
    stats = stats or pool_stats(signals)
    pop = None if stats.population is None else stats.population.logits
    for i, t in enumerate(targets):
        yield i, make_input(
            stats.logits, signals.in_mask, signals.labels, t,
            population_logits=pop, population_labels=signals.population_labels,
            is_image=signals.is_image, seed=seed, stats=stats,
            target_logits=None if target_logits is None or target_logits is stats.logits else np.asarray(target_logits[t]),
            target_population_logits=None if target_population is None or target_population is pop
            else np.asarray(target_population[t]),
            features=signals.features if with_features else None,
            population_features=signals.population_features if with_features else None,
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
    nonfinite: dict[str, list[NonFiniteScoresWarning]] = {name: [] for name in pending}
    # targets outside, attacks inside: every attack on a target reads the same AttackInput
    with progress.bar("attacks", len(targets) * max(len(pending), 1)) as advance:
        for i, inp in target_inputs(signals, targets, seed):
            for name in pending:
                if name in run.skipped:
                    advance(1)
                    continue
                start = time.perf_counter()
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", NonFiniteScoresWarning)
                        scores[name][i], picked = specs[name].run(inp, cfg.attack_params.get(name))
                    chosen[name].append(picked)
                except NotApplicable as exc:
                    run.skipped[name] = str(exc)
                for w in caught:  # NaN/inf scores: one warning per attack below; any other passes on
                    if isinstance(w.message, NonFiniteScoresWarning):
                        nonfinite[name].append(w.message)
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=_PASSED_ON,
                                               source=w.source)
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
        res, per_target = measure_attack(scores[name], signals, targets, cfg, bootstrap_seed(seed, name),
                                         specs[name].knowledge)
        if any(chosen[name]):  # values the attack tuned on its references, per target (e.g. RMIA's a)
            res["chosen"] = {k: [c.get(k) for c in chosen[name]] for k in chosen[name][0]}
        run.results[name] = res
        if nonfinite[name]:
            bad = nonfinite[name]
            w = NonFiniteScoresWarning(name, sum(b.count for b in bad), sum(b.total for b in bad),
                                       f"{len(bad)} of {len(targets)} targets")
            run.warnings.append(str(w))
            warnings.warn(w, stacklevel=2)
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
