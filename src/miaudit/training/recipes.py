"""Training-time defences as small composable recipes, and their registry.

A recipe is named in the config (``train.recipes: [{name: l2, params: {weight_decay: 5e-4}}]``,
or just ``[l2]``) and the whole pool is trained with it, since the attacker knows the recipe. A
recipe acts at two moments:

- **at load time** (``settings``): it sets configuration keys, e.g. ``l2`` sets
  ``train.weight_decay``, ``dropout`` sets ``model.params.dropout``. The resolved config shows
  the values used (``config.resolved.yaml``); a recipe's setting overrides the same key set
  directly, and two recipes that set one key to different values are refused.
- **at train time** (``start``/``finish``): it replaces or extends parts of the trainer's
  :class:`~miaudit.training.trainer.TrainRun`: the batch sampler (``curriculum`` pacing,
  ``dp-sgd``'s Poisson sampling), the criterion and optimizer (``dp-sgd``), per-record loss
  weights (``curriculum`` weighting) or input transforms (``augmentation``). Two recipes may
  not replace the same part (``replaces``); that is refused at load time.

Recipes compose in config order: ``[regdrop, augmentation]`` trains with weight decay, dropout
and augmentation. Register a new one with ``@register_recipe(name, params=..., description=...)``
on a :class:`Recipe` subclass; every hook defaults to doing nothing.

Documented choices
------------------
- ``augmentation`` on tabular data: binary features (every value 0 or 1) get independent random
  bit flips at rate ``flip_rate``, drawn afresh for every batch; other features get Gaussian
  noise of ``noise_std`` times the feature's standard deviation (over the training rows). On
  images: random crop after zero padding by ``padding`` pixels and, with ``hflip``, a random
  horizontal flip (the standard CIFAR recipe).
- ``targeted-augmentation`` augments only the *flagged* records: the top ``fraction`` of the
  audit pool by a vulnerability ranking read from a finished run (``ranking_from: RUN_DIR`` →
  ``RUN_DIR/vulnerable_records.csv``, column ``vulnerability``, or its ``vulnerable`` flags with
  ``fraction: null``), else by the curriculum's difficulty score (loss under a proxy model
  trained on the population split; see :mod:`miaudit.training.curriculum`). Compose it with
  ``augmentation`` for "weak for all, strong for the flagged".
- ``curriculum``: :mod:`miaudit.training.curriculum`; ``dp-sgd``: :mod:`miaudit.training.dp`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from miaudit._registry import Registry
from miaudit.transforms import random_crop_flip

if TYPE_CHECKING:
    from miaudit.config import RunConfig
    from miaudit.training.trainer import TrainRun

log = logging.getLogger(__name__)

FORBID = ConfigDict(extra="forbid", frozen=True)


# --- the recipe interface and registry ------------------------------------------------------


@dataclass
class RecipeContext:
    """What recipes may need beyond the training rows: built by the pool for each member.

    Attributes
    ----------
    config : the resolved run configuration
    rows : (n,) int64, the audit-pool index of each training row, in the order of ``x``
    audit_x, audit_y : the whole audit pool (difficulty scores are computed for all of it)
    audit_ids : (N,) int64, stable record ids of the audit pool (to read rankings by id)
    n_classes : number of classes
    population : (x, y) of the population split, or None when it is empty
    is_image : whether inputs are (B, C, H, W) images
    cache_dir : where pool-level results shared by all members are cached (``models/recipes``);
        None = compute in memory
    device : where the model trains
    """

    config: RunConfig
    rows: np.ndarray
    audit_x: torch.Tensor
    audit_y: torch.Tensor
    audit_ids: np.ndarray
    n_classes: int
    population: tuple[torch.Tensor, torch.Tensor] | None = None
    is_image: bool = False
    cache_dir: Path | None = None
    device: torch.device = torch.device("cpu")


class Recipe:
    """A training recipe. ``__init__`` only stores the validated params; every hook is a no-op."""

    name: ClassVar[str] = ""
    #: parts of the TrainRun this recipe replaces ("sampler", "criterion", "optimizer", "weights")
    replaces: ClassVar[frozenset[str]] = frozenset()
    #: said when this recipe clashes with another over a part of the run
    hint: ClassVar[str] = ""
    #: tag of the recipe's own random stream (``TrainRun.child_generator``)
    stream: ClassVar[int] = 0

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def settings(self, config: RunConfig) -> dict[str, Any]:
        """Config keys this recipe sets at load time, as ``{"train.weight_decay": 5e-4}``."""
        return {}

    def check(self, config: RunConfig) -> list[str]:
        """Problems with using this recipe under ``config`` (resolved), one message each."""
        return []

    def start(self, run: TrainRun) -> None:
        """Adjust the run before the first epoch."""

    def finish(self, run: TrainRun) -> dict:
        """Called once after training (before the weights are taken); returns sidecar extras."""
        return {}


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    cls: type[Recipe]
    params: type[BaseModel]
    description: str

    def build(self, params: dict | BaseModel | None = None) -> Recipe:
        p = params if isinstance(params, self.params) else self.params.model_validate(params or {})
        return self.cls(p)


RECIPES: Registry[RecipeSpec] = Registry("recipe")


def register_recipe(name: str, *, params: type[BaseModel], description: str) -> Callable[[type[Recipe]], type[Recipe]]:
    """Register a :class:`Recipe` subclass under ``name`` with its pydantic params model."""

    def add(cls: type[Recipe]) -> type[Recipe]:
        RECIPES.add(name, RecipeSpec(name=name, cls=cls, params=params, description=description))
        cls.name = name
        return cls

    return add


def build_recipes(specs: Any) -> list[Recipe]:
    """Recipe objects for ``train.recipes`` entries (objects with ``name`` and ``params``), in order."""
    return [RECIPES.get(s.name, where="train.recipes").build(s.params) for s in specs or ()]


# --- load-time resolution (called by the loader, pipeline.configure) -------------------------


def resolve_config(config: RunConfig, context: dict[str, Any] | None = None) -> dict[str, BaseModel]:
    """Apply every recipe's settings to ``config``; return the replaced sections (``train``, ``model``),
    validated in pydantic's ``context`` (the loader's, so their names and params are resolved too).

    Raises ``ValueError`` naming each problem (``train.recipes[i]: ...``), joined by '; ', so the
    config loader reports them together in one line.
    """
    from miaudit.config import ModelConfig, TrainConfig, set_key

    recipes = build_recipes(config.train.recipes)
    problems: list[str] = []
    # the same part of the trainer replaced twice
    owner: dict[str, int] = {}
    for i, r in enumerate(recipes):
        for part in sorted(r.replaces):
            if part in owner:
                j = owner[part]
                hint = " ".join(h for h in (getattr(r, "hint", ""), getattr(recipes[j], "hint", "")) if h)
                problems.append(
                    f"train.recipes[{i}]: {r.name!r} and {recipes[j].name!r} (train.recipes[{j}]) both choose "
                    f"the training {part}; they cannot be combined{' (' + hint + ')' if hint else ''}"
                )
            else:
                owner[part] = i
    # settings: later never silently overrides an earlier recipe with another value
    chosen: dict[str, tuple[int, Any]] = {}
    for i, r in enumerate(recipes):
        for key, value in r.settings(config).items():
            if key in chosen and chosen[key][1] != value:
                j = chosen[key][0]
                problems.append(
                    f"train.recipes[{i}]: {r.name!r} sets {key}={value!r} but {recipes[j].name!r} "
                    f"(train.recipes[{j}]) sets {chosen[key][1]!r}"
                )
            chosen[key] = (i, value)
    if problems:
        raise ValueError("; ".join(problems))
    raw = config.model_dump(mode="python", include={"train", "model"})
    for key, (i, value) in chosen.items():
        set_key(raw, key.split("."), value, where=f"train.recipes[{i}]")
    out: dict[str, BaseModel] = {}
    try:
        if any(k.startswith("train.") for k in chosen):
            out["train"] = TrainConfig.model_validate(raw["train"], context=context)
        if any(k.startswith("model.") for k in chosen):
            out["model"] = ModelConfig.model_validate(raw["model"], context=context)
    except ValidationError as exc:
        from miaudit._validation import format_validation_error

        raise ValueError(f"train.recipes: {format_validation_error(exc)}") from None
    resolved = config.model_copy(update=out)
    for i, r in enumerate(recipes):
        problems += [f"train.recipes[{i}]: {r.name}: {msg}" for msg in r.check(resolved)]
    if problems:
        raise ValueError("; ".join(problems))
    return out


def model_param_names(config: RunConfig) -> set[str]:
    """The options the configured model accepts (its params model's fields)."""
    from miaudit.models import MODELS

    return set(MODELS.get(config.model.name).params.model_fields)


# --- regularisation recipes (settings only) ---------------------------------------------------


class EarlyStoppingParams(BaseModel):
    model_config = FORBID

    patience: int = Field(5, ge=1, description="epochs without improvement on the validation split before stopping")
    metric: Literal["val_loss", "val_acc"] = Field("val_loss", description="watched on the validation split only")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as improvement")


@register_recipe(
    "early-stopping", params=EarlyStoppingParams,
    description="stop when the validation split stops improving; keep the best epoch (never audited records)",
)
class EarlyStopping(Recipe):
    def settings(self, config: RunConfig) -> dict[str, Any]:
        p = self.params
        return {"train.early_stopping.enabled": True, "train.early_stopping.patience": p.patience,
                "train.early_stopping.metric": p.metric, "train.early_stopping.min_delta": p.min_delta}

    def check(self, config: RunConfig) -> list[str]:
        if config.data.splits.validation < 1:
            return ["needs a validation split (data.splits.validation > 0); it never stops on audited records"]
        return []


class L2Params(BaseModel):
    model_config = FORBID

    weight_decay: float = Field(5e-4, gt=0, description="L2 penalty (the study's grid: 5e-4, 1e-3, 5e-3)")


@register_recipe("l2", params=L2Params, description="L2 weight decay (sets train.weight_decay)")
class L2(Recipe):
    def settings(self, config: RunConfig) -> dict[str, Any]:
        return {"train.weight_decay": self.params.weight_decay}


class DropoutParams(BaseModel):
    model_config = FORBID

    rate: float = Field(0.5, gt=0, lt=1, description="dropout rate (the study: 0.25, 0.5)")


def _dropout_check(config: RunConfig) -> list[str]:
    if "dropout" not in model_param_names(config):
        return [f"model {config.model.name!r} has no dropout option; use fcn, mlp or cnn, or drop this recipe"]
    return []


@register_recipe("dropout", params=DropoutParams, description="dropout in the model (sets model.params.dropout)")
class Dropout(Recipe):
    def settings(self, config: RunConfig) -> dict[str, Any]:
        return {"model.params.dropout": self.params.rate} if not _dropout_check(config) else {}

    def check(self, config: RunConfig) -> list[str]:
        return _dropout_check(config)


class RegDropParams(BaseModel):
    model_config = FORBID

    weight_decay: float = Field(5e-4, gt=0, description="L2 penalty")
    rate: float = Field(0.5, gt=0, lt=1, description="dropout rate")


@register_recipe("regdrop", params=RegDropParams, description="L2 weight decay and dropout together (the study's RegDrop)")
class RegDrop(Recipe):
    def settings(self, config: RunConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"train.weight_decay": self.params.weight_decay}
        if not _dropout_check(config):
            out["model.params.dropout"] = self.params.rate
        return out

    def check(self, config: RunConfig) -> list[str]:
        return _dropout_check(config)


class LabelSmoothingParams(BaseModel):
    model_config = FORBID

    epsilon: float = Field(0.1, gt=0, lt=1, description="label smoothing ε (the study: 0.03)")


@register_recipe("label-smoothing", params=LabelSmoothingParams, description="label smoothing ε (sets train.label_smoothing)")
class LabelSmoothing(Recipe):
    def settings(self, config: RunConfig) -> dict[str, Any]:
        return {"train.label_smoothing": self.params.epsilon}


# --- augmentation -------------------------------------------------------------------------------


class AugmentationParams(BaseModel):
    model_config = FORBID

    flip_rate: float = Field(0.05, ge=0, le=0.5, description="tabular binary features: per-bit flip probability")
    noise_std: float = Field(0.1, ge=0, description="tabular non-binary features: Gaussian noise, in feature stds")
    padding: int = Field(4, ge=0, description="images: random crop after zero padding by this many pixels")
    hflip: bool = Field(True, description="images: random horizontal flip")


class Augmenter:
    """The stochastic perturbation of :class:`AugmentationParams` for one training set."""

    def __init__(self, params: AugmentationParams, x: torch.Tensor, is_image: bool, generator: torch.Generator) -> None:
        self.p = params
        self.is_image = is_image
        self.gen = generator
        self.binary = bool(((x == 0) | (x == 1)).all()) if not is_image else False
        self.std = None if is_image or self.binary else x.float().std(dim=0, keepdim=True).clamp_min(1e-12)

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        if len(xb) == 0:
            return xb
        if self.is_image:
            if self.p.padding == 0 and not self.p.hflip:
                return xb
            # transforms.random_crop_flip draws on the CPU generator; keep the batch there for it
            out = random_crop_flip(xb.cpu(), self.p.padding, self.gen, flip=self.p.hflip)
            return out.to(xb.device)
        if self.binary:
            if self.p.flip_rate == 0:
                return xb
            flip = (torch.rand(xb.shape, generator=self.gen) < self.p.flip_rate).to(xb.device)
            return torch.where(flip, 1 - xb, xb)
        if self.p.noise_std == 0:
            return xb
        noise = torch.randn(xb.shape, generator=self.gen).to(xb.device)
        return xb + noise * (self.p.noise_std * self.std)


def _is_image(run: TrainRun) -> bool:
    return run.context.is_image if run.context is not None else run.x.ndim == 4


@register_recipe(
    "augmentation", params=AugmentationParams,
    description="data augmentation: images crop+flip; tabular random bit flips (binary) or Gaussian noise",
)
class Augmentation(Recipe):
    stream = 0xA06

    def start(self, run: TrainRun) -> None:
        aug = Augmenter(self.params, run.x, _is_image(run), run.child_generator(self.stream))
        run.transforms.append(lambda xb, yb, idx: aug(xb))
