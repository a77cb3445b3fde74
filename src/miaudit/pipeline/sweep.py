"""``miaudit sweep``: compare defences on one dataset — utility against privacy, one command.

A sweep file names a base run config and a list of *variants*; each variant is a full run
(pool + signals + attacks [+ inference-time defences]) in ``DIR/variants/<name>/``::

    base: ../synthetic-purchase.yaml        # or an inline mapping; relative to the sweep file
    set: [pool.n_models=8]                  # applied to every variant
    defences: [logit-reweighting]           # inference-time defences evaluated in every variant
    variants:
      - name: original                      # no recipes
      - name: l2-{weight_decay}             # a grid: one variant per value
        recipes: [l2]
        grid: {l2.weight_decay: [5.0e-4, 1.0e-3, 5.0e-3]}
      - name: targeted
        recipes: [{name: targeted-augmentation, params: {ranking_from: "variant:original"}}]

Layering per variant: base → sweep ``set`` → the variant's recipes (they replace the base's
``train.recipes``) and defences → the variant's ``set`` → its grid point → ``--set`` from the
command line. A grid key is ``<recipe>.<param>`` for a recipe of the variant, or a dotted config
key. ``ranking_from: "variant:NAME"`` points a targeted recipe at an earlier variant's run.
Every variant is validated before anything trains.

Resuming: a variant whose ``results.json`` holds exactly its config is reused without running
anything; an interrupted variant resumes inside its run directory (finished members are kept).

Outputs (written atomically after every variant, so a partial sweep is readable):
``sweep.csv`` and ``sweep.md`` — one row per variant (and per variant × inference-time
defence) with train/test accuracy, training time per model, ε where defined, and per attack
AUC, advantage, TPR@0.1% and TPR@1% with 95% CIs; ``figures/utility_privacy.png`` — test
accuracy against TPR@1% FPR of the strongest attack, Pareto front marked.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from miaudit._validation import format_validation_error
from miaudit.config import RunConfig, SweepConfig, apply_overrides, set_key
from miaudit.errors import ConfigError
from miaudit.io import read_json, write_text
from miaudit.pipeline.configure import read_yaml, validate_config
from miaudit.pipeline.run import run_audit
from miaudit.progress import NullProgress, Progress
from miaudit.report.render import try_write_sweep_report
from miaudit.report.sweep_table import (
    UTILITY_PRIVACY_FIGURE,
    variant_rows,
    write_tables,
    write_utility_privacy_figure,
)
from miaudit.results import read_results
from miaudit.rundir import RunDir, locked, prepare_run_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


@dataclass
class Variant:
    """One expanded variant: a name and its validated run config."""

    name: str
    config: RunConfig
    grid_point: dict[str, Any] = field(default_factory=dict)


# --- loading and expanding ----------------------------------------------------------------------


def load_sweep(path: Path | str) -> tuple[SweepConfig, dict[str, Any]]:
    """The validated sweep file and its base run config as a raw mapping (defaults not filled in)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    if sweep.base is None:
        base: dict[str, Any] = {}
    elif isinstance(sweep.base, dict):
        base = copy.deepcopy(sweep.base)
    else:
        base_path = sweep.base if sweep.base.is_absolute() else path.parent / sweep.base
        base = read_yaml(base_path)
    return sweep, base


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace("/", "_").replace(" ", "")


def _variant_name(template: str, point: dict[str, Any]) -> str:
    if not point:
        return template
    short = {k.rsplit(".", 1)[-1]: _fmt_value(v) for k, v in point.items()}
    if "{" in template:
        try:
            return template.format(**short)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"variant name {template!r}: no grid key for {exc}") from None
    return "-".join([template, *short.values()])


def expand_sweep(
    sweep: SweepConfig, base: dict[str, Any], *, out: Path | str, overrides: list[str] | None = None,
    source: str = "sweep",
) -> list[Variant]:
    """Every variant (grids expanded) as a validated RunConfig; all problems raised before anything trains."""
    out = Path(out)
    variants: list[Variant] = []
    problems: list[str] = []
    for i, v in enumerate(sweep.variants):
        keys = list(v.grid)
        for values in itertools.product(*(v.grid[k] for k in keys)) if keys else [()]:
            point = dict(zip(keys, values))
            where = f"variants[{i}]"
            try:
                name = _variant_name(v.name, point)
                where = f"variants[{i}] ({name})"
                raw = apply_overrides(copy.deepcopy(base), list(sweep.set))
                recipes = [{"name": r} if isinstance(r, str) else copy.deepcopy(r) for r in v.recipes]
                recipe_names = [r.get("name") for r in recipes if isinstance(r, dict)]
                raw.setdefault("train", {})["recipes"] = recipes
                raw["defences"] = copy.deepcopy(v.defences if v.defences is not None else sweep.defences)
                raw = apply_overrides(raw, list(v.set))
                for key, value in point.items():
                    head, _, param = key.partition(".")
                    if head in recipe_names and param:
                        recipes[recipe_names.index(head)].setdefault("params", {})[param] = value
                    else:
                        set_key(raw, key.split("."), value, where=f"grid key {key!r}")
                raw = apply_overrides(raw, list(overrides or []))
                _resolve_variant_refs(raw, out, [x.name for x in variants])
                if not _NAME.match(name):
                    raise ConfigError(f"name {name!r}: use letters, digits and . _ + = - (it names a directory)")
                if any(x.name == name for x in variants):
                    raise ConfigError(f"name {name!r} is used twice")
                config = validate_config(raw, source=None)
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
                continue
            variants.append(Variant(name=name, config=config, grid_point=point))
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return variants


def _resolve_variant_refs(raw: dict[str, Any], out: Path, earlier: list[str]) -> None:
    """``ranking_from: "variant:NAME"`` -> the run directory of that (earlier) variant."""
    for r in raw.get("train", {}).get("recipes", []):
        params = r.get("params", {}) if isinstance(r, dict) else {}
        ref = params.get("ranking_from")
        if isinstance(ref, str) and ref.startswith("variant:"):
            name = ref.split(":", 1)[1]
            if name not in earlier:
                raise ConfigError(f"ranking_from {ref!r}: no earlier variant named {name!r} (known: {', '.join(earlier)})")
            params["ranking_from"] = str((out / "variants" / name).resolve())


# --- running --------------------------------------------------------------------------------------


def variant_finished(root: Path, config: RunConfig) -> bool:
    """Whether ``root`` holds a complete run of ``config`` (results.json and timing.json).

    The ``runtime`` section (threads, device, workers) never changes results, so it may differ.
    """
    results, timing = RunDir(root).results, RunDir(root).timing
    if not (results.is_file() and timing.is_file()):
        return False
    try:
        done = dict(read_json(results).get("config") or {})
    except Exception:  # noqa: BLE001  a damaged file: run the variant again (it resumes)
        return False
    want = config.model_dump(mode="json")
    done.pop("runtime", None)
    want.pop("runtime", None)
    return done == want


_SWEEP_FILES = frozenset({"variants", "figures", "sweep.csv", "sweep.md", "sweep.resolved.yaml", "report.html",
                          "report.md"})


def run_sweep(
    path: Path | str,
    out: Path | str,
    *,
    overrides: list[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[dict]:
    """Run (or resume) every variant of the sweep file ``path`` into ``out``; returns the table rows."""
    sweep, base = load_sweep(path)
    out = Path(out)
    variants = expand_sweep(sweep, base, out=out, overrides=overrides, source=str(path))
    sweep_dir = prepare_run_dir(out, None, kind="sweep", own_files=_SWEEP_FILES)
    progress = progress or NullProgress()
    rows: list[dict] = []
    with locked(sweep_dir):
        write_text(out / "sweep.resolved.yaml", yaml.safe_dump(
            {"variants": [{"name": v.name, "config": v.config.model_dump(mode="json")} for v in variants]},
            sort_keys=False,
        ))
        for i, v in enumerate(variants):
            root = out / "variants" / v.name
            progress.stage(f"variant {i + 1}/{len(variants)}: {v.name}")
            if variant_finished(root, v.config):
                progress.info(f"reusing finished variant {v.name}")
                results = read_results(RunDir(root).results)
            else:
                results = run_audit(v.config, root, force=force, progress=progress)
            rows += variant_rows(v.name, results, read_json(RunDir(root).timing))
            write_tables(out, rows)
        write_utility_privacy_figure(out / UTILITY_PRIVACY_FIGURE, rows)
        try_write_sweep_report(out, rows)  # report.html / report.md (a view of the files above; never required)
    return rows
