"""Curriculum learning as a training recipe: easy records first, hard records later or less.

Difficulty score (``difficulty: proxy-loss``)
    The cross-entropy of each audit-pool record under a *proxy* model: the configured
    architecture and training settings (recipes off), trained once per pool on the population
    split, which no pool member trains on and which is never audited. A record the proxy finds
    hard is atypical for its class — the kind of record the study found to leak. The scores are
    computed once per pool and cached in ``models/recipes/difficulty.npy``.

Pacing function g(t) (Hacohen & Weinshall, ICML 2019, §2; Platanios et al., NAACL 2019, §3)
    The share of the training set, easiest first, available at training progress
    t = min(1, epoch / (saturate · (epochs − 1))), epochs counted from 0:

    - ``linear``:       g(t) = g₀ + (1 − g₀)·t
    - ``root``:         g(t) = sqrt(g₀² + (1 − g₀²)·t)   (Platanios' competence function)
    - ``exponential``:  g(t) = g₀^(1 − t)                 (Hacohen's exponential pacing, continuous)

    where g₀ = ``start``. From t = 1 on (the last epoch when ``saturate = 1``), every record is used.

Modes
    - ``pacing`` (default): each epoch is one shuffled pass over the easiest ⌈g(t)·n⌉ training
      records, so hard records join late and are seen fewer times. This replaces the batch
      sampler, so it cannot be combined with ``dp-sgd`` (whose accounting needs Poisson sampling).
    - ``weight``: every epoch sees every record, but records outside the easiest g(t)·n are
      weighted ``hard_weight`` in the loss (weights normalised to mean 1). Composes with
      ``dp-sgd``: a weight ≤ 1 scales a per-sample gradient before clipping, so the bound holds.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from miaudit.io import load_npy, save_npy
from miaudit.training.recipes import Recipe, RecipeContext, register_recipe

if TYPE_CHECKING:
    from miaudit.config import RunConfig
    from miaudit.training.trainer import TrainRun

log = logging.getLogger(__name__)

Pacing = Literal["linear", "root", "exponential"]


class CurriculumParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["pacing", "weight"] = Field("pacing", description="pacing: hard records join late; weight: down-weighted")
    pacing: Pacing = Field("linear", description="pacing function: linear | root | exponential")
    start: float = Field(0.3, gt=0, le=1, description="share of the easiest records used at the first epoch")
    # 0.8: the last 20% of the epochs see all data, so the model still fits the hard records a little
    saturate: float = Field(0.8, gt=0, le=1, description="share of the epochs after which every record is used")
    hard_weight: float = Field(0.1, ge=0, le=1, description="weight mode: loss weight of records not yet paced in")
    difficulty: Literal["proxy-loss"] = Field("proxy-loss", description="loss under a proxy trained on the population")


def pacing_fraction(kind: Pacing, start: float, progress: float) -> float:
    """Share g(t) of the easiest records available at training progress t ∈ [0, 1].

    Examples
    --------
    >>> pacing_fraction("linear", 0.5, 0.5)
    0.75
    >>> pacing_fraction("exponential", 0.25, 0.5)
    0.5
    >>> pacing_fraction("root", 0.5, 1.0)
    1.0
    """
    t = min(1.0, max(0.0, progress))
    if kind == "linear":
        g = start + (1.0 - start) * t
    elif kind == "root":
        g = math.sqrt(start**2 + (1.0 - start**2) * t)
    else:
        g = start ** (1.0 - t)
    return float(min(1.0, g))


def progress_at(epoch: int, epochs: int, saturate: float) -> float:
    """t = epoch / (saturate · (epochs − 1)), clipped to [0, 1]; epoch counts from 0.

    With ``saturate = 1`` the last epoch is the first to use every record.

    >>> [progress_at(e, 5, 1.0) for e in range(5)]
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    return min(1.0, epoch / max(1e-9, saturate * (epochs - 1))) if epochs > 1 else 1.0


@register_recipe(
    "curriculum", params=CurriculumParams,
    description="curriculum learning: easy records first by a proxy model's loss, with a pacing function",
)
class Curriculum(Recipe):
    def __init__(self, params: CurriculumParams) -> None:
        super().__init__(params)
        self.replaces = frozenset({"sampler"}) if params.mode == "pacing" else frozenset({"weights"})
        if params.mode == "pacing":
            self.hint = "curriculum with mode: weight keeps the sampler and composes with dp-sgd"

    def check(self, config: RunConfig) -> list[str]:
        if config.data.splits.population < 1:
            return ["the difficulty score needs a population split (data.splits.population > 0) to train its proxy model"]
        return []

    def start(self, run: TrainRun) -> None:
        if run.context is None:
            raise RuntimeError("curriculum needs a RecipeContext (which audit records are these?)")
        p = self.params
        difficulty = difficulty_scores(run.context)[run.context.rows]
        easy_first = torch.from_numpy(np.argsort(difficulty, kind="stable")).to(run.x.device)
        n, epochs, bs = run.n, run.cfg.epochs, run.cfg.batch_size
        shares = [pacing_fraction(p.pacing, p.start, progress_at(e, epochs, p.saturate)) for e in range(epochs)]
        run.extras["curriculum"] = {"mode": p.mode, "pacing": p.pacing, "shares": shares}

        if p.mode == "pacing":
            gen, device = run.generator, run.x.device

            def sample(epoch: int) -> Any:
                k = max(min(n, bs), math.ceil(shares[min(epoch, epochs - 1)] * n))
                avail = easy_first[:k]
                return avail[torch.randperm(k, generator=gen).to(device)].split(bs)

            run.sampler = sample
        else:
            rank = torch.empty(n, dtype=torch.long, device=run.x.device)
            rank[easy_first] = torch.arange(n, device=run.x.device)

            def weights(epoch: int, idx: torch.Tensor) -> torch.Tensor:
                k = math.ceil(shares[min(epoch, epochs - 1)] * n)
                norm = (k + (n - k) * p.hard_weight) / n
                w = torch.where(rank[idx] < k, 1.0, p.hard_weight)
                return (w / norm).to(torch.float32)

            run.weights = weights


def difficulty_scores(context: RecipeContext) -> np.ndarray:
    """(N,) float64: each audit-pool record's loss under the proxy model (higher = harder); cached per pool."""
    cache = context.cache_dir / "difficulty.npy" if context.cache_dir is not None else None
    if cache is not None and cache.is_file():
        scores = load_npy(cache)
        if scores.shape == (len(context.audit_y),):
            return scores
    scores = proxy_loss(context)
    if cache is not None:
        save_npy(cache, scores)
    return scores


def proxy_loss(context: RecipeContext) -> np.ndarray:
    """Train the proxy on the population split (configured model and training, no recipes); its loss per audit record."""
    from miaudit.config import EarlyStopping
    from miaudit.models import build_model
    from miaudit.training.trainer import per_record_loss, train_model

    if context.population is None or len(context.population[1]) == 0:
        raise RuntimeError("the difficulty score needs a population split")
    config = context.config
    seed = int(np.random.SeedSequence([config.seed, 0xD1FF_1C]).generate_state(1)[0])
    torch.manual_seed(seed)
    model = build_model(config.model.name, config.model.params, tuple(context.audit_x.shape[1:]), context.n_classes)
    model = model.to(context.device)
    cfg = config.train.model_copy(update={"recipes": [], "early_stopping": EarlyStopping()})
    px, py = (t.to(context.device) for t in context.population)
    log.info("training the curriculum proxy model on %d population records", len(py))
    train_model(model, px, py, cfg, seed=seed)
    return per_record_loss(model, context.audit_x.to(context.device), context.audit_y.to(context.device))
