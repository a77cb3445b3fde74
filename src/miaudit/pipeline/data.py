"""The data stage: the dataset a run audits and its four disjoint splits, drawn from the run seed.

A pool run loads ``data`` and draws audit / population / validation / test (or reads explicit
rows, ``data.splits.indices``). A target audit (``target:``, docs/target.md) joins the members
and non-members files instead: a seeded sample of members and as many non-members are
*audited*; the other non-members feed population, validation and test as ``data.splits`` says.
Exact duplicates between the two files (same features and label) are dropped from the
non-members, and every record keeps its origin (``members:1234``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits, load_dataset, make_splits
from miaudit.data.planted import read_planted
from miaudit.data.splits import read_split_indices, splits_from_indices
from miaudit.errors import TargetError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TargetRecords:
    """Members and non-members joined into one dataset; ``splits.audit`` are the audited records."""

    dataset: Dataset  # members' rows first, then the kept non-members'
    splits: Splits
    member: np.ndarray  # (len(dataset),) bool: row comes from the members file
    origins: np.ndarray  # (len(dataset),) str, e.g. "members:1234" (file and its record id)
    n_duplicates: int  # non-members dropped as exact duplicates of members
    planted: np.ndarray | None = None  # (len(dataset),) str kinds from data.planted (ids of the members file), or None


def _load_side(spec: Any, seed: int, where: str) -> Dataset:
    ds = load_dataset(spec.name, spec.params, spec.data_dir, seed)
    if len(ds) == 0:
        raise TargetError(f"{where}: {ds.source or spec.name} has no records")
    return ds


def _row_keys(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """One hash per record of its exact features and label (exact duplicates share it)."""
    flat = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    return [hashlib.sha1(row.tobytes() + int(label).to_bytes(8, "little", signed=True)).digest()
            for row, label in zip(flat, y)]


def target_records(config: RunConfig) -> TargetRecords:
    """Load the members and non-members files and draw the audited records and the other splits (seeded)."""
    t = config.target
    assert t is not None
    mem = _load_side(t.members, config.seed, "target.members")
    non = _load_side(t.non_members, config.seed, "target.non_members")
    if mem.input_shape != non.input_shape:
        raise TargetError(f"target: members have feature shape {mem.input_shape}, non-members {non.input_shape}")
    if mem.kind != non.kind:
        raise TargetError(f"target: members are {mem.kind} records, non-members {non.kind}")
    seen = set(_row_keys(mem.x, mem.y))
    keep = np.array([k not in seen for k in _row_keys(non.x, non.y)], dtype=bool)
    n_dup = int((~keep).sum())
    if n_dup:
        log.warning("%d non-member record(s) are exact duplicates of members; dropped from the non-members", n_dup)
    non_x, non_y, non_ids = non.x[keep], non.y[keep], non.ids[keep]
    if len(non_y) == 0:
        raise TargetError("target.non_members: every record is a duplicate of a member")
    names = mem.class_names if mem.n_classes >= non.n_classes else non.class_names
    x = np.concatenate([mem.x, non_x]).astype(np.float32, copy=False)
    y = np.concatenate([mem.y, non_y]).astype(np.int64)
    member = np.concatenate([np.ones(len(mem), bool), np.zeros(len(non_y), bool)])
    origins = np.array([f"members:{i}" for i in mem.ids] + [f"non_members:{i}" for i in non_ids])
    planted = None
    if config.data.planted is not None:  # the user's ground truth: record ids of the members file
        planted = np.concatenate([read_planted(config.data.planted, mem.ids), np.full(len(non_y), "", dtype=object)])
    dataset = Dataset(name="target records", x=x, y=y, ids=np.arange(len(y), dtype=np.int64), kind=mem.kind,
                      class_names=tuple(names), source=f"{mem.source} + {non.source}")

    s = config.data.splits
    n_a = min(len(mem), len(non_y), s.audit // 2)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x7A_6E7]))
    mem_rows = rng.permutation(len(mem))[:n_a]
    non_rows = len(mem) + rng.permutation(len(non_y))
    rest = non_rows[n_a:]
    sizes = [min(s.population, len(rest))]
    sizes.append(min(s.validation, len(rest) - sizes[0]))
    sizes.append(min(s.test, len(rest) - sum(sizes)))
    cut = np.cumsum([0, *sizes])
    splits = Splits(audit=np.sort(np.concatenate([mem_rows, non_rows[:n_a]])).astype(np.int64),
                    population=np.sort(rest[cut[0]:cut[1]]).astype(np.int64),
                    validation=np.sort(rest[cut[1]:cut[2]]).astype(np.int64),
                    test=np.sort(rest[cut[2]:cut[3]]).astype(np.int64))
    return TargetRecords(dataset=dataset, splits=splits, member=member, origins=origins, n_duplicates=n_dup,
                         planted=planted)


def resolve_target_paths(raw: dict, base: Path) -> None:
    """``target.weights`` and the members' / non-members' ``path`` and ``data_dir``: relative to the config file."""
    tgt = raw.get("target")
    if not isinstance(tgt, dict):
        return

    def fix(v: Any) -> Any:
        return str(base / v) if isinstance(v, str) and v and not Path(v).expanduser().is_absolute() else v

    if "weights" in tgt:
        tgt["weights"] = fix(tgt["weights"])
    data = raw.get("data")
    if isinstance(data, dict) and data.get("planted"):  # ids of the members file's records (docs/target.md)
        data["planted"] = fix(data["planted"])
    for side in ("members", "non_members"):
        spec = tgt.get(side)
        if isinstance(spec, dict):
            if "data_dir" in spec:
                spec["data_dir"] = fix(spec["data_dir"])
            if isinstance(spec.get("params"), dict) and "path" in spec["params"]:
                spec["params"]["path"] = fix(spec["params"]["path"])


def split_data(config: RunConfig) -> tuple[Dataset, Splits]:
    """Load the configured dataset and draw its four disjoint splits from the run seed."""
    if config.target is not None:  # target mode: the members and non-members files
        records = target_records(config)
        return records.dataset, records.splits
    d = config.data
    dataset = load_dataset(d.name, d.params, d.data_dir, config.seed)
    s = d.splits
    if s.indices is not None:  # explicit rows (data.splits.indices), e.g. to reproduce another tool's setup
        return dataset, splits_from_indices(read_split_indices(s.indices), len(dataset))
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5_9117]))
    splits = make_splits(len(dataset), audit=s.audit, population=s.population, validation=s.validation, test=s.test, rng=rng)
    return dataset, splits
