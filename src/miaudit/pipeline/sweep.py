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
import csv
import io as _io
import itertools
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from miaudit._validation import format_validation_error
from miaudit.config import RunConfig, SweepConfig, apply_overrides, read_yaml, set_key
from miaudit.errors import ConfigError
from miaudit.io import atomic_path, read_json, write_text
from miaudit.progress import NullProgress, Progress
from miaudit.results import ATTACKERS, strongest_of
from miaudit.rundir import RunDir, locked, prepare_run_dir
from miaudit.pipeline.run import run_audit

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
#: the FPRs of the table columns
FPR_COLUMNS = (("0.001", "tpr@0.1%"), ("0.01", "tpr@1%"))
STRONGEST_FPR = "0.01"


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
                try:
                    config = RunConfig.model_validate(raw)
                except ValidationError as exc:
                    raise ConfigError(format_validation_error(exc)) from None
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
    results, timing = root / "results.json", root / "timing.json"
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
                results = read_json(RunDir(root).results)
            else:
                results = run_audit(v.config, root, force=force, progress=progress)
            rows += variant_rows(v.name, results, read_json(RunDir(root).timing))
            write_tables(out, rows)
        write_utility_privacy_figure(out / "figures" / "utility_privacy.png", rows)
        from miaudit.report.render import try_write_sweep_report

        try_write_sweep_report(out, rows)  # report.html / report.md (a view of the files above; never required)
    return rows


# --- table rows -------------------------------------------------------------------------------------


def _attack_cells(r: dict) -> dict:
    ci = r.get("ci95") or {}
    cells = {"auc": r["auc"], "auc_ci": ci.get("auc"), "advantage": r["advantage"], "advantage_ci": ci.get("advantage")}
    for key, col in FPR_COLUMNS:
        cells[col] = r["tpr_at_fpr"].get(key)
        cells[f"{col}_ci"] = (ci.get("tpr_at_fpr") or {}).get(key)
    return cells


def _recipes_label(config: dict) -> str:
    parts = []
    for r in config.get("train", {}).get("recipes", []):
        parts.append(r["name"])
    return "+".join(parts) or "none"


def _strongest(cells: dict[str, dict]) -> str | None:
    return strongest_of({n: (c.get("tpr@1%"), c["auc"]) for n, c in cells.items()})


def variant_rows(name: str, results: dict, timing: dict) -> list[dict]:
    """The table rows of one finished variant: the pool as trained, then one per inference-time defence.

    A defence row reports, per attack, the stronger (by TPR@1% FPR, then AUC) of its
    non-adaptive and adaptive attackers, plus the label-only attacker's attacks.
    """
    train_s = [s for s in timing.get("members_train_s", []) if s is not None]
    dp = results.get("pool", {}).get("dp") or {}
    common = {
        "recipes": _recipes_label(results.get("config", {})),
        "train_s_per_model": float(np.mean(train_s)) if train_s else None,
        "epsilon": dp.get("epsilon_max"),
    }
    util = results.get("utility", {})
    attacks = {a: _attack_cells(r) for a, r in results.get("attacks", {}).items()}
    rows = [{"variant": name, "defence": "", **common, "train_acc": util.get("train_acc"),
             "test_acc": util.get("test_acc"), "attacks": attacks, "strongest": _strongest(attacks)}]
    for key, d in (results.get("defences") or {}).items():
        cells: dict[str, dict] = {}
        for attacker in ATTACKERS:
            for a, r in d.get("attackers", {}).get(attacker, {}).items():
                c = _attack_cells(r) | {"attacker": attacker}
                old = cells.get(a)
                if old is None or (c["tpr@1%"] or 0.0, c["auc"]) > (old["tpr@1%"] or 0.0, old["auc"]):
                    cells[a] = c
        after = d.get("utility", {}).get("after", {})
        rows.append({"variant": f"{name}+{key}", "defence": key, **common, "train_acc": after.get("train_acc"),
                     "test_acc": after.get("test_acc"), "attacks": cells, "strongest": _strongest(cells)})
    return rows


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (utility, leakage) points no other point beats: higher utility and lower leakage.

    >>> pareto_front([(0.9, 0.05), (0.8, 0.02), (0.7, 0.03), (0.9, 0.04)])
    [False, True, False, True]
    """
    out = []
    for i, (u, l) in enumerate(points):
        dominated = any(
            (u2 >= u and l2 <= l) and (u2 > u or l2 < l) for j, (u2, l2) in enumerate(points) if j != i
        )
        out.append(not dominated and not (math.isnan(u) or math.isnan(l)))
    return out


def _xy(row: dict) -> tuple[float, float]:
    s = row.get("strongest")
    tpr = row["attacks"][s]["tpr@1%"] if s else None
    acc = row.get("test_acc")
    return (float("nan") if acc is None else acc, float("nan") if tpr is None else tpr)


# --- outputs --------------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 6) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def write_tables(out: Path, rows: list[dict]) -> None:
    """``sweep.csv`` (every figure, CIs as lo/hi columns) and ``sweep.md`` (the readable tables)."""
    attacks = sorted({a for r in rows for a in r["attacks"]})
    front = pareto_front([_xy(r) for r in rows])
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["variant", "defence", "recipes", "train_acc", "test_acc", "train_s_per_model", "epsilon",
            "strongest_attack", "pareto"]
    for a in attacks:
        for col in ("auc", "advantage", *(c for _, c in FPR_COLUMNS)):
            head += [f"{a}.{col}", f"{a}.{col}_lo", f"{a}.{col}_hi"]
    w.writerow(head)
    for r, on_front in zip(rows, front):
        line = [r["variant"], r["defence"], r["recipes"], _num(r["train_acc"]), _num(r["test_acc"]),
                _num(r["train_s_per_model"], 4), _num(r["epsilon"], 4), r["strongest"] or "", int(on_front)]
        for a in attacks:
            c = r["attacks"].get(a)
            for col in ("auc", "advantage", *(c_ for _, c_ in FPR_COLUMNS)):
                if c is None:
                    line += ["", "", ""]
                    continue
                ci = c.get(f"{col}_ci") or [None, None]
                line += [_num(c.get(col)), _num(ci[0]), _num(ci[1])]
        w.writerow(line)
    write_text(out / "sweep.csv", buf.getvalue())
    write_text(out / "sweep.md", format_markdown(rows, front, attacks))


def _pct(x: float | None, ci: list | None = None) -> str:
    if x is None:
        return "–"
    s = f"{100 * x:.1f}"
    if ci and None not in ci:
        s += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return s


def format_markdown(rows: list[dict], front: list[bool], attacks: list[str]) -> str:
    lines = [
        "# Utility–privacy sweep",
        "",
        "Percentages; [95% bootstrap CI]. *Strongest attack*: highest TPR at 1% FPR in the row. "
        "Rows `variant+defence` evaluate an inference-time defence on that variant's pool and report, per "
        "attack, the stronger of its non-adaptive and adaptive attackers. ✓: on the Pareto front "
        "(no row has higher test accuracy and lower TPR@1%).",
        "",
        "| variant | train acc | test acc | train s/model | ε | strongest attack | AUC | adv. | TPR@0.1% | TPR@1% | Pareto |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|:-:|",
    ]
    for r, on in zip(rows, front):
        s = r["strongest"]
        c = r["attacks"].get(s, {}) if s else {}
        eps = "–" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        secs = "–" if r["train_s_per_model"] is None else f"{r['train_s_per_model']:.1f}"
        lines.append(
            f"| {r['variant']} | {_pct(r['train_acc'])} | {_pct(r['test_acc'])} | {secs} | {eps} | {s or '–'} | "
            f"{_pct(c.get('auc'), c.get('auc_ci'))} | {_pct(c.get('advantage'))} | {_pct(c.get('tpr@0.1%'))} | "
            f"{_pct(c.get('tpr@1%'), c.get('tpr@1%_ci'))} | {'✓' if on else ''} |"
        )
    for a in attacks:
        lines += ["", f"## {a}", "", "| variant | AUC | adv. | TPR@0.1% | TPR@1% |", "|---|---:|---:|---:|---:|"]
        for r in rows:
            c = r["attacks"].get(a)
            if c is None:
                continue
            who = f" ({c['attacker']})" if c.get("attacker") else ""
            lines.append(
                f"| {r['variant']}{who} | {_pct(c['auc'], c.get('auc_ci'))} | {_pct(c['advantage'], c.get('advantage_ci'))} | "
                f"{_pct(c.get('tpr@0.1%'), c.get('tpr@0.1%_ci'))} | {_pct(c.get('tpr@1%'), c.get('tpr@1%_ci'))} |"
            )
    return "\n".join(lines) + "\n"


def write_utility_privacy_figure(path: Path, rows: list[dict]) -> Path:
    """Test accuracy against TPR@1% FPR of each row's strongest attack; Pareto front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [_xy(r) for r in rows]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(7.0, 5.2), dpi=120)
    try:
        ax.axvline(0.01, color="0.6", lw=1, ls=":", label="chance (TPR = FPR = 1%)")
        for r, (acc, tpr), on in zip(rows, pts, front):
            if math.isnan(acc) or math.isnan(tpr):
                continue
            s = r["strongest"]
            ci = r["attacks"][s].get("tpr@1%_ci") if s else None
            xerr = None if not ci or None in ci else [[max(0.0, tpr - ci[0])], [max(0.0, ci[1] - tpr)]]
            ax.errorbar(tpr, acc, xerr=xerr, fmt="o" if not r["defence"] else "s", ms=6,
                        color="C3" if on else "C0", ecolor="0.7", capsize=2)
            ax.annotate(r["variant"], (tpr, acc), textcoords="offset points", xytext=(5, 4), fontsize=7)
        fr = sorted((p for p, on in zip(pts, front) if on), key=lambda p: p[1])
        if len(fr) > 1:
            ax.plot([p[1] for p in fr], [p[0] for p in fr], color="C3", lw=1, ls="--", label="Pareto front")
        ax.set_xlabel("TPR at 1% FPR, strongest attack (lower = more private)")
        ax.set_ylabel("test accuracy (higher = more useful)")
        ax.set_title("Utility–privacy trade-off of each defence")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
