"""Targeted augmentation: stronger augmentation only for the records a ranking flags (the study's
proposed defence): the vulnerable records of an earlier run (``ranking_from``), else the most
difficult records by the curriculum's difficulty score."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydantic import Field, model_validator

from miaudit.errors import DataError
from miaudit.rundir import RunDir
from miaudit.training.curriculum import difficulty_scores
from miaudit.training.recipes import AugmentationParams, Augmenter, Recipe, RecipeContext, _is_image, register_recipe

if TYPE_CHECKING:
    from miaudit.config import RunConfig
    from miaudit.training.trainer import TrainRun

log = logging.getLogger(__name__)


class TargetedAugmentationParams(AugmentationParams):
    flip_rate: float = Field(0.15, ge=0, le=0.5, description="tabular binary features: per-bit flip probability")
    noise_std: float = Field(0.3, ge=0, description="tabular non-binary features: Gaussian noise, in feature stds")
    padding: int = Field(6, ge=0, description="images: random crop after zero padding by this many pixels")
    fraction: float | None = Field(
        0.1, gt=0, le=1, description="share of the audit pool flagged (top of the ranking); null = the file's flags"
    )
    ranking_from: Path | None = Field(
        None, description="a finished run whose vulnerable_records.csv ranks the records; null = difficulty score"
    )

    @model_validator(mode="after")
    def _flags_need_a_file(self) -> TargetedAugmentationParams:
        if self.fraction is None and self.ranking_from is None:
            raise ValueError("fraction: null (use the file's vulnerable flags) needs ranking_from")
        return self


@register_recipe(
    "targeted-augmentation", params=TargetedAugmentationParams,
    description="stronger augmentation only for flagged records (vulnerability ranking, else difficulty)",
)
class TargetedAugmentation(Recipe):
    stream = 0x7A6

    def check(self, config: RunConfig) -> list[str]:
        if self.params.ranking_from is None and config.data.splits.population < 1:
            return ["without ranking_from the records are ranked by difficulty, which needs a population split "
                    "(data.splits.population > 0) to train the proxy model"]
        return []

    def start(self, run: TrainRun) -> None:
        if run.context is None:
            raise RuntimeError("targeted-augmentation needs a RecipeContext (which audit records are these?)")
        flagged_pool = flagged_records(self.params, run.context)  # (N,) bool over the audit pool
        flagged = torch.from_numpy(flagged_pool[run.context.rows]).to(run.x.device)
        aug = Augmenter(self.params, run.x, _is_image(run), run.child_generator(self.stream))
        run.extras.setdefault("targeted", {})["n_flagged"] = int(flagged.sum())

        def transform(xb: torch.Tensor, yb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            sel = flagged[idx]
            if not bool(sel.any()):
                return xb
            xb = xb.clone()
            xb[sel] = aug(xb[sel])
            return xb

        run.transforms.append(transform)


def flagged_records(params: TargetedAugmentationParams, context: RecipeContext) -> np.ndarray:
    """(N,) bool over the audit pool: the records a targeted recipe protects."""
    n = len(context.audit_ids)
    if params.ranking_from is not None:
        score, flags = read_vulnerability_ranking(Path(params.ranking_from), context.audit_ids)
        if params.fraction is None:
            return flags
    else:
        score = difficulty_scores(context)
    k = int(round(params.fraction * n))
    out = np.zeros(n, dtype=bool)
    if k > 0:
        # stable: ties broken by audit-pool position, records without a score never flagged
        order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
        out[order[:k]] = True
        out &= np.isfinite(score)
    return out


def read_vulnerability_ranking(run_dir: Path, audit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per audit-pool record: (vulnerability score, vulnerable flag) from ``RUN_DIR/vulnerable_records.csv``.

    Records are matched by ``record_id``; records the file does not list get NaN and False.
    """
    path = RunDir(run_dir).vulnerable_records if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise DataError(
            f"ranking_from: {path} not found; point it at a finished run directory whose vulnerability "
            "analysis wrote vulnerable_records.csv (analysis.vulnerability: true)"
        )
    score = np.full(len(audit_ids), np.nan)
    flags = np.zeros(len(audit_ids), dtype=bool)
    pos = {int(r): i for i, r in enumerate(audit_ids)}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if "record_id" not in cols or not cols & {"vulnerability", "vulnerable"}:
            raise DataError(f"{path}: expected columns record_id and vulnerability (or vulnerable), got {sorted(cols)}")
        matched = 0
        for row in reader:
            i = pos.get(int(row["record_id"]))
            if i is None:
                continue
            matched += 1
            v = row.get("vulnerability", "")
            score[i] = float(v) if v not in ("", None) else np.nan
            flags[i] = row.get("vulnerable", "0") in ("1", "true", "True")
    if matched == 0:
        raise DataError(f"{path}: no record_id matches this run's audit pool (another dataset or split?)")
    if "vulnerability" not in cols:
        score = flags.astype(np.float64)
    log.info("ranking from %s: %d of %d audit records matched", path, matched, len(audit_ids))
    return score, flags
