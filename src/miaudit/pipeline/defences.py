"""Evaluate inference-time defences on a pool's signals against three attackers.

For each defence, one transform is fitted per pool member on that member's own training
records (plain query, true labels) — the defender's view. Then, for every target:

- **non-adaptive**: the target's outputs (audit and population records) are transformed; the
  references are not. The attacker does not know about the defence.
- **adaptive**: every reference model's outputs are transformed the same way, each with a
  transform fitted on that reference's own training records. The attacker knows the defence
  and its parameters and applies it to their shadow models.
- **label-only**: only the predicted label of the transformed target is used
  (``label-only-gap``, and ``label-only-augment`` for images with augmented queries).

The attacks are the run's (``audit.attacks``, default: every applicable one); metrics are the
same as for the undefended pool (per target, averaged over targets, bootstrap CIs). Reported
with them: accuracy before and after the transform (train and test, mean over targets), the
share of queries whose predicted class changed, and — in the timing, since results.json holds
no wall-clock figures — the cost of fitting and applying the transform.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np

from miaudit.attacks import ATTACKS, NotApplicable
from miaudit.pipeline.attack import default_attacks, measure_attack, pool_stats, resolve_targets, target_inputs, utility
from miaudit.config import DefenceConfig, RunConfig
from miaudit.defences._registry import DEFENCES, OutputDefence
from miaudit.metrics import bootstrap_seed
from miaudit.progress import NullProgress, Progress
from miaudit.signals import Signals

log = logging.getLogger(__name__)

#: the attacks of the label-only attacker (those that are registered and applicable run)
LABEL_ONLY_ATTACKS = ("label-only-gap", "label-only-augment")


def defence_keys(specs: Sequence[DefenceConfig]) -> list[str]:
    """results.json key of each configured defence: its name, with its params when a name repeats.

    >>> defence_keys([DefenceConfig(name="temperature", params={"temperature": 2.0}),
    ...               DefenceConfig(name="temperature", params={"temperature": 4.0})])
    ['temperature(temperature=2.0)', 'temperature(temperature=4.0)']
    """
    names = [s.name for s in specs]
    keys = []
    for s in specs:
        if names.count(s.name) == 1:
            keys.append(s.name)
        else:
            keys.append(f"{s.name}({','.join(f'{k}={v}' for k, v in sorted(s.params.items()))})")
    return keys


@dataclasses.dataclass
class FittedPool:
    """Every member's fitted transform and the transformed signals."""

    defences: list[OutputDefence]
    logits: np.ndarray  # (M, A, N, C) transformed
    population: np.ndarray | None  # (M, A, P, C) transformed
    test: np.ndarray | None  # (M, 1, T, C) transformed
    fit_s: float
    apply_s: float
    n_queries: int


def fit_pool(spec: DefenceConfig, signals: Signals) -> FittedPool:
    """Fit one transform per member on its own training records; transform every output of the pool."""
    entry = DEFENCES.get(spec.name, where="defences")
    raw = np.asarray(signals.logits)
    fitted, fit_s, apply_s = [], 0.0, 0.0
    out = np.empty_like(raw)
    pop = None if signals.population_logits is None else np.empty_like(np.asarray(signals.population_logits))
    test = None if signals.test_logits is None else np.empty_like(np.asarray(signals.test_logits))
    n_queries = 0
    for m in range(signals.n_models):
        inside = np.asarray(signals.in_mask[m], dtype=bool)
        start = time.perf_counter()
        d = entry.build(spec.params).fit(raw[m, 0][inside], np.asarray(signals.labels)[inside])
        fit_s += time.perf_counter() - start
        start = time.perf_counter()
        out[m] = d(raw[m])
        n_queries += raw[m].size // raw.shape[-1]
        if pop is not None:
            pop[m] = d(np.asarray(signals.population_logits[m]))
            n_queries += pop[m].size // raw.shape[-1]
        if test is not None:
            test[m] = d(np.asarray(signals.test_logits[m]))
            n_queries += test[m].size // raw.shape[-1]
        apply_s += time.perf_counter() - start
        fitted.append(d)
    return FittedPool(fitted, out, pop, test, fit_s, apply_s, n_queries)


def evaluate_defence(
    spec: DefenceConfig, key: str, signals: Signals, config: RunConfig, *, progress: Progress | None = None
) -> tuple[dict, dict]:
    """(results entry, timing entry) of one defence against the three attackers."""
    progress = progress or NullProgress()
    targets = resolve_targets(config.audit.targets, signals.n_models)
    raw = np.asarray(signals.logits)
    raw_pop = None if signals.population_logits is None else np.asarray(signals.population_logits)
    fp = fit_pool(spec, signals)
    names = config.audit.attacks if config.audit.attacks is not None else default_attacks(signals.is_image)
    names = [n for n in names if n not in LABEL_ONLY_ATTACKS]
    label_only = [n for n in LABEL_ONLY_ATTACKS if n in ATTACKS and (signals.is_image or not ATTACKS.get(n).images_only)]
    views = {
        # attacker -> (attacks, reference logits, reference population logits)
        "non-adaptive": (names, raw, raw_pop),
        "adaptive": (names, fp.logits, fp.population),
        "label-only": (label_only, fp.logits, fp.population),
    }
    attackers: dict[str, dict] = {}
    skipped: dict[str, dict[str, str]] = {}
    start = time.perf_counter()
    with progress.bar(f"defence {key}", sum(len(v[0]) for v in views.values())) as advance:
        for attacker, (attack_names, ref, ref_pop) in views.items():
            attackers[attacker], skipped[attacker] = {}, {}
            stats = pool_stats(signals, ref, ref_pop)  # the references' pool: shared by every target and attack
            for name in attack_names:
                a = ATTACKS.get(name, where="audit.attacks")
                if a.images_only and not signals.is_image:
                    skipped[attacker][name] = "needs an image dataset"
                else:
                    try:
                        # every target defended, queried with the attacker's references (qmia needs features: not here)
                        inputs = target_inputs(signals, targets, config.seed, stats=stats, target_logits=fp.logits,
                                               target_population=fp.population, with_features=False)
                        scores = np.stack([a(inp, config.audit.attack_params.get(name)) for _, inp in inputs])  # (T, N)
                    except NotApplicable as exc:
                        skipped[attacker][name] = str(exc)
                    else:
                        attackers[attacker][name] = measure_attack(
                            scores, signals, targets, config.audit,
                            bootstrap_seed(config.seed, f"{key}/{attacker}/{name}"), a.knowledge)[0]
                advance(1)
    changed = np.mean([
        float((fp.logits[t, 0].argmax(-1) != raw[t, 0].argmax(-1)).mean()) for t in targets
    ])
    entry = {
        "params": dict(spec.params),
        "utility": {
            "before": utility(signals, targets, per_model=False),
            "after": utility(signals, targets, logits=fp.logits, test_logits=fp.test, per_model=False),
        },
        "argmax_changed": float(changed),
        "attackers": attackers,
        "skipped": {k: v for k, v in skipped.items() if v},
    }
    for attacker, s in entry["skipped"].items():
        for name, why in s.items():  # recorded in results; run_attacks has warned about the same attacks
            log.info("defence %s: %s attack %r skipped: %s", key, attacker, name, why)
    timing = {
        "fit_s_per_model": fp.fit_s / signals.n_models,
        "apply_us_per_query": 1e6 * fp.apply_s / max(1, fp.n_queries),
        "attacks_s": time.perf_counter() - start,
    }
    return entry, timing


def evaluate_defences(signals: Signals, config: RunConfig, *, progress: Progress | None = None) -> tuple[dict, dict]:
    """Every configured defence: (``results["defences"]``, ``timing["defences"]``)."""
    results, timing = {}, {}
    for spec, key in zip(config.defences, defence_keys(config.defences)):
        results[key], timing[key] = evaluate_defence(spec, key, signals, config, progress=progress)
    return results, timing

