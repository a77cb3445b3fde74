"""``analyze_run``: which records leak, and why, for one finished (or just-attacked) run directory.

Reads the run's signals, per-attack scores (``scores/{attack}.npy``, (T, N) in target order)
and pool weights; writes

- ``vulnerable_records.csv``: every audited record, sorted by vulnerability, with its TP
  frequency, mean score, the attacks that flag it, each outlier measure and a reason tag;
- ``analysis/``: ``outliers.npz`` (cached measures), ``vulnerability.npz`` (per-record arrays,
  read by ``--compare`` of other runs), ``deciles.csv``, ``top_vulnerable.md``, ``timing.json``;
- ``figures/``: ``tsne.png``, ``deciles.png`` and, for images, ``gallery.png`` and ``gradcam.png``;

and returns the ``vulnerability`` section of ``results.json`` (deterministic: no timing).
This module reads and writes the run directory and loads the models; the numbers are in
:mod:`miaudit.vulnerability` (``scores``: vulnerability, chance control, stability; ``chance``: the
permutation control; ``measures`` and ``outliers``: the measures; ``stats``: the tests;
``ranking``: attack choice and record order; ``tables``: the CSV and Markdown files;
``enrichment``: planted ground truth), the embeddings and Grad-CAM in :mod:`miaudit.inference`,
the figures in :mod:`miaudit.report.figures`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits, load_dataset
from miaudit.errors import ConfigError, DataError
from miaudit.io import (
    fingerprint,
    load_npy,
    read_json,
    save_npz,
    write_json,
    write_text,
)
from miaudit.metrics import fpr_key, is_reliable
from miaudit.pipeline.configure import load_config
from miaudit.progress import NullProgress, Progress
from miaudit.report import figures as figs
from miaudit.results import read_results
from miaudit.rundir import RunDir
from miaudit.signals import Signals, load_signals
from miaudit.vulnerability import enrichment as enr
from miaudit.vulnerability.chance import chance_null_counts
from miaudit.vulnerability.measures import FEATURE_MEASURES, MEASURES, MEASURES_VERSION
from miaudit.vulnerability.outliers import (
    feature_measures,
    logit_measures,
    out_prediction,
    reason_counts,
    reason_tags,
)
from miaudit.vulnerability.ranking import (
    RANKING,
    attack_strength,
    choose_attack,
    rank_records,
    score_beyond_nonmembers,
    typical_records,
)
from miaudit.vulnerability.scores import (
    RecordVulnerability,
    chance_control,
    chance_jaccard,
    jaccard,
    record_vulnerability,
    stability_across_targets,
    stability_between_sets,
)
from miaudit.vulnerability.stats import excess_sets, excess_summary, measure_statistics
from miaudit.vulnerability.tables import (
    class_name,
    top_table,
    write_deciles_csv,
    write_records_csv,
)
from miaudit.vulnerability.tsne import subsample, tsne_embedding

log = logging.getLogger(__name__)


@dataclass
class _Inputs:
    signals: Signals
    targets: list[int]
    attacks: list[str]
    dataset: Dataset
    splits: Splits
    models: dict = field(default_factory=dict)  # pool index -> model held in memory (target mode: the target)


class _Clock:
    """Wall and CPU seconds per analysis step (CPU time stays meaningful on a shared machine)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._t, self._c = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu - self._c
        self._t, self._c = now, cpu

    def as_dict(self) -> dict:
        return {"stages_s": self.seconds, "total_s": sum(self.seconds.values()),
                "stages_cpu_s": self.cpu_seconds, "total_cpu_s": sum(self.cpu_seconds.values())}


def load_splits(rd: RunDir) -> Splits:
    path = rd.splits
    if not path.is_file():
        raise DataError(f"{path} not found: is {rd.root} a miaudit run directory?")
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {k: np.asarray(z[k]) for k in ("audit", "population", "validation", "test")}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: damaged ({type(exc).__name__}: {exc}); rerun `miaudit run` with the same config "
                        "to rewrite it") from None
    if any(a.ndim != 1 or a.dtype.kind not in "iu" for a in parts.values()):
        raise DataError(f"{path}: damaged (not 1-D integer index arrays); rerun `miaudit run` with the same config")
    return Splits(**parts)


def load_run_config(run_dir: Path | str, overrides: Sequence[str] = ()) -> RunConfig:
    """The run's ``config.resolved.yaml`` with ``--set analysis.*`` overrides (others are refused)."""
    path = RunDir(Path(run_dir)).resolved_config
    if not path.is_file():
        raise DataError(f"{path} not found: {run_dir} is not a finished miaudit run directory")
    bad = [o for o in overrides if not o.split("=", 1)[0].strip().startswith("analysis.")]
    if bad:
        raise ConfigError(
            f"--set {bad[0]!r}: only analysis.* keys can change when re-analysing a finished run "
            "(other keys change the trained pool; use `miaudit run` instead)"
        )
    return load_config(path, list(overrides), from_run_dir=True)


def record_hashes(x: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per record (identifies the same record across runs and seeds)."""
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little") >> 1 for r in rows],
                    dtype=np.int64)


def _embedder(config: RunConfig, rd: RunDir, dataset: Dataset, splits: Splits, device, models=None):  # noqa: ANN001, ANN202
    """(m, audit rows) -> (features of those audit records, of the population) under member m
    (``models[m]`` when given, e.g. the target of a target audit, else the pool's saved member)."""
    from miaudit.inference.embeddings import embed as features
    from miaudit.pipeline.pool import load_member

    def embed(m: int, rows: np.ndarray, population: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        held = models or {}
        model = held[m] if m in held else load_member(config, dataset.input_shape, dataset.n_classes, rd, m)
        model = model.to(device)
        pop = features(model, dataset.x[splits.population], device=device) if population else None
        return features(model, dataset.x[splits.audit[rows]], device=device), pop

    return embed


def compute_outliers(
    config: RunConfig, rd: RunDir, inp: _Inputs, progress: Progress, device, n_jobs: int  # noqa: ANN001
) -> dict[str, np.ndarray]:
    """Every measure per audited record (cached in analysis/outliers.npz under the pool fingerprint)."""
    cfg = config.analysis
    key = fingerprint({"pool": config.pool_fingerprint(), "knn_k": cfg.knn_k, "lof_k": cfg.lof_k, "v": MEASURES_VERSION})
    cache = rd.outliers_cache
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) == key:
                return {k: z[k] for k in MEASURES}
    sig = inp.signals
    embed = _embedder(config, rd, inp.dataset, inp.splits, device)
    pop_labels = sig.population_labels if sig.population_labels is not None else np.zeros(0, np.int64)
    with progress.bar("outlier measures", sig.n_models) as advance:
        geo = feature_measures(
            embed, sig.n_models, np.asarray(sig.labels), np.asarray(pop_labels),
            np.asarray(sig.in_mask), knn_k=cfg.knn_k, lof_k=cfg.lof_k, n_jobs=n_jobs, advance=advance,
        )
    plain = np.asarray(sig.logits[:, 0])
    measures = {**geo, **logit_measures(plain, np.asarray(sig.labels), np.asarray(sig.in_mask))}
    save_npz(cache, fingerprint=np.array(key), **{k: measures[k] for k in MEASURES})
    return {k: measures[k] for k in MEASURES}


def analyze_run(
    run_dir: Path | str,
    config: RunConfig,
    progress: Progress | None = None,
    *,
    targets: list[int] | None = None,
    attacks: list[str] | None = None,
    dataset: Dataset | None = None,
    splits: Splits | None = None,
    compare: Sequence[Path | str] = (),
) -> dict:
    """Per-record vulnerability, chance control, stability, outlier measures, statistics and figures.

    Parameters
    ----------
    run_dir : a run directory with signals, models and ``scores/{attack}.npy``
    config : the run's configuration (``config.analysis`` holds the options)
    targets, attacks : the targets (order of the score rows) and attacks that ran; default: read
        from ``results.json``
    dataset, splits : the run's data when already in memory; default: reloaded
    compare : other run directories (e.g. other seeds) for the stability of the vulnerable set

    Returns
    -------
    The ``vulnerability`` section of ``results.json``.
    """
    import torch

    from miaudit.pipeline.pool import resolve_device

    progress = progress or NullProgress()
    cfg = config.analysis
    rd = RunDir(Path(run_dir))
    clock = _Clock()
    if targets is None or attacks is None:
        if not rd.results.is_file():
            raise DataError(f"{rd.results} not found: finish the run first (`miaudit run`)")
        res = read_results(rd.results)
        targets = targets if targets is not None else list(res["pool"]["targets"])
        attacks = attacks if attacks is not None else list(res.get("attacks", {}))
    if splits is None:
        splits = load_splits(rd)
    if dataset is None:
        d = config.data
        dataset = load_dataset(d.name, d.params, d.data_dir, config.seed)
    if config.data.planted is not None:  # the user's own ground truth (canary auditing)
        from dataclasses import replace

        from miaudit.data.planted import read_planted

        path = Path(config.data.planted).expanduser()
        if not path.is_absolute() and config.data.data_dir is not None:
            path = Path(config.data.data_dir).expanduser() / path
        dataset = replace(dataset, planted=read_planted(path, dataset.ids, dataset.planted))
    signals = load_signals(rd.signals)
    inp = _Inputs(signals=signals, targets=list(targets), attacks=list(attacks), dataset=dataset, splits=splits)
    ids = dataset.ids[splits.audit]
    clock.lap("load")
    core = _per_record(rd, config, signals, inp.targets, inp.attacks, progress, clock)
    rv, attack = core.rv, core.attack
    clock.lap("vulnerability")

    # ---- outlier measures ----------------------------------------------------------------------
    device = resolve_device(config.runtime.device)
    n_jobs = max(1, torch.get_num_threads())
    measures = compute_outliers(config, rd, inp, progress, device, n_jobs)
    clock.lap("outliers")

    # ---- stability across runs (other seeds) ---------------------------------------------------
    hashes = record_hashes(dataset.x[splits.audit])
    across_runs = [_compare_run(Path(o), attack, cfg.alpha, cfg.cut, ids, hashes, rv) for o in compare]
    if across_runs:
        core.stability["across_runs"] = across_runs
    clock.lap("compare")

    planted = dataset.planted[splits.audit] if dataset.planted is not None else None
    out, ctx = _measures_tables_figures(rd, config, core, measures, ids, dataset.class_names, planted, hashes, clock)
    if cfg.tsne:
        out["tsne"] = _tsne_figures(config, rd, inp, rv, measures, device, n_jobs, out["figures"])
        clock.lap("tsne")
    if dataset.kind == "image":
        _image_figures(config, rd, inp, rv, measures, ctx.order, ctx.pred_out, ctx.rank_score, device, out["figures"])
        clock.lap("images")
    write_json(rd.analysis_timing, clock.as_dict())
    return out


#: what an audit of a signals file cannot compute, and why (said in results.json and the report)
NEEDS_FEATURES = dict.fromkeys(FEATURE_MEASURES, "needs the models' penultimate features; a signals file holds logits only")
NEEDS_MODELS_FIGURES = {
    "tsne.png": "needs the models' penultimate features",
    "gallery.png": "needs the records themselves",
    "gradcam.png": "needs the trained models and the images",
}


def analyze_signals(
    run_dir: Path | str,
    config: RunConfig,
    signals: Signals,
    targets: list[int],
    attacks: list[str],
    progress: Progress | None = None,
) -> dict:
    """The per-record analysis of ``analyze_run`` from signals alone (``miaudit audit --signals``).

    Everything that needs only logits, membership and attack scores is computed as for a full
    run: the vulnerable set and its chance controls, stability across targets and attacks, the
    logit-based measures (``confidence_out``, ``margin_out``, ``memorisation``), their statistics,
    ``vulnerable_records.csv`` and ``analysis/``. Measures and figures that need the models or the
    records (:data:`NEEDS_FEATURES`, :data:`NEEDS_MODELS_FIGURES`) are listed as skipped, with why.
    Record ids are the rows of the signals file (0-based); classes are named by their index.
    """
    rd = RunDir(Path(run_dir))
    clock = _Clock()
    core = _per_record(rd, config, signals, list(targets), list(attacks), progress, clock)
    clock.lap("vulnerability")
    plain = np.asarray(signals.logits[:, 0])  # (M, N, C)
    measures = logit_measures(plain, np.asarray(signals.labels), np.asarray(signals.in_mask))
    clock.lap("outliers")
    n, c = plain.shape[1], plain.shape[2]
    out, _ = _measures_tables_figures(rd, config, core, measures, np.arange(n), tuple(str(k) for k in range(c)),
                                      None, None, clock)
    out["skipped_measures"] = dict(NEEDS_FEATURES)
    out["skipped_figures"] = dict(NEEDS_MODELS_FIGURES)
    out["record_ids"] = "row of the signals file (0-based)"
    write_json(rd.analysis_timing, clock.as_dict())
    return out


#: what a target audit cannot compute, and why (said in results.json, the summary and the report)
TARGET_SKIPS = {
    "no_references": "references: none gives no model besides the target to measure the records by",
    "needs_in_models": "needs references that trained on the record (IN); references: offline trains none on the audited records",
    "onnx": "needs the target's penultimate features and gradients; an ONNX target answers with its outputs only",
}


def analyze_target(
    run_dir: Path | str,
    config: RunConfig,
    signals: Signals,
    target_index: int,
    attacks: list[str],
    verdict: Callable[[str | None, float], dict],
    *,
    dataset: Dataset,
    splits: Splits,
    origins: np.ndarray,
    model=None,  # noqa: ANN001  the target as a torch module with .embed (None: ONNX)
    planted: np.ndarray | None = None,
    progress: Progress | None = None,
) -> dict:
    """The per-record analysis of ``analyze_run`` for one model audited against references (``target:``).

    ``signals`` hold the references (models ``0 .. target_index - 1``) and the target (model
    ``target_index``); ``scores/{attack}.npy`` hold one row, the target's. With one target a
    record is vulnerable when it is a member and the target's score exceeds the α-threshold of
    the target's non-members (``cut`` is moot). The chance control is the target audit's own rule,
    ``verdict(attack, α)`` (``target.identifiable``: α × members expected, above chance when the
    bootstrap interval of TPR@α lies above α; ``attack`` None = its strongest, which is also the
    analysed attack unless ``analysis.attack`` names one); the pool's permutation control is not run (it
    would re-randomise the one fixed membership the audit is about). Outlier measures come from
    the references where the record is OUT, as in a pool run; what cannot be computed is listed
    in ``skipped_measures`` / ``skipped_figures`` with why. ``vulnerable_records.csv`` starts with
    each record's ``origin`` (``members:1234``) and ``member``.
    """
    import torch

    from miaudit.pipeline.pool import resolve_device
    from miaudit.report.summary import target_headline

    progress = progress or NullProgress()
    configured = config.analysis.attack is not None
    chosen = config.analysis.attack or verdict(None, config.analysis.alpha).get("attack")
    config = config.model_copy(update={"analysis": config.analysis.model_copy(
        update={"chance_permutations": 0, "attack": chosen})})
    cfg = config.analysis
    rd = RunDir(Path(run_dir))
    clock = _Clock()
    ti = target_index
    models = {ti: model} if model is not None and hasattr(model, "embed") else {}
    inp = _Inputs(signals=signals, targets=[ti], attacks=list(attacks), dataset=dataset, splits=splits, models=models)
    core = _per_record(rd, config, signals, [ti], inp.attacks, progress, clock)
    if not configured:
        core.why = "strongest on the target: highest TPR at alpha (the headline's rule, target.identifiable; ties: AUC)"
    for key, entry in [(fpr_key(cfg.alpha), core.control), *core.by_alpha.items()]:
        found = verdict(core.attack, float(key))
        if found.get("above_chance") is None:  # no bootstrap interval at this FPR: the closed form stays
            entry["chance_note"] = "no bootstrap interval of TPR at this FPR (audit.bootstrap = 0 or not a reported FPR)"
            continue
        entry.update(chance_method="bootstrap", chance_expected=found["chance_expected"],
                     tpr_ci95=found["tpr_ci95"], distinguishable_from_chance=found["above_chance"],
                     statement=target_headline(found))
    clock.lap("vulnerability")

    skipped: dict[str, str] = {}
    skipped_figures: dict[str, str] = {}
    labels = np.asarray(signals.labels)
    ref_in = np.asarray(signals.in_mask)[:ti]  # (R, N)
    measures: dict[str, np.ndarray] = {}
    device = resolve_device(config.runtime.device)
    if ti == 0:
        skipped.update(dict.fromkeys(MEASURES, TARGET_SKIPS["no_references"]))
    else:
        pop_labels = signals.population_labels if signals.population_labels is not None else np.zeros(0, np.int64)
        with progress.bar("outlier measures", ti) as advance:
            measures.update(feature_measures(
                _embedder(config, rd, dataset, splits, device), ti, labels, np.asarray(pop_labels), ref_in,
                knn_k=cfg.knn_k, lof_k=cfg.lof_k, n_jobs=max(1, torch.get_num_threads()), advance=advance))
        measures.update(logit_measures(np.asarray(signals.logits[:ti, 0]), labels, ref_in))
        if not ref_in.any():
            for name in (n for n, m in MEASURES.items() if m.needs_in_models):
                del measures[name]
                skipped[name] = TARGET_SKIPS["needs_in_models"]
    clock.lap("outliers")

    ids = dataset.ids[splits.audit]
    # every audited record, members first: a flagged non-member is one of the α false alarms
    lead = {"origin": np.asarray(origins), "member": np.asarray(signals.in_mask[ti]).astype(int),
            "flagged": core.rv.flags[0].astype(int)}
    out, ctx = _measures_tables_figures(rd, config, core, measures, ids, dataset.class_names, planted,
                                        record_hashes(dataset.x[splits.audit]), clock, lead=lead, every_record=True)
    if "centroid_distance" not in measures:
        skipped_figures["tsne.png"] = skipped_figures["gallery.png"] = TARGET_SKIPS["no_references"]
    elif not models:
        skipped_figures["tsne.png"] = TARGET_SKIPS["onnx"]
    elif cfg.tsne:
        out["tsne"] = _tsne_figures(config, rd, inp, core.rv, measures, device, max(1, torch.get_num_threads()),
                                    out["figures"])
        clock.lap("tsne")
    if dataset.kind == "image" and "centroid_distance" in measures:
        if not models:
            skipped_figures["gradcam.png"] = TARGET_SKIPS["onnx"]
            config = config.model_copy(update={"analysis": cfg.model_copy(update={"gradcam": False})})
        _image_figures(config, rd, inp, core.rv, measures, ctx.order, ctx.pred_out, ctx.rank_score, device,
                       out["figures"])
        clock.lap("images")
    elif dataset.kind == "image":
        skipped_figures["gradcam.png"] = TARGET_SKIPS["no_references"]
    exc = out["excess_over_false_alarms"]
    exc.pop("statement", None)  # its sets need records both IN and OUT of targets
    exc["note"] = ("one target: a record is a member or not, so no record has both a TP and an FP frequency; the "
                   "target's false alarms are the flagged non-members (vulnerable_records.csv, flagged = 1, member = 0)")
    if skipped:
        out["skipped_measures"] = skipped
    if skipped_figures:
        out["skipped_figures"] = skipped_figures
    out["record_ids"] = "row of the target audit's records (members first, then non-members); see origin"
    out["chance_control"] = ("target mode: chance = alpha x audited members; distinguishable when the bootstrap "
                             "95% interval of the target's TPR at alpha lies above alpha (target.identifiable)")
    write_json(rd.analysis_timing, clock.as_dict())
    return out


@dataclass
class _Core:
    """The per-record vulnerability of every attack and the chosen one (no features needed)."""

    rv: RecordVulnerability
    attack: str
    why: str
    scores: dict[str, np.ndarray]
    per_attack: dict[str, RecordVulnerability]
    strength: dict[str, dict]
    control: dict
    by_alpha: dict
    flagged_by: np.ndarray
    stability: dict
    labels: np.ndarray
    n_targets: int
    pred_out: np.ndarray  # (N,) class most often predicted by the models where the record is OUT


def _per_record(rd: RunDir, config: RunConfig, signals: Signals, targets: list[int], attacks: list[str],
                progress: Progress | None = None, clock: _Clock | None = None) -> _Core:
    """Vulnerability of every attack with scores in ``rd.scores``, the chosen attack, chance control, stability."""
    cfg = config.analysis
    labels = np.asarray(signals.labels)
    member = np.asarray(signals.in_mask)[targets]  # (T, N)
    alpha = cfg.alpha
    scores: dict[str, np.ndarray] = {}
    per_attack: dict[str, RecordVulnerability] = {}
    strength: dict[str, dict] = {}
    for name in attacks:
        path = rd.attack_scores(name)
        if not path.is_file():
            continue
        s = load_npy(path)
        if s.shape != member.shape:
            log.warning("scores/%s.npy has shape %s, expected %s; skipped", name, s.shape, member.shape)
            continue
        scores[name] = s
        per_attack[name] = record_vulnerability(s, member, alpha, cfg.cut)
        strength[name] = attack_strength(per_attack[name], s)
    attack, why = choose_attack(strength, cfg.attack)
    rv = per_attack[attack]
    alphas = [alpha, *(a for a in cfg.extra_alphas if a != alpha)]
    null: dict[float, np.ndarray] = {}
    if cfg.chance_permutations > 0:
        if clock is not None:
            clock.lap("vulnerability")
        start = time.perf_counter()
        null = chance_null_counts(
            attack, config.audit.attack_params.get(attack), signals.logits, signals.in_mask, signals.labels, targets,
            seed=config.seed, alphas=alphas, cut=cfg.cut, n_designs=cfg.chance_permutations,
            population_logits=signals.population_logits, population_labels=signals.population_labels,
            is_image=signals.is_image, features=signals.features, population_features=signals.population_features,
            progress=progress)
        log.info("chance control: %d random designs of %s in %.1f s", cfg.chance_permutations, attack,
                 time.perf_counter() - start)
        if clock is not None:
            clock.lap("chance_permutations")
    control = chance_control(rv, null_counts=null.get(alpha))
    n_nonmembers = int((~member).sum(1).min())
    by_alpha = {fpr_key(alpha): {**control, "tpr_at_alpha": strength[attack]["tpr_at_alpha"],
                                 "reliable": is_reliable(n_nonmembers, alpha)}}
    for a in cfg.extra_alphas:
        if a == alpha:
            continue
        rva = record_vulnerability(scores[attack], member, a, cfg.cut)
        by_alpha[fpr_key(a)] = {
            **chance_control(rva, null_counts=null.get(a)),
            "tpr_at_alpha": float(np.mean(rva.tpr_per_target())),
            "reliable": is_reliable(n_nonmembers, a),
        }
    flagged_by = np.array(
        [";".join(n for n in per_attack if per_attack[n].vulnerable[i]) for i in range(len(labels))], dtype=object
    )
    stability = {
        "across_targets": stability_across_targets(rv),
        "across_attacks": stability_between_sets({n: v.vulnerable for n, v in per_attack.items()}, rv.audited),
    }
    return _Core(rv=rv, attack=attack, why=why, scores=scores, per_attack=per_attack, strength=strength,
                 control=control, by_alpha=by_alpha, flagged_by=flagged_by, stability=stability, labels=labels,
                 n_targets=len(targets),
                 pred_out=out_prediction(np.asarray(signals.logits[:, 0]), np.asarray(signals.in_mask)))


@dataclass
class _Tables:
    order: np.ndarray
    pred_out: np.ndarray
    rank_score: np.ndarray


def _measures_tables_figures(rd, config, core: _Core, measures, ids, class_names, planted, hashes, clock,  # noqa: ANN001, ANN202
                             lead=None, every_record=False):
    """Statistics of the measures, ``vulnerable_records.csv`` (``lead``: columns put first, e.g. a target
    audit's origin; ``every_record``: non-members too), ``analysis/*`` and the deciles figure; returns the ``vulnerability`` section and what
    the image figures reuse."""
    cfg = config.analysis
    rv, attack, labels = core.rv, core.attack, core.labels
    audited = rv.audited
    tags = reason_tags(measures, reference=audited) if measures else np.full(len(labels), "", dtype=object)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xA11A, 5]))
    statistics = measure_statistics(measures, rv, audited, rng)
    beyond = score_beyond_nonmembers(core.scores[attack], rv.member)
    order = rank_records(rv, beyond)
    enrichment = natural_stats = None
    if planted is not None:
        enrichment = enr.planted_enrichment(planted, rv.vulnerable, order, rv.tp_count, rv.n_in,
                                            rv.fp_count, rv.n_out, excess_sets(rv.flags, rv.member, rv.cut)[1])
        # does "vulnerable => outlier" hold without the planted records? (the study's claim is about natural ones)
        natural_stats = measure_statistics(measures, rv, audited & (planted == ""), rng, deciles=False)
    clock.lap("statistics")

    pred_out = core.pred_out
    write_records_csv(rd.vulnerable_records, order, audited, ids, labels, class_names, rv,
                       core.flagged_by, measures, tags, planted, pred_out, beyond, lead,
                       every_record)
    extra = {"record_hash": hashes} if hashes is not None else {}
    save_npz(rd.vulnerability_arrays, record_ids=ids, **extra,
             tp_frequency=rv.tp_frequency, vulnerability=rv.vulnerability, vulnerable=rv.vulnerable,
             n_in=rv.n_in, attack=np.array(attack), alpha=np.array(rv.alpha))
    top = [i for i in order if audited[i]][: cfg.top_k]
    write_deciles_csv(rd.deciles, statistics)
    write_text(rd.top_vulnerable,
               top_table(top, ids, labels, class_names, rv, measures, tags, planted, pred_out, beyond))
    clock.lap("tables")

    figures = []
    if measures:
        figs.plot_deciles({k: statistics[k]["deciles"] for k in measures}, rv.alpha, attack, rd.figures / "deciles.png")
        figures.append("figures/deciles.png")
    clock.lap("figure_deciles")
    out = {
        "attack": attack,
        "attack_choice": core.why,
        "attack_strength": core.strength,
        "alpha": rv.alpha,
        "cut": cfg.cut,
        "definition": (
            "flagged by a target when its score exceeds the target's threshold at FPR alpha (metrics.tpr_at_fpr's "
            "rule); vulnerable = flagged in at least `cut` of the targets where the record is IN"
        ),
        "ranking": RANKING,
        "n_targets": core.n_targets,
        "in_targets_per_record": [int(rv.n_in[audited].min()), int(rv.n_in[audited].max())] if audited.any() else [0, 0],
        "tpr_at_alpha": core.strength[attack]["tpr_at_alpha"],
        **core.control,
        "by_alpha": core.by_alpha,
        "stability": core.stability,
        "vulnerable_per_attack": {n: int(v.vulnerable.sum()) for n, v in core.per_attack.items()},
        "statistics": statistics,
        "enrichment": enrichment,
        "statistics_natural_only": natural_stats,
        "excess_over_false_alarms": excess_summary(statistics, rv),
        "reason_counts": reason_counts(tags[rv.vulnerable]),
        "top_records": [int(ids[i]) for i in top],
        "figures": figures,
    }
    return out, _Tables(order=order, pred_out=pred_out, rank_score=beyond)


def _tsne_figures(config, rd, inp, rv, measures, device, n_jobs, figures) -> dict:  # noqa: ANN001
    cfg = config.analysis
    t0 = inp.targets[0]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x75E, 1]))
    audited = rv.audited
    idx = subsample(len(rv.vulnerable), rv.vulnerable & audited, cfg.max_tsne_points, rng)
    idx = idx[audited[idx]]
    feats = _embedder(config, rd, inp.dataset, inp.splits, device, inp.models)(t0, idx, population=False)[0]
    labels = np.asarray(inp.signals.labels)
    emb, backend = tsne_embedding(feats, seed=config.seed, n_jobs=n_jobs)
    share_all = float(rv.vulnerable[audited].mean())
    note = f"{len(idx)} of {int(audited.sum())} audited records; features of model {t0}; {backend}"
    # many classes: one hue per class is unreadable, colour by atypicality instead (vulnerable still circled)
    colour = {"values": measures["centroid_distance"][idx],
              "values_label": "distance to class centroid (OUT models; 1 = typical)"}
    many = len(inp.dataset.class_names) > figs.MAX_CLASS_COLOURS
    what = "coloured by distance to class centroid" if many else "coloured by class"
    figs.plot_tsne(emb, labels[idx], rv.vulnerable[idx], inp.dataset.class_names, rd.figures / "tsne.png",
                   title=f"t-SNE of penultimate features (model {t0}), {what}; circled: vulnerable at FPR {rv.alpha:g}",
                   note=note, share_all=share_all, **colour)
    figures.append("figures/tsne.png")
    if cfg.tsne_logits:
        lg = np.asarray(inp.signals.logits[t0, 0])[idx]
        emb2, _ = tsne_embedding(lg, seed=config.seed, n_jobs=n_jobs)
        figs.plot_tsne(emb2, labels[idx], rv.vulnerable[idx], inp.dataset.class_names, rd.figures / "tsne_logits.png",
                       title=f"t-SNE of logits (model {t0}), {what}; circled: vulnerable at FPR {rv.alpha:g}", note=note,
                       share_all=share_all, **colour)
        figures.append("figures/tsne_logits.png")
    return {"model": t0, "n_points": int(len(idx)), "n_vulnerable_drawn": int(rv.vulnerable[idx].sum()),
            "colour_by": "centroid_distance" if many else "class"}


#: typical records of the same class shown beside each vulnerable one in the gallery; records shown at most
GALLERY_TYPICAL = 2
GALLERY_MAX = 12


def _image_figures(config, rd, inp, rv, measures, order, pred_out, rank_score, device, figures) -> None:  # noqa: ANN001
    """The gallery and Grad-CAM, both of model ``targets[0]``: its prediction and whether it trained on
    each record are in every title; the gallery adds what the models that never saw the record predict."""
    from miaudit.pipeline.pool import load_member

    cfg = config.analysis
    ds, sp = inp.dataset, inp.splits
    names = ds.class_names
    labels = np.asarray(inp.signals.labels)
    x_audit = ds.x[sp.audit]
    ids = ds.ids[sp.audit]
    t0 = inp.targets[0]
    in_t0 = np.asarray(inp.signals.in_mask[t0], bool)
    pred_t0 = np.asarray(inp.signals.logits[t0, 0]).argmax(-1)
    typical_pool = rv.audited & (rv.tp_count == 0) & ~rv.vulnerable

    def status(i: int) -> str:
        return "trained on it" if in_t0[i] else "never saw it"

    def record_meta(i: int) -> dict:
        return {"record_id": int(ids[i]), "label": class_name(names, int(labels[i])), "model": int(t0),
                "model_trained_on_it": bool(in_t0[i]), "model_pred": class_name(names, int(pred_t0[i])),
                "out_pred": class_name(names, int(pred_out[i]))}

    ranked = [i for i in order if rv.vulnerable[i]]
    top = ranked[: min(cfg.top_k, GALLERY_MAX)]
    if top:
        used: set[int] = set()
        groups = []
        for i in top:
            typ = typical_records(i, labels, typical_pool, measures, used, GALLERY_TYPICAL)
            groups.append({
                "image": x_audit[i], "meta": record_meta(i),
                "title": (f"#{int(ids[i])} {class_name(names, int(labels[i]))}\n"
                          f"model {t0} ({'IN' if in_t0[i] else 'OUT'}): {class_name(names, int(pred_t0[i]))}\n"
                          f"unseen: {class_name(names, int(pred_out[i]))}\nflagged {int(rv.tp_count[i])}/{int(rv.n_in[i])}"),
                "typical": [(x_audit[j], f"typical #{int(ids[j])}\nmodel {t0} ({'IN' if in_t0[j] else 'OUT'}): "
                             f"{class_name(names, int(pred_t0[j]))}", record_meta(j)) for j in typ],
            })
        figs.plot_gallery(groups, rd.figures / "gallery.png", suptitle=(
            f"Top {len(top)} vulnerable records at FPR {rv.alpha:g} (red), each beside typical records of its class.\n"
            f"Titles: record, label; prediction of model {t0} (IN: trained on the record, OUT: never saw it);\n"
            "unseen: what the models that never saw it predict; flagged: by how many models that trained on it"))
        figures.append("figures/gallery.png")
    if not cfg.gradcam:
        return
    model = inp.models[t0] if t0 in inp.models else load_member(config, ds.input_shape, ds.n_classes, RunDir(rd.root), t0)
    if getattr(model, "cam_layer", None) is None is None or not ranked:
        return
    from miaudit.inference.gradcam import gradcam_maps

    # model t0 explains records it trained on: the vulnerable ones it leaks, and typical ones it also saw
    vul = [i for i in ranked if in_t0[i]][: cfg.gradcam_k]
    used = set()
    typ = []
    for i in vul:
        pick = typical_records(i, labels, typical_pool & in_t0, measures, used, 1)
        if pick:
            typ.append((i, pick[0]))
    if not typ:
        return
    v_idx = np.array([a for a, _ in typ])
    t_idx = np.array([b for _, b in typ])
    v_maps = gradcam_maps(model, x_audit[v_idx], labels[v_idx], device=device)
    t_maps = gradcam_maps(model, x_audit[t_idx], labels[t_idx], device=device)

    def title(i: int) -> str:
        return (f"#{int(ids[i])} {class_name(names, int(labels[i]))}\n"
                f"model {t0} ({status(i)}): {class_name(names, int(pred_t0[i]))}")

    figs.plot_gradcam(x_audit[v_idx], v_maps, [title(i) for i in v_idx], x_audit[t_idx], t_maps,
                      [title(i) for i in t_idx], rd.figures / "gradcam.png",
                      suptitle=f"Grad-CAM of model {t0} (the gallery's model), which trained on every record shown;\n"
                               "maps toward the given label, scaled to [0, 1] per image",
                      meta={"model": int(t0), "vulnerable": [record_meta(i) for i in v_idx],
                            "typical": [record_meta(i) for i in t_idx]})
    figures.append("figures/gradcam.png")


def check_compare_dir(other: Path | str) -> RunDir:
    """``other`` as a run directory to ``--compare`` with, or a one-line ``DataError`` saying why it is not one."""
    ord_ = RunDir(Path(other))
    if not ord_.results.is_file():
        raise DataError(f"--compare {other}: no results.json there; finish that run first")
    if not (ord_.signals / "in_mask.npy").is_file() or not (ord_.signals / "record_ids.npy").is_file():
        raise DataError(f"--compare {other}: not a `miaudit run` directory (no signals/ of a trained pool; an "
                        "`miaudit audit` directory has no record ids to match); compare runs of `miaudit run`")
    return ord_


def _compare_run(other: Path, attack: str, alpha: float, cut: float, ids: np.ndarray, hashes: np.ndarray,
                 rv: RecordVulnerability) -> dict:
    """Jaccard of this run's vulnerable set with another run's, over the records both audit."""
    ord_ = check_compare_dir(other)
    res = read_json(ord_.results)
    path = ord_.attack_scores(attack)
    if not path.is_file():
        raise DataError(f"--compare {other}: no scores for attack {attack!r} (set analysis.attack to one both runs have)")
    sig_mask = load_npy(ord_.signals / "in_mask.npy")
    member = sig_mask[list(res["pool"]["targets"])]
    o_rv = record_vulnerability(load_npy(path), member, alpha, cut)
    o_ids = load_npy(ord_.signals / "record_ids.npy")
    cached = ord_.vulnerability_arrays
    o_hash = None
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            if "record_hash" in z and len(z["record_hash"]) == len(o_ids):
                o_hash = z["record_hash"]
    if o_hash is None:
        o_cfg = load_run_config(other)
        d = o_cfg.data
        o_ds = load_dataset(d.name, d.params, d.data_dir, o_cfg.seed)
        o_hash = record_hashes(o_ds.x[load_splits(ord_).audit])
    key_a = {(int(i), int(h)): k for k, (i, h) in enumerate(zip(ids, hashes))}
    pairs = [(key_a[(int(i), int(h))], k) for k, (i, h) in enumerate(zip(o_ids, o_hash)) if (int(i), int(h)) in key_a]
    pairs = [(a, b) for a, b in pairs if rv.audited[a] and o_rv.audited[b]]
    entry = {"run": str(other), "seed": res.get("seed"), "n_common_records": len(pairs)}
    if not pairs:
        entry.update(jaccard=None, chance_jaccard=None,
                     note="no record audited by both runs (a seeded generator draws different records per seed)")
        return entry
    a_idx = np.array([a for a, _ in pairs])
    b_idx = np.array([b for _, b in pairs])
    va, vb = rv.vulnerable[a_idx], o_rv.vulnerable[b_idx]
    j = jaccard(va, vb)
    cj = chance_jaccard(va.mean(), vb.mean())
    entry.update(
        sizes=[int(va.sum()), int(vb.sum())],
        jaccard=None if not np.isfinite(j) else j,
        chance_jaccard=None if not np.isfinite(cj) else cj,
    )
    return entry


def reanalyze_run(
    run_dir: Path | str, overrides: Sequence[str] = (), compare: Sequence[Path | str] = (), progress: Progress | None = None
) -> dict:
    """(Re)run the analysis on a finished run; update its results.json, summary.txt and config.

    Only ``analysis.*`` keys may be overridden: the trained pool stays as it is.
    """
    from miaudit.report.summary import format_summary
    from miaudit.rundir import locked

    rd = RunDir(Path(run_dir))
    config = load_run_config(rd.root, overrides)
    if not rd.results.is_file():
        raise DataError(f"{rd.results} not found: finish the run first (`miaudit run`)")
    for other in compare:  # before hours of analysis, not after
        check_compare_dir(other)
    if config.target is not None:  # its records, target model and signals are assembled by miaudit.pipeline.target
        raise ConfigError(f"{rd.root} is a target audit (target:); re-run `miaudit run` with its config and --out "
                          f"{rd.root} to redo the analysis (the trained references are reused)")
    with locked(rd):
        results = read_json(rd.results)
        start = time.perf_counter()
        results["vulnerability"] = analyze_run(rd.root, config, progress, compare=compare)
        results["config"] = config.model_dump(mode="json")
        write_text(rd.resolved_config, config.to_yaml())
        write_json(rd.results, results)
        write_text(rd.summary, format_summary(results))
        timing_path = rd.timing
        timing = read_json(timing_path) if timing_path.is_file() else {}
        timing.setdefault("stages_s", {})["analysis"] = time.perf_counter() - start
        write_json(timing_path, timing)
    return results
