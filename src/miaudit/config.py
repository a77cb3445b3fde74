"""The run configuration's schemas: every section, its defaults (each with the reason for it), types
and ranges, and the dotted-key language of ``--set key=value``.

Plain schemas: they know no registry, file or recipe. Loading a config (``pipeline.configure``)
reads the YAML, loads plugins, and validates these schemas with a :class:`Resolver` in pydantic's
validation context: names of datasets, models, recipes, defences and attacks and their
``params`` are then checked against the registries, split index files read and training
recipes applied, all problems reported together in one line naming each key (``ConfigError``).
A config built in code or copied (no resolver) is checked for types and ranges only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from miaudit.errors import ConfigError
from miaudit.io import fingerprint, sha256_file

FORBID = ConfigDict(extra="forbid", frozen=True)

#: FPRs at which TPR is reported; DESIGN.md: {0, 0.01%, 0.1%, 1%} plus 10% for context.
DEFAULT_FPRS = (0.0, 0.0001, 0.001, 0.01, 0.1)


#: the key of pydantic's validation context under which the loader passes its :class:`Resolver`
RESOLVER = "miaudit.resolver"


class Resolver(Protocol):
    """What the schemas ask of the loader (``pipeline.configure.RegistryResolver``) while validating.

    Each method raises ``ValueError`` with the problems in words (``key: text``, joined by "; ").
    """

    def params(self, kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The full params of the registered ``kind`` ("dataset", "model", "recipe", "defence") ``name``."""
        ...

    def check_attacks(self, attacks: list[str] | None, attack_params: dict[str, dict[str, Any]]) -> None:
        """Every named attack is registered and its params valid."""
        ...

    def split_rows(self, path: Path) -> dict[str, Any]:
        """The row arrays of a split index file (``data.splits.indices``)."""
        ...

    def apply_recipes(self, config: RunConfig, info: ValidationInfo) -> dict[str, BaseModel]:
        """The sections the training recipes replace (``train``, ``model``), validated in ``info``'s context."""
        ...


def _resolver(info: ValidationInfo) -> Resolver | None:
    return (info.context or {}).get(RESOLVER)


class SplitSizes(BaseModel):
    """Records per split; the four are disjoint and drawn from one seeded permutation."""

    model_config = FORBID

    audit: int = Field(20_000, ge=2, description="records whose membership is tested; each model trains on half")
    population: int = Field(5_000, ge=0, description="never trained on: RMIA's z, thresholds, shadow data")
    validation: int = Field(1_000, ge=0, description="early stopping and model selection only")
    test: int = Field(5_000, ge=1, description="utility (test accuracy)")
    indices: Path | None = Field(
        None, description="an .npz of row indices (audit, test [, population, validation]) used instead of a "
                          "seeded draw, e.g. a run's splits.npz; the sizes follow it"
    )

    @model_validator(mode="after")
    def _from_indices(self, info: ValidationInfo) -> SplitSizes:
        resolver = _resolver(info)
        if self.indices is None or resolver is None:
            return self
        arrays = resolver.split_rows(self.indices)
        for k, a in arrays.items():
            if k in self.model_fields_set and getattr(self, k) != len(a):
                raise ValueError(f"{k}: {getattr(self, k)} but indices {self.indices} holds {len(a)} rows "
                                 f"(leave the size out: it follows the file)")
            object.__setattr__(self, k, len(a))
        return self


class DataConfig(BaseModel):
    model_config = FORBID

    name: str = Field("synthetic-purchase", description="a registered dataset (`miaudit datasets`)")
    data_dir: Path | None = Field(None, description="where the dataset's files are; default: its standard place")
    params: dict[str, Any] = Field(default_factory=dict, description="dataset options (see `miaudit datasets`)")
    splits: SplitSizes = Field(default_factory=SplitSizes)
    planted: Path | None = Field(
        None, description="file of known atypical/canary record ids (`id[,kind]` per line): enrichment and recall "
        "tables for your own data (docs/vulnerability.md)",
    )

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> DataConfig:
        if (resolver := _resolver(info)) is not None:
            object.__setattr__(self, "params", resolver.params("dataset", self.name, self.params))
        return self


class ModelConfig(BaseModel):
    model_config = FORBID

    name: str = Field("fcn", description="a registered model (`miaudit list models`)")
    params: dict[str, Any] = Field(default_factory=dict, description="model options, e.g. width, dropout, norm")

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> ModelConfig:
        if (resolver := _resolver(info)) is not None:
            object.__setattr__(self, "params", resolver.params("model", self.name, self.params))
        return self


class EarlyStopping(BaseModel):
    model_config = FORBID

    enabled: bool = Field(False, description="off by default: the study's baseline trains to the end")
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    metric: Literal["val_loss", "val_acc"] = Field("val_loss", description="measured on the validation split only")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as improvement")


class NamedSpec(BaseModel):
    """A registry entry by name with its options: ``{name: l2, params: {weight_decay: 5e-4}}`` or just ``l2``."""

    model_config = FORBID

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class RecipeConfig(NamedSpec):
    """A training-time defence (``miaudit list recipes``); the whole pool trains with it."""

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> RecipeConfig:
        if (resolver := _resolver(info)) is not None:
            object.__setattr__(self, "params", resolver.params("recipe", self.name, self.params))
        return self


class DefenceConfig(NamedSpec):
    """An inference-time defence (``miaudit list defences``): a transform of the target's outputs."""

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> DefenceConfig:
        if (resolver := _resolver(info)) is not None:
            object.__setattr__(self, "params", resolver.params("defence", self.name, self.params))
        return self


class TrainConfig(BaseModel):
    model_config = FORBID

    optimizer: Literal["adam", "sgd"] = Field("adam", description="the study trained its FCN with Adam")
    lr: float = Field(1e-3, gt=0, description="Adam 1e-3 reaches ~100% train accuracy on Purchase-like data")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty; 0 = the undefended baseline")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="0 = the undefended baseline")
    epochs: int = Field(20, ge=1, description="20 epochs: train accuracy ~100%, as in the study")
    batch_size: int = Field(128, ge=1, description="the study's batch size")
    schedule: Literal["constant", "cosine", "step"] = Field("constant", description="learning-rate schedule")
    step_size: int = Field(10, ge=1, description="epochs per decay for the 'step' schedule")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor for the 'step' schedule")
    warmup_epochs: float = Field(0.0, ge=0, description="linear learning-rate warm-up before the schedule (0 = none)")
    min_lr: float = Field(0.0, ge=0, description="floor of the cosine and step schedules (cosine ends here)")
    schedule_per: Literal["epoch", "batch"] = Field("epoch", description="move the schedule after every epoch or every batch")
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    # recipes set the keys above at load time (config.resolved.yaml shows the values used)
    recipes: list[RecipeConfig] = Field(
        default_factory=list, description="training-time defences, composed in order, e.g. [regdrop, augmentation]"
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainConfig:
        problems = []
        if self.min_lr > self.lr:
            problems.append(f"min_lr: must not exceed lr={self.lr:g}, got {self.min_lr:g}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs:
            problems.append(f"warmup_epochs: must be below epochs={self.epochs}, got {self.warmup_epochs:g}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PoolConfig(BaseModel):
    model_config = FORBID

    n_models: int = Field(8, ge=2, le=10_000, description="even: every record is IN for exactly half the models")

    @field_validator("n_models")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even so every record is IN for exactly half the models, got {v}")
        return v


class AuditConfig(BaseModel):
    model_config = FORBID

    attacks: list[str] | None = Field(None, description="attacks to run; default: all the pool supports but opt-in ones (qmia)")
    attack_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-attack options, e.g. {rmia-offline: {gamma: 2}}"
    )
    targets: int | list[int] | None = Field(
        None, description="models that play the target: all (null), the first k (int), or a list of indices"
    )
    fprs: tuple[float, ...] = Field(DEFAULT_FPRS, min_length=1, description="FPRs at which TPR is reported")
    queries: int | None = Field(
        None, ge=1, le=1024,
        description="queries per image (identity, flip, shifts; 1 = plain only). null = the training recipe's "
        "augmentation: 2 (identity, flip) with a flipping augmentation recipe, else 1",
    )
    # 200 percentile resamples settle a 95% interval to about ±0.5 points; 0 turns CIs off
    bootstrap: int = Field(200, ge=0, le=100_000, description="bootstrap resamples for 95% CIs of AUC and TPR@FPR (0 = none)")
    priors: tuple[float, ...] = Field(
        (0.01, 0.1, 0.5), min_length=1, description="membership priors at which positive predictive value is reported"
    )

    @field_validator("priors")
    @classmethod
    def _priors_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for p in v:
            if not 0.0 < p < 1.0:
                raise ValueError(f"every prior must lie in (0, 1), got {p}")
        return tuple(sorted(set(v)))

    @field_validator("fprs")
    @classmethod
    def _fprs_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for a in v:
            if not 0.0 <= a < 1.0:
                raise ValueError(f"every FPR must lie in [0, 1), got {a}")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _check_attacks(self, info: ValidationInfo) -> AuditConfig:
        if (resolver := _resolver(info)) is not None:
            resolver.check_attacks(self.attacks, self.attack_params)
        return self


class AnalysisConfig(BaseModel):
    model_config = FORBID

    vulnerability: bool = Field(True, description="per-record vulnerability and outlier analysis")
    # 1% is where the study's vulnerable set sat; 0.1% is the regime reviewers ask about
    alpha: float = Field(0.01, gt=0, lt=1, description="FPR of the per-target thresholds that flag records")
    extra_alphas: tuple[float, ...] = Field((0.001,), description="further FPRs reported (set size, chance, FDR)")
    # half of the IN targets: with 4 IN targets per record a chance record passes with p ≈ 6e-4 at α = 1%
    cut: float = Field(0.5, gt=0, le=1, description="vulnerable = flagged in at least this share of its IN targets")
    attack: str | None = Field(None, description="attack whose scores define vulnerability; null = the strongest")
    # reference attacks (LiRA online) correlate a record's flags across targets: the binomial null is
    # invalid for them; 20 random designs give p >= 1/21 < 0.05 and cost 20 reruns of one attack
    chance_permutations: int = Field(
        20, ge=0, description="random membership designs for the vulnerable set's chance control (0 = binomial only, else >= 19)"
    )
    top_k: int = Field(16, ge=1, description="records in the gallery and the top-k table")
    gradcam_k: int = Field(8, ge=1, description="vulnerable/typical pairs in the Grad-CAM figure (images)")
    knn_k: int = Field(10, ge=1, description="neighbours for the k-NN label disagreement")
    lof_k: int = Field(20, ge=2, description="neighbours for the local outlier factor (within class)")
    tsne: bool = Field(True, description="t-SNE map of penultimate features (figures/tsne.png)")
    tsne_logits: bool = Field(False, description="also a t-SNE map of the logits (figures/tsne_logits.png)")
    # openTSNE costs ~40 CPU-s for 4,000 points; 3,000 keeps the analysis near its 40 s budget on
    # 2 cores. Vulnerable records are drawn at their own rate, topped up to 10% of the points when rare.
    max_tsne_points: int = Field(3000, ge=10, description="records drawn on the t-SNE map (seeded subsample)")
    gradcam: bool = Field(True, description="Grad-CAM figure for image datasets with a convolutional model")

    @field_validator("extra_alphas")
    @classmethod
    def _alphas_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for a in v:
            if not 0.0 < a < 1.0:
                raise ValueError(f"every FPR must lie in (0, 1), got {a}")
        return tuple(sorted(set(v), reverse=True))

    @field_validator("chance_permutations")
    @classmethod
    def _enough_designs(cls, v: int) -> int:
        if 0 < v < 19:  # p = (1 + #null >= observed) / (1 + R) is at least 1/(1 + R)
            raise ValueError(f"0 (off) or at least 19, so that the p-value can fall below 0.05 (its floor is 1/(1 + R))")
        return v

    @field_validator("attack")
    @classmethod
    def _known_attack(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and (resolver := _resolver(info)) is not None:
            resolver.check_attacks([v], {})
        return v


class RuntimeConfig(BaseModel):
    """How to compute; never changes results (so never part of the pool fingerprint)."""

    model_config = FORBID

    # all cores on a busy machine made training ~10x slower than 1 thread (issue 16; miaudit/threads.py)
    threads: int | Literal["auto", "all"] | None = Field(
        "auto", description="torch threads: auto (the usable cores other work leaves idle), all (or null), or a number"
    )
    # 2 single-thread workers beat one 2-thread process on small models (+17% on a CNN, 2 cores)
    workers: int = Field(1, ge=1, description="pool members trained in parallel processes (threads split among them)")
    # batched matmuls gave ≈2x for models under ~200k parameters on 2 cores, nothing for the 1.3 M FCN;
    # same recipe and data order as one at a time, weights equal to float rounding (training/batched.py)
    batched: bool | Literal["auto"] = Field(
        "auto", description="train several MLP members at once; auto: when the model has < 200k parameters"
    )
    group_size: int = Field(8, ge=2, description="most members trained together in one batched group")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    executor: Literal["local", "ray"] = Field("local", description="where pool members train")
    # the ray_* keys apply with executor: ray (docs/cluster.md)
    ray_address: str | None = Field(
        None, description="null: start a local Ray instance; 'auto' or host:port / ray://host:10001 joins a cluster"
    )
    ray_num_cpus: float = Field(1.0, gt=0, description="CPUs each Ray task reserves (and its torch threads)")
    ray_num_gpus: float = Field(0.0, ge=0, description="GPUs each Ray task reserves; > 0 trains on cuda")
    # a lost node or a killed worker is usually transient; a deterministic error fails 3 times and is reported
    ray_max_retries: int = Field(2, ge=0, description="retries of a failed Ray task before its members are reported")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        if v is None or v in ("auto", "all") or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"give auto, all or a number of threads >= 1, got {v!r}")


class TargetDataSpec(NamedSpec):
    """A file of records for ``target.members`` / ``target.non_members``: any registered dataset."""

    data_dir: Path | None = Field(None, description="where the dataset's files are; default: its standard place")

    @model_validator(mode="after")
    def _check_params(self, info: ValidationInfo) -> TargetDataSpec:
        if (resolver := _resolver(info)) is not None:
            object.__setattr__(self, "params", resolver.params("dataset", self.name, self.params))
        return self


class TargetConfig(BaseModel):
    """Audit one model trained outside miaudit (``miaudit.pipeline.target``; docs/target.md)."""

    model_config = FORBID

    weights: Path = Field(description="the target's weights: .safetensors, a .pt/.pth state_dict, or .onnx")
    model: ModelConfig | None = Field(None, description="the target's architecture if it differs from `model` (not for .onnx)")
    members: TargetDataSpec = Field(description="records the target was trained on (a registered dataset)")
    non_members: TargetDataSpec = Field(description="records it never saw: audited, population, validation, test")
    references: Literal["online", "offline", "none"] = Field(
        "online", description="online: balanced pool over the audited records; offline: population only; none"
    )


class RunConfig(BaseModel):
    """One audit run: data, model, training recipe, pool, attacks, analysis."""

    model_config = FORBID

    seed: int = Field(0, ge=0, description="fixes every random choice of the run")
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules or .py files that register your own datasets, models, attacks or defences",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    defences: list[DefenceConfig] = Field(
        default_factory=list, description="inference-time defences evaluated on the pool, e.g. [logit-reweighting]"
    )
    target: TargetConfig | None = Field(None, description="audit this one model instead of the pool (docs/target.md)")

    @model_validator(mode="after")
    def _apply_recipes(self, info: ValidationInfo) -> RunConfig:
        if self.train.recipes and (resolver := _resolver(info)) is not None:
            for section, value in resolver.apply_recipes(self, info).items():
                object.__setattr__(self, section, value)
        return self

    @model_validator(mode="after")
    def _check_targets(self) -> RunConfig:
        t = self.audit.targets
        m = self.pool.n_models
        if isinstance(t, int) and not 1 <= t <= m:
            raise ValueError(f"audit.targets: must be between 1 and pool.n_models={m}, got {t}")
        if isinstance(t, list):
            bad = [i for i in t if not 0 <= i < m]
            if bad or not t:
                raise ValueError(f"audit.targets: indices must lie in 0..{m - 1}, got {t}")
            dup = sorted({i for i in t if t.count(i) > 1})
            if dup:
                raise ValueError(f"audit.targets: model {dup[0]} is listed more than once (it would count several "
                                 f"times in every average and interval), got {t}")
        return self

    def pool_fingerprint(self) -> str:
        """Hash of everything that determines the trained models (not attacks, analysis or runtime)."""
        d = self.model_dump(mode="json", include={"seed", "data", "model", "train", "pool"})
        if not d["train"]["recipes"]:
            del d["train"]["recipes"]  # runs without recipes keep the fingerprint they had before recipes existed
        del d["data"]["planted"]  # ground truth for the analysis only: it trains nothing
        if self.target is not None:  # the references' data; not the target's weights (new weights reuse them)
            d["target"] = self.target.model_dump(mode="json", include={"members", "non_members", "references"})
        if self.data.splits.indices is None:
            del d["data"]["splits"]["indices"]  # drawn splits keep their fingerprint
        else:  # the rows, not where the file lies
            d["data"]["splits"]["indices"] = sha256_file(self.data.splits.indices)
        for key, default in (("warmup_epochs", 0.0), ("min_lr", 0.0), ("schedule_per", "epoch")):
            if d["train"].get(key) == default:
                del d["train"][key]  # likewise for runs without the schedule options
        return fingerprint(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class VariantConfig(BaseModel):
    """One row of a sweep: a defence variant, or a grid of them (``miaudit sweep``)."""

    model_config = FORBID

    name: str = Field(description="directory-safe name; with a grid, a template like 'l2-{weight_decay}'")
    recipes: list[Any] = Field(default_factory=list, description="train.recipes of this variant (replaces the base's)")
    defences: list[Any] | None = Field(None, description="inference-time defences; null = the sweep's")
    set: list[str] = Field(default_factory=list, description="KEY=VALUE overrides for this variant, as --set")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="values to sweep: '<recipe>.<param>' (a recipe of this variant) or a config key like train.epochs",
    )

    @field_validator("grid")
    @classmethod
    def _nonempty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return v


class SweepConfig(BaseModel):
    """A sweep file: a base run config and the defence variants to compare (each a full run)."""

    model_config = FORBID

    base: Path | dict[str, Any] | None = Field(
        None, description="run config: a YAML path (relative to the sweep file) or an inline mapping; null = defaults"
    )
    set: list[str] = Field(default_factory=list, description="KEY=VALUE overrides applied to every variant")
    defences: list[Any] = Field(default_factory=list, description="inference-time defences evaluated in every variant")
    variants: list[VariantConfig] = Field(
        min_length=1, description="the runs to compare; each is the base plus its recipes, defences and overrides"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=c`` -> (["a", "b"], value parsed as YAML, so numbers, bools and lists work)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=30")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {item!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"--set {key}: value nested too deeply (a config is a few levels of sections)") from None
    if len(key.split(".")) > MAX_DEPTH:
        raise ConfigError(f"--set {key}: key nested too deeply (a config is a few levels of sections)")
    check_depth(value, f"--set {key}")
    return key.split("."), value


#: deepest nesting of sections and values a config may have (the deepest real key is ~5 levels)
MAX_DEPTH = 32


def check_depth(value: Any, where: str) -> None:
    """Refuse YAML nested deeper than ``MAX_DEPTH`` (it would recurse through validation and hashing)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep; a config is a few levels of sections")
        if isinstance(v, dict):
            stack.extend((c, depth + 1) for c in v.values())
        elif isinstance(v, list):
            stack.extend((c, depth + 1) for c in v)


def set_key(raw: dict[str, Any], path: list[str], value: Any, *, where: str) -> None:
    """Set ``raw[path[0]][path[1]]... = value``, creating sections; ``where`` names the setting in errors."""
    node = raw
    for p in path[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{where}: {p!r} is not a section")
        node = child
    node[path[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        set_key(raw, path, value, where=f"--set {item!r}")
    return raw
