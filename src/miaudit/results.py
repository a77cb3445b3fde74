"""The results document (``results.json``): its schema version, its typed parts, and the rules
every reader applies to it (which attack is the strongest, which FPR is the headline).

One home for what ``miaudit run``, ``miaudit audit`` (a signals file) and a target audit write,
and for what the summary, the report, the sweep table and the vulnerability analysis read back:
the same document, built by ``results_document`` in one key order (the file is byte-stable).
The typed parts are ``TypedDict``s: they document and type-check the JSON layout without
changing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from miaudit.errors import DataError
from miaudit.io import read_json

#: bumped when a key is renamed or its meaning changes (readers refuse newer documents)
RESULTS_SCHEMA_VERSION = 1

#: the FPR of every headline (summary line, report verdict, sweep column, target audit)
HEADLINE_FPR = 0.01
#: its key in ``tpr_at_fpr`` (``metrics.fpr_key(HEADLINE_FPR)``)
HEADLINE_KEY = "0.01"

#: who attacks a defended pool (``defences``): the defence unknown to the attacker, known to it
#: (references pass through the same defence), and an attacker reading labels only
ATTACKERS = ("non-adaptive", "adaptive", "label-only")


class AttackResult(TypedDict):
    """One attack, averaged over its targets (``results["attacks"][name]``)."""

    auc: float
    advantage: float
    tpr_at_fpr: dict[str, float]  # FPR key ("0.01") -> TPR, never interpolated upward
    reliable: dict[str, bool]  # FPR key -> enough non-members behind it (10/FPR per target)
    per_target: list[dict[str, Any]]
    ci95: NotRequired[dict[str, Any]]  # bootstrap intervals of the target-averaged figures
    ppv: NotRequired[dict[str, Any]]


class DataInfo(TypedDict):
    name: str
    kind: str  # "tabular" | "image"
    n_records: int
    n_classes: int
    splits: dict[str, int]
    input_shape: NotRequired[list[int]]
    n_queries: NotRequired[int]


class PoolInfo(TypedDict):
    n_models: int
    targets: list[int]
    epochs_run: NotRequired[list[int]]
    dp: NotRequired[dict[str, Any]]


class Results(TypedDict):
    """``results.json``; optional sections appear only when the run computed them."""

    schema_version: int
    config: dict[str, Any]
    pool_fingerprint: NotRequired[str]
    seed: int
    versions: dict[str, str]
    source: NotRequired[dict[str, Any]]  # an audit of a signals file: where the signals came from
    data: DataInfo
    pool: PoolInfo
    utility: dict[str, Any]
    attacks: dict[str, AttackResult]
    skipped_attacks: dict[str, str]
    warnings: list[str]
    vulnerability: NotRequired[dict[str, Any]]
    defences: NotRequired[dict[str, Any]]
    target: NotRequired[dict[str, Any]]


def results_document(
    *,
    config: dict[str, Any],
    seed: int,
    versions: dict[str, str],
    data: DataInfo,
    pool: PoolInfo,
    utility: dict[str, Any],
    attacks: dict[str, AttackResult],
    skipped_attacks: dict[str, str],
    warnings: list[str],
    pool_fingerprint: str | None = None,
    source: dict[str, Any] | None = None,
) -> Results:
    """The document every run kind writes, its keys in the one order (sections are added after)."""
    doc: dict[str, Any] = {"schema_version": RESULTS_SCHEMA_VERSION, "config": config}
    if pool_fingerprint is not None:
        doc["pool_fingerprint"] = pool_fingerprint
    doc["seed"] = seed
    doc["versions"] = versions
    if source is not None:
        doc["source"] = source
    doc.update(data=data, pool=pool, utility=utility, attacks=attacks, skipped_attacks=skipped_attacks,
               warnings=warnings)
    return doc  # type: ignore[return-value]


def read_results(path: Path | str) -> Results:
    """A ``results.json``: a JSON object of this schema version or an older one (a newer miaudit may
    have changed what its keys mean: refused in one line, ``DataError``)."""
    doc = read_json(path)
    version = doc.get("schema_version", RESULTS_SCHEMA_VERSION)
    if not isinstance(version, int) or version > RESULTS_SCHEMA_VERSION:
        raise DataError(f"{path}: results schema {version!r}, this miaudit reads up to {RESULTS_SCHEMA_VERSION}; "
                        "upgrade miaudit to read it")
    return cast(Results, doc)


def rank_attacks(strength: Mapping[str, tuple[float | None, float | None]]) -> list[str]:
    """Attack names, strongest first: by TPR at the chosen FPR, then AUC (missing = 0), then name.

    The one ordering rule of "the strongest attack" (summary, report, sweep, defences, the
    vulnerability analysis and the target headline all use it).

    >>> rank_attacks({"b": (0.1, 0.7), "a": (0.1, 0.7), "c": (0.2, 0.5), "d": (None, 0.9)})
    ['c', 'a', 'b', 'd']
    """
    return sorted(strength, key=lambda n: (-(strength[n][0] or 0.0), -(strength[n][1] or 0.0), n))


def strongest_of(strength: Mapping[str, tuple[float | None, float | None]]) -> str | None:
    """The first of ``rank_attacks``, or None when there is no attack."""
    ranked = rank_attacks(strength)
    return ranked[0] if ranked else None


def attack_strength(attacks: Mapping[str, Mapping[str, Any]], fpr: str = HEADLINE_KEY) -> dict[str, tuple[float | None, float | None]]:
    """(TPR at ``fpr``, AUC) of every attack result, the input of ``rank_attacks``."""
    return {n: (r.get("tpr_at_fpr", {}).get(fpr), r.get("auc")) for n, r in attacks.items()}


def strongest(attacks: Mapping[str, Mapping[str, Any]], fpr: str = HEADLINE_KEY) -> str | None:
    """The strongest attack of a ``results["attacks"]``-shaped mapping at ``fpr``, or None."""
    return strongest_of(attack_strength(attacks, fpr))
