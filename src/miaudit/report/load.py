"""Reading a finished run or sweep directory for its report, and what of it a page may show.

The report is rendered only from files (``results.json``, ``config.resolved.yaml``, ``run.json``,
``timing.json``, ``figures/*.png``), never from objects in memory, so ``miaudit report DIR`` rebuilds
the page of any run. What a page shows of the machine is cut here: absolute paths are reduced to
their last component (:func:`safe`, :func:`scrub`), a figure is read only from inside the run
directory and only when it is a PNG (:func:`figure`), and a run directory is named as the user
would type it (:func:`rebuild_path`).
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from miaudit.errors import DataError
from miaudit.io import read_json
from miaudit.results import read_results
from miaudit.rundir import RunDir

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the sweep's list of variants (written by ``miaudit sweep`` before the first variant runs)
SWEEP_RESOLVED = "sweep.resolved.yaml"
#: the directory of a sweep's variants, one run directory each
SWEEP_VARIANTS = "variants"

FIGURE_CAPTIONS = {
    "roc.png": "ROC of every attack on log-log axes (mean over target models). Curves far above the dotted "
               "chance line at the left edge are the attacks that identify records with few false alarms.",
    "tsne.png": "t-SNE map of audited records (one model's penultimate features), coloured by class (by distance to "
                "the class centroid when there are more than 10 classes); vulnerable records circled, over-sampled when "
                "rare (the legend gives their share). Circled points apart from their class, or inside another "
                "class's cluster, are the outliers.",
    "tsne_logits.png": "t-SNE map of the same records' logits; vulnerable records circled.",
    "gallery.png": "The top vulnerable records (framed in red), each beside typical records of its class, with the "
                   "prediction of one named model (IN: it trained on the record) and of the models that never saw it.",
    "gradcam.png": "Grad-CAM of the gallery's model on vulnerable records it trained on, beside typical records of the "
                   "same class it also trained on: where the model looks (relevance scaled to [0, 1] per image).",
    "deciles.png": "Attack TPR (bars) and FPR (line) at the analysis FPR by decile of each outlier measure: leakage "
                   "concentrated in the atypical deciles means vulnerable records are outliers.",
    "utility_privacy.png": "Test accuracy against TPR at 1% FPR of the strongest attack, per variant; the Pareto "
                           "front (no other variant is both more accurate and more private) is joined by a line.",
}


def _read_opt(path: Path) -> dict:
    """A JSON file's content, or {} when it is missing or unreadable (the report never needs it)."""
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (DataError, OSError) as exc:
        log.warning("report: %s unreadable (%s); left out", path.name, exc)
        return {}
    return data if isinstance(data, dict) else {}


def load_run(run_dir: Path | str) -> dict:
    """The files of a finished run: ``results``, ``config``, ``manifest`` (run.json), ``timing``."""
    root = Path(run_dir)
    rd = RunDir(root)
    if not rd.results.is_file():
        raise DataError(f"{rd.results} not found: {root} is not a finished miaudit run directory")
    results = read_results(rd.results)
    config = results.get("config") or {}
    if not config and rd.resolved_config.is_file():
        config = yaml.safe_load(rd.resolved_config.read_text(encoding="utf-8")) or {}
    return {"root": root, "results": results, "config": config,
            "manifest": _read_opt(rd.manifest), "timing": _read_opt(rd.timing)}


def is_sweep_dir(root: Path) -> bool:
    """Whether ``root`` looks like a ``miaudit sweep`` directory (its variant list, or its variants)."""
    return (root / SWEEP_RESOLVED).is_file() or (root / SWEEP_VARIANTS).is_dir()


def sweep_variants(sweep_dir: Path) -> list[str]:
    """The sweep's variant names in its own order (sweep.resolved.yaml), else its variant directories sorted."""
    resolved = sweep_dir / SWEEP_RESOLVED
    if resolved.is_file():
        data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
        return [v["name"] for v in data.get("variants", []) if isinstance(v, dict) and "name" in v]
    variants = sweep_dir / SWEEP_VARIANTS
    return sorted(p.name for p in variants.iterdir() if p.is_dir()) if variants.is_dir() else []


def safe(value: Any) -> Any:
    """``value`` with every absolute path replaced by its file name (nothing of the user's tree leaks)."""
    if isinstance(value, dict):
        return {k: safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [safe(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1] or value
    return value


_ABS_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?[/\\](?:[^\s/\\'\"]+[/\\])+([^\s/\\'\"]*)")


def scrub(text: str) -> str:
    """Free text (warnings, reasons) with absolute paths cut to their last component.

    >>> scrub("cannot read /home/ana/runs/a/scores.npy (see ./rel/x.csv)")
    'cannot read scores.npy (see ./rel/x.csv)'
    """
    return _ABS_PATH.sub(lambda m: m.group(1), str(text))


def figure(root: Path, rel: str) -> dict | None:
    """A PNG of the run directory as a data URI (and its relative path for Markdown); None if absent."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or p.suffix.lower() != ".png":
        return None
    path = root / p
    if not path.is_file():
        return None
    data = path.read_bytes()
    if not data.startswith(PNG_MAGIC):
        log.warning("report: %s is not a PNG; left out", rel)
        return None
    return {
        "path": p.as_posix(),
        "data": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        "caption": FIGURE_CAPTIONS.get(p.name, ""),
        "alt": p.stem.replace("_", " "),
    }


def rebuild_path(root: Path) -> str:
    """The run directory as the user would type it in ``miaudit report PATH``: as given when relative
    (``runs/default`` from the project directory), relative to the working directory when inside it;
    else only its name, as the report never shows an absolute path of the machine."""
    if not root.is_absolute():
        return shlex.quote(str(root))
    try:
        return shlex.quote(str(root.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(root.name)
