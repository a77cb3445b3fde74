"""Run the configured attacks on cached signals and measure them: the step after signals.

Used by ``miaudit run`` (signals from its own pool) and ``miaudit audit --signals`` (signals of
models trained elsewhere). Each model in ``targets`` plays the target in turn while the others
are its references; metrics are reported per target and averaged over targets.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.config import AuditConfig
from miaudit.errors import SkippedAttackWarning
from miaudit.io import save_npy
from miaudit.metrics import attack_metrics, average_metrics
from miaudit.progress import NullProgress, Progress
from miaudit.signals import Signals

log = logging.getLogger(__name__)


def resolve_targets(targets: int | list[int] | None, n_models: int) -> list[int]:
    if targets is None:
        return list(range(n_models))
    if isinstance(targets, int):
        return list(range(targets))
    return list(targets)


def default_attacks(is_image: bool) -> list[str]:
    """Every registered attack the data supports, in registry order."""
    return [name for name, spec in ATTACKS.items() if is_image or not spec.images_only]


@dataclass
class AttackRun:
    """Scores and metrics of every attack that ran; warnings for those skipped."""

    results: dict[str, dict] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, N) float64
    roc: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    targets: list[int] = field(default_factory=list)


def utility(signals: Signals, targets: list[int]) -> dict:
    """Train accuracy (on each model's own IN records) and test accuracy, mean over targets."""
    pred = signals.logits[:, 0].argmax(-1)  # (M, N)
    correct = pred == signals.labels[None, :]
    per_model = []
    for m in range(signals.n_models):
        row = {"member": m, "train_acc": float(correct[m][signals.in_mask[m]].mean())}
        if signals.test_logits is not None and signals.test_labels is not None and len(signals.test_labels):
            row["test_acc"] = float((signals.test_logits[m, 0].argmax(-1) == signals.test_labels).mean())
        per_model.append(row)
    out = {"train_acc": float(np.mean([per_model[t]["train_acc"] for t in targets]))}
    if "test_acc" in per_model[0]:
        out["test_acc"] = float(np.mean([per_model[t]["test_acc"] for t in targets]))
    out["per_model"] = per_model
    return out


def run_attacks(
    signals: Signals,
    cfg: AuditConfig,
    *,
    seed: int,
    scores_dir: Path | None = None,
    progress: Progress | None = None,
) -> AttackRun:
    """Every configured attack against every target; scores saved to ``scores_dir`` as (T, N) arrays."""
    progress = progress or NullProgress()
    targets = resolve_targets(cfg.targets, signals.n_models)
    names = cfg.attacks if cfg.attacks is not None else default_attacks(signals.is_image)
    run = AttackRun(targets=targets)
    with progress.bar("attacks", len(names)) as advance:
        for name in names:
            spec = ATTACKS.get(name, where="audit.attacks")
            if spec.images_only and not signals.is_image:
                run.skipped[name] = "needs an image dataset"
            else:
                try:
                    scores = np.stack([
                        spec(
                            make_input(
                                signals.logits, signals.in_mask, signals.labels, t,
                                population_logits=signals.population_logits,
                                population_labels=signals.population_labels,
                                is_image=signals.is_image, seed=seed,
                            ),
                            cfg.attack_params.get(name),
                        )
                        for t in targets
                    ])  # (T, N)
                except NotApplicable as exc:
                    run.skipped[name] = str(exc)
                else:
                    per_target = [attack_metrics(scores[i], signals.in_mask[t], cfg.fprs) for i, t in enumerate(targets)]
                    run.results[name] = average_metrics(per_target)
                    run.scores[name] = scores
                    run.roc[name] = [(m.roc_fpr, m.roc_tpr) for m in per_target]
                    if scores_dir is not None:
                        save_npy(scores_dir / f"{name}.npy", scores)
            if name in run.skipped:
                msg = f"attack {name!r} skipped: {run.skipped[name]}"
                warnings.warn(msg, SkippedAttackWarning, stacklevel=2)
                progress.info(msg)
            advance(1)
    return run
