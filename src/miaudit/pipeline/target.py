"""Audit *your* model: one model trained outside miaudit, its training records and held-out records.

The ``target:`` section of a run config (``docs/target.md``) names the weights, the members file
and the non-members file. This module

1. assembles the records (``pipeline.data.target_records``): a seeded sample of members and as
   many non-members are *audited*, the rest feed the other splits;
2. loads the target (``load_target``): safetensors, a plain ``.pt``/``.pth`` state_dict read
   with ``torch.load(weights_only=True)``, or ``.onnx`` through onnxruntime;
3. trains the references through the pool's executors (``references``: ``online`` = balanced
   design over the audited records, ``offline`` = population records only, ``none``);
4. queries the target and joins it to the references' signals as one more model of the pool
   (``with_target``), so the same attacks, metrics, defences and report run on it.

Bad input stops before anything is written, with one line (``TargetError``, exit 2).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from miaudit.config import AuditConfig, ModelConfig, RunConfig
from miaudit.errors import DataError, TargetError
from miaudit.inference.logits import model_logits
from miaudit.io import save_npz, sha256_file, write_json, write_text
from miaudit.pipeline.data import TargetRecords, target_records
from miaudit.pipeline.pool import reference_inputs, reference_membership
from miaudit.pipeline.signals import n_queries
from miaudit.progress import NullProgress, Progress, StageTimer
from miaudit.report.summary import target_headline
from miaudit.results import HEADLINE_FPR, results_document, strongest
from miaudit.signals import Signals
from miaudit.transforms import query_offsets

log = logging.getLogger(__name__)

#: train or test accuracy of target and references further apart than this is reported plainly
ACCURACY_GAP = 0.05
ONNX_HINT = "pip install 'miaudit[onnx]'"


# --- records --------------------------------------------------------------------------------


# --- the target model -----------------------------------------------------------------------


class OnnxModel(torch.nn.Module):
    """An ONNX model queried through onnxruntime, behind the ``nn.Module`` call ``model_logits`` uses."""

    def __init__(self, path: Path, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise TargetError(f"target.weights {path}: reading .onnx needs onnxruntime ({ONNX_HINT})") from None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  onnxruntime raises its own exception types
            raise TargetError(f"target.weights {path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        want = list(inp.shape[1:])
        fixed = [d if isinstance(d, int) else None for d in want]
        if len(want) != len(input_shape) or any(d is not None and d != s for d, s in zip(fixed, input_shape)):
            raise TargetError(f"target.weights {path}: the ONNX model expects inputs of shape {tuple(want)} per record, "
                              f"the records have {tuple(input_shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a ``.pt``/``.pth`` that holds a plain state_dict (nothing else)."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from miaudit.io import load_weights

        try:
            return load_weights(path)
        except DataError as exc:
            raise TargetError(f"target.weights {exc}") from None
    if suffix in (".pt", ".pth"):
        import pickle

        try:  # weights_only: a restricted unpickler that builds tensors and containers, never runs code
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TargetError(f"target.weights {path}: not a plain state_dict (refused, never unpickled: {first[:160]}); "
                              "save it with torch.save(model.state_dict(), path) or safetensors") from None
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            raise TargetError(f"target.weights {path}: not a plain state_dict (a mapping of names to tensors); "
                              "save it with torch.save(model.state_dict(), path)")
        return obj
    raise TargetError(f"target.weights {path}: unknown format {suffix or '(no suffix)'}; use .safetensors, .pt/.pth or .onnx")


def load_target(config: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> torch.nn.Module:
    """The target in eval mode; its keys and shapes checked against the architecture (first mismatch named)."""
    from miaudit.models import build_model

    t = config.target
    assert t is not None
    path = Path(t.weights)
    if not path.is_file():
        raise TargetError(f"target.weights {path}: file not found")
    if path.suffix.lower() == ".onnx":
        model: torch.nn.Module = OnnxModel(path, input_shape)
    else:
        spec: ModelConfig = t.model or config.model
        model = build_model(spec.name, spec.params, input_shape, n_classes)
        state = read_state_dict(path)
        expected = model.state_dict()
        missing = [k for k in expected if k not in state]
        if missing:
            raise TargetError(f"target.weights {path}: no tensor {missing[0]!r} that model {spec.name!r} needs "
                              f"({len(missing)} missing)")
        extra = [k for k in state if k not in expected]
        if extra:
            raise TargetError(f"target.weights {path}: tensor {extra[0]!r} is not part of model {spec.name!r}")
        for k, v in expected.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise TargetError(f"target.weights {path}: {k!r} has shape {tuple(state[k].shape)}, model {spec.name!r} "
                                  f"expects {tuple(v.shape)} (the data has {n_classes} classes, inputs {input_shape})")
        model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        probe = model(torch.zeros((2, *input_shape)))
    if probe.ndim != 2 or probe.shape[1] != n_classes:
        raise TargetError(f"target.weights {path}: the model outputs shape {tuple(probe.shape[1:])} per record, "
                          f"the data has {n_classes} classes")
    return model


def query_target(model: torch.nn.Module, config: RunConfig, records: TargetRecords) -> dict[str, np.ndarray]:
    """The target's logits on audited (A, N, C), population (A, P, C) and test (1, T, C) records."""
    ds, sp = records.dataset, records.splits
    queries = query_offsets(n_queries(config, ds.kind == "image"))
    dev = torch.device("cpu")
    return {
        "audit": model_logits(model, ds.x[sp.audit], queries, device=dev),
        "population": model_logits(model, ds.x[sp.population], queries, device=dev),
        "test": model_logits(model, ds.x[sp.test], queries[:1], device=dev),
    }


# --- the glue to the attack stage ---------------------------------------------------------


def with_target(refs: Signals | None, target: dict[str, np.ndarray], target_in: np.ndarray, records: TargetRecords,
                is_image: bool) -> tuple[Signals, int]:
    """The references' signals plus the target as the last model of the pool; returns it and its index.

    The attack stage then sees the target exactly as it sees a pool member playing the target: its
    row of ``in_mask`` (``target_in``) is withheld from the attacks and used only by the metrics.
    This is the one place that adapts target mode to the attack input.
    """
    ds, sp = records.dataset, records.splits

    def stack(ref: np.ndarray | None, own: np.ndarray) -> np.ndarray:
        return own[None] if ref is None else np.concatenate([np.asarray(ref), own[None]])

    ref_mask = np.zeros((0, len(target_in)), bool) if refs is None else np.asarray(refs.in_mask)
    sig = Signals(
        logits=stack(None if refs is None else refs.logits, target["audit"]),
        in_mask=np.concatenate([ref_mask, target_in[None]]),
        labels=ds.y[sp.audit],
        population_logits=stack(None if refs is None else refs.population_logits, target["population"])
        if len(sp.population) else None,
        population_labels=ds.y[sp.population],
        test_logits=stack(None if refs is None else refs.test_logits, target["test"]),
        test_labels=ds.y[sp.test],
        is_image=is_image,
    )
    return sig, sig.n_models - 1


def target_attacks(config: RunConfig, is_image: bool) -> list[str]:
    """The attacks the references allow: all (online), no online ones (offline), reference-free ones (none)."""
    from miaudit.attacks import ATTACKS
    from miaudit.pipeline.attack import default_attacks

    if config.audit.attacks is not None:
        return list(config.audit.attacks)
    allowed = {"online": {"none", "offline", "online"}, "offline": {"none", "offline"}, "none": {"none"}}
    mode = config.target.references if config.target else "online"
    return [n for n in default_attacks(is_image, opt_in=True) if ATTACKS.get(n).knowledge in allowed[mode]
            and not (mode == "none" and n == "calibrated-loss")]


# --- what the user reads --------------------------------------------------------------------


def accuracy_comparison(util: dict, target_index: int) -> tuple[dict, list[str]]:
    """Target's train/test accuracy beside the references' mean, and plain warnings when they differ."""
    rows = util["per_model"]
    tgt = rows[target_index]
    refs = rows[:target_index]
    out: dict[str, Any] = {"target": {k: tgt.get(k) for k in ("train_acc", "test_acc")}}
    warnings = []
    if refs:
        out["references"] = {}
        for k, what in (("train_acc", "train"), ("test_acc", "test")):
            vals = [r[k] for r in refs if r.get(k) is not None]
            if not vals:
                continue
            out["references"][k] = ref = float(np.mean(vals))
            if tgt.get(k) is not None and abs(tgt[k] - ref) > ACCURACY_GAP:
                warnings.append(
                    f"the target's {what} accuracy ({tgt[k]:.1%}) differs from the references' ({ref:.1%}) by more than "
                    f"{ACCURACY_GAP:.0%} points: the references do not match the target's training well, so the "
                    "reference attacks (LiRA, RMIA) may understate its leakage; set model/train closer to the target's"
                )
    return out, warnings


def identifiable(results: dict, scores: dict[str, np.ndarray], member: np.ndarray, alpha: float = HEADLINE_FPR,
                 attack: str | None = None) -> dict:
    """How many of the audited training records the strongest attack (or ``attack``) flags at FPR α, with the
    chance control (also the vulnerability analysis's chance control in target mode).

    The threshold is the rule of ``metrics.tpr_at_fpr`` on the target's non-members; an attack
    unrelated to membership flags about α of the members too (``chance_expected``). The count is
    above chance when the bootstrap interval of TPR@α (members and non-members resampled, so the
    threshold's own noise is in it) lies above α; a binomial test on the members alone would
    ignore that the threshold rests on a few non-members and call chance findings significant.
    """
    from miaudit.metrics import fpr_key
    from miaudit.vulnerability.scores import flag_at_fpr

    key = fpr_key(alpha)
    attacks = results["attacks"]
    if not attacks:
        return {}
    best = attack or strongest(attacks, key)
    flagged = flag_at_fpr(scores[best][0], member, alpha)
    n_members = int(member.sum())
    ci = attacks[best].get("ci95", {}).get("tpr_at_fpr", {}).get(key)
    return {
        "attack": best,
        "fpr": alpha,
        "n_members": n_members,
        "n_identifiable": int((flagged & member).sum()),
        "n_nonmembers_flagged": int((flagged & ~member).sum()),
        "chance_expected": alpha * n_members,
        "tpr_ci95": ci,
        "above_chance": None if ci is None else bool(ci[0] > alpha),
        "flagged": flagged,
    }


def write_vulnerable_records(path: Path, records: TargetRecords, scores: np.ndarray, found: dict,
                             ref_logits: np.ndarray | None, ref_in: np.ndarray | None) -> None:
    """Audited records, most exposed first: origin (file and row), membership, score, flagged, and the
    outlier evidence the references give (OUT confidence, margin, memorisation; ``vulnerability.outliers``)."""
    import csv
    import io as _io

    from miaudit.vulnerability.outliers import logit_measures

    sp, ds = records.splits, records.dataset
    member = records.member[sp.audit]
    measures: dict[str, np.ndarray] = {}
    if ref_logits is not None and ref_in is not None and ref_logits.shape[0] and (~ref_in).any(axis=0).all():
        measures = logit_measures(ref_logits, ds.y[sp.audit], ref_in)
    flagged = found.get("flagged", np.zeros(len(member), bool))
    order = np.lexsort((-scores, ~flagged, ~member))  # flagged members first, then by score
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["origin", "member", "label", "class_name", "score", "flagged", *measures])
    for i in order:
        lab = int(ds.y[sp.audit][i])
        name = ds.class_names[lab] if lab < len(ds.class_names) else str(lab)
        w.writerow([records.origins[sp.audit][i], int(member[i]), lab, name, f"{scores[i]:.6g}", int(flagged[i]),
                    *(f"{measures[k][i]:.6g}" for k in measures)])
    write_text(path, buf.getvalue())


# --- the run ----------------------------------------------------------------------------------


def run_target_audit(config: RunConfig, out: Path | str, *, force: bool = False,
                     progress: Progress | None = None) -> dict:
    """Audit ``config.target``: train (or reuse) the references, query the target, attack, report.

    Writes the run directory of ``miaudit run`` (results.json, summary.txt, scores/, figures/roc.png,
    vulnerable_records.csv, report.html) with a ``target`` section; returns results.json's content.
    """
    from miaudit.pipeline.attack import run_attacks, utility
    from miaudit.pipeline.members import (
        compute_signals,
        make_executor,
        release_context,
        train_pool,
    )
    from miaudit.pipeline.pool import resolve_device
    from miaudit.provenance import machine, package_versions
    from miaudit.report.roc import write_roc_figure
    from miaudit.report.summary import format_summary
    from miaudit.rundir import locked, prepare_run_dir

    t = config.target
    assert t is not None
    progress = progress or NullProgress()
    timer = StageTimer()
    with timer("data", progress):  # every input checked before the run directory is touched
        records = target_records(config)
        ds, sp = records.dataset, records.splits
        model = load_target(config, ds.input_shape, ds.n_classes)
    is_image = ds.kind == "image"
    rd = prepare_run_dir(Path(out), config.pool_fingerprint(), force=force)
    with locked(rd):
        # runtime.threads as in a pool run (auto: the usable cores other work leaves idle; miaudit.threads)
        from miaudit.threads import choose_threads

        thread_choice = choose_threads(config.runtime.threads, workers=config.runtime.workers)
        torch.set_num_threads(thread_choice.threads)
        device = resolve_device(config.runtime.device)
        write_text(rd.resolved_config, config.to_yaml())
        weights_sha = sha256_file(t.weights)
        write_json(rd.manifest, {"pool_fingerprint": config.pool_fingerprint(), "kind": "target", "seed": config.seed,
                                 "target_sha256": weights_sha, "versions": package_versions(), "machine": machine(),
                                 "threads": torch.get_num_threads(), "thread_choice": thread_choice.as_dict(),
                                 "device": str(device)})
        save_npz(rd.splits, **sp.as_dict(), audit_origins=records.origins[sp.audit])

        refs, sidecars = None, []
        if t.references != "none":
            executor = make_executor(config, input_shape=ds.input_shape, n_classes=ds.n_classes, progress=progress,
                                     threads=thread_choice)
            try:
                with timer("training", progress):
                    sidecars = train_pool(reference_inputs(config, ds, sp), rd, device=device, progress=progress,
                                          executor=executor)
                with timer("signals", progress):
                    refs = compute_signals(config, ds, sp, reference_membership(config, len(sp.audit)), rd,
                                           device=device, progress=progress, executor=executor)
            finally:
                executor.close()
                release_context()
        with timer("querying", progress):
            own = query_target(model, config, records)
            save_npz(rd.root / "target" / "logits.npz", **own)
        target_in = records.member[sp.audit]
        signals, ti = with_target(refs, own, target_in, records, is_image)
        signals = dataclasses.replace(signals, features=ds.x[sp.audit], population_features=ds.x[sp.population])
        audit_cfg: AuditConfig = config.audit.model_copy(update={"targets": [ti],
                                                                 "attacks": target_attacks(config, is_image)})
        with timer("attacks", progress):
            attack_run = run_attacks(signals, audit_cfg, seed=config.seed, scores_dir=rd.scores, progress=progress)

        defences, skipped_defences = None, None
        if config.defences and t.references == "offline":
            # the defence evaluation fits each model's transform on its IN audited records; offline
            # references hold none (they trained on population records), so their transforms would be empty
            skipped_defences = ("inference-time defences not evaluated with references: offline (the references "
                                "trained on population records, which the defence evaluation cannot fit on); use online")
        elif config.defences:
            with timer("defences", progress):
                from miaudit.pipeline.defences import evaluate_defences

                defences, _ = evaluate_defences(signals, config.model_copy(update={"audit": audit_cfg}), progress=progress)

        vulnerability = None
        if config.analysis.vulnerability and attack_run.results:
            with timer("analysis", progress):  # which of the target's records leak, and why (miaudit.vulnerability)
                from miaudit.pipeline.analysis import analyze_target

                vulnerability = analyze_target(
                    rd.root, config, signals, ti, list(attack_run.results),
                    lambda attack, alpha: identifiable({"attacks": attack_run.results}, attack_run.scores, target_in,
                                                       alpha, attack=attack),
                    dataset=ds, splits=sp, origins=records.origins[sp.audit], model=model,
                    planted=None if records.planted is None else records.planted[sp.audit], progress=progress)

        with timer("report", progress):
            util = utility(signals, [ti])
            comparison, acc_warnings = accuracy_comparison(util, ti)
            results: dict[str, Any] = results_document(
                config=config.model_dump(mode="json"),
                pool_fingerprint=config.pool_fingerprint(),
                seed=config.seed,
                versions=package_versions(),
                data={"name": "target records", "kind": ds.kind, "n_records": len(ds), "n_classes": ds.n_classes,
                      "input_shape": list(ds.input_shape), "splits": sp.sizes()},
                pool={"n_models": signals.n_models, "targets": [ti], "epochs_run": [s["epochs_run"] for s in sidecars]},
                utility=util,
                attacks=attack_run.results,
                skipped_attacks=attack_run.skipped,
                warnings=acc_warnings + attack_run.warnings,
            )
            found = identifiable(results, attack_run.scores, target_in)
            results["target"] = {
                "weights": str(t.weights), "sha256": weights_sha, "format": Path(t.weights).suffix.lower().lstrip("."),
                "references": t.references, "n_references": signals.n_models - 1,
                "members": {"file": t.members.name, "n_records": int(records.member.sum()),
                            "n_audited": int(target_in.sum())},
                "non_members": {"file": t.non_members.name, "n_records": int((~records.member).sum()),
                                "n_audited": int((~target_in).sum()), "duplicates_dropped": records.n_duplicates},
                "accuracy": comparison,
                "accuracy_warnings": acc_warnings,
                "identifiable": {k: v for k, v in found.items() if k != "flagged"},
                "headline": target_headline(found),
                "notes": [],  # what the summary says besides the tables (also in warnings)
            }
            if records.n_duplicates:
                results["target"]["notes"].append(f"{records.n_duplicates} non-member record(s) are exact duplicates of members "
                                           "(same features and label): dropped from the non-members")
            if defences is not None:
                results["defences"] = defences
            if vulnerability is not None:
                results["vulnerability"] = vulnerability
            if skipped_defences:
                results["target"]["notes"].append(skipped_defences)
            results["warnings"] += results["target"]["notes"]
            write_json(rd.results, results)
            write_text(rd.summary, format_summary(results))
            if found and vulnerability is None:  # analysis.vulnerability off: the flagged set and the references' measures
                write_vulnerable_records(rd.vulnerable_records, records,
                                         attack_run.scores[found["attack"]][0], found,
                                         None if refs is None else np.asarray(refs.logits[:, 0]),
                                         None if refs is None else np.asarray(refs.in_mask))
            if attack_run.roc:
                write_roc_figure(rd.roc_figure, attack_run.roc, attack_run.results)
        write_json(rd.timing, {"stages_s": timer.seconds, "total_s": time.perf_counter() - timer.started,
                                             "attacks_s": attack_run.seconds})
        from miaudit.report.render import try_write_report

        try_write_report(rd.root)
    return results


