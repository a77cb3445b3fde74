"""The run directory: its layout, its lock, and whether it may be reused for a config.

One run = one directory. Finished artefacts are reused by a rerun of the same command; a
directory whose pool was trained with a different configuration is refused (``--force``
starts over). Only the training-relevant part of the config (the pool fingerprint) must
match: changing attacks or analysis reuses the trained models and recomputes what follows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from miaudit.errors import RunDirError
from miaudit.io import ARTEFACTS, artefact_list, listed_artefacts, read_json, start_artefact_list

MANIFEST = "run.json"


@dataclass(frozen=True)
class RunDir:
    """Where every artefact of a run lives: the one place their names are written down."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def signals(self) -> Path:
        return self.root / "signals"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def member_weights(self, m: int) -> Path:
        return self.models / f"member_{m:03d}.safetensors"

    def member_sidecar(self, m: int) -> Path:
        return self.models / f"member_{m:03d}.json"

    def member_signals(self, m: int) -> Path:
        return self.signals / "parts" / f"member_{m:03d}.npz"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def timing(self) -> Path:
        return self.root / "timing.json"

    @property
    def resolved_config(self) -> Path:
        return self.root / "config.resolved.yaml"

    @property
    def splits(self) -> Path:
        return self.root / "splits.npz"

    @property
    def vulnerable_records(self) -> Path:
        return self.root / "vulnerable_records.csv"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def analysis(self) -> Path:
        """Per-record analysis artefacts (outlier measures cache, deciles, top records, its timing)."""
        return self.root / "analysis"

    @property
    def roc_figure(self) -> Path:
        return self.figures / "roc.png"

    @property
    def signals_manifest(self) -> Path:
        """Written last by the signals stage: the cached signals are complete (``signals.load_signals``)."""
        return self.signals / "manifest.json"

    @property
    def analysis_timing(self) -> Path:
        return self.analysis / "timing.json"

    @property
    def outliers_cache(self) -> Path:
        """The outlier measures, cached by the fingerprint of what they were computed from."""
        return self.analysis / "outliers.npz"

    @property
    def vulnerability_arrays(self) -> Path:
        return self.analysis / "vulnerability.npz"

    @property
    def deciles(self) -> Path:
        return self.analysis / "deciles.csv"

    @property
    def top_vulnerable(self) -> Path:
        return self.analysis / "top_vulnerable.md"

    def attack_scores(self, attack: str) -> Path:
        return self.scores / f"{attack}.npy"


def prepare_run_dir(
    root: Path,
    pool_fingerprint: str | None,
    *,
    force: bool = False,
    holds: str = "a run with a different data/model/training/pool config",
    then: str = "start over",
    kind: str = "run",
    own_files: frozenset[str] = frozenset(),
) -> RunDir:
    """Create or reopen ``root``; refuse a directory that holds another run, or anything not miaudit's.

    The one preparer of every output directory: a run (``pool_fingerprint`` =
    ``RunConfig.pool_fingerprint``), an audit of signals (the signals' fingerprint) and a sweep
    (``None``: no manifest, the sweep's own file names in ``own_files``). A directory whose
    ``run.json`` holds another fingerprint is refused (``holds`` says what it holds), or with
    ``force`` emptied of the files miaudit wrote there (``then`` says what follows).
    """
    root = Path(root)
    rd = RunDir(root)
    if root.exists() and not root.is_dir():
        raise RunDirError(f"--out {root}: exists and is not a directory")
    if root.is_dir():
        if pool_fingerprint is not None and rd.manifest.is_file():
            old = read_json(rd.manifest).get("pool_fingerprint")
            if old != pool_fingerprint:
                if not force:
                    raise RunDirError(
                        f"{root} holds {holds}; use another --out, or --force to {describe_removal(root)} and {then}"
                    )
                clear_run_dir(root)
        elif any(p.name not in _OWN_FILES | own_files for p in root.iterdir()):
            raise RunDirError(f"--out {root}: directory is not empty and is not a miaudit {kind}; choose another --out")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        start_artefact_list(root)
    except OSError as exc:
        raise RunDirError(f"--out {root}: not writable ({exc.strerror or exc})") from None
    return rd


#: what a run killed before writing run.json leaves behind (the folder is still miaudit's)
_OWN_FILES = frozenset({".lock", ARTEFACTS})


def describe_removal(root: Path) -> str:
    """What ``--force`` would delete in ``root``, in words: the files miaudit listed as written there."""
    files = listed_artefacts(root)
    if artefact_list(root) is None:
        return "start over (it has no record of the files miaudit wrote there, so --force refuses to delete anything)"
    base = Path(root).resolve()
    tops = sorted({p.relative_to(base).parts[0] + ("/" if len(p.relative_to(base).parts) > 1 else "") for p in files})
    shown = ", ".join(tops[:6]) + (", ..." if len(tops) > 6 else "")
    return f"delete the {len(files)} file(s) miaudit wrote there ({shown or 'none'}; anything else is kept)"


def clear_run_dir(root: Path) -> list[Path]:
    """Remove the files miaudit wrote in ``root`` (those its artefact list names; never anything else).

    Directories left empty by that are removed too. A directory without an artefact list (one
    that merely holds a ``run.json``) is refused: nothing there is known to be miaudit's.
    """
    root = Path(root)
    if artefact_list(root) is None:
        raise RunDirError(
            f"--force: {root} has no record of the files miaudit wrote ({root / '.miaudit-artefacts'}), "
            "so nothing is deleted; choose another --out, or empty it yourself"
        )
    files = listed_artefacts(root)
    base = root.resolve()
    for p in files:
        p.unlink(missing_ok=True)
    for d in sorted({q for p in files for q in p.parents if base in q.parents}, key=lambda q: -len(q.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty: a user's file below keeps its directory
    (base / ".miaudit-artefacts").write_text("", encoding="utf-8")
    return files


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files a killed run left behind (``.<name>.<random>.tmp``, from ``io.atomic_path``).

    Safe only while holding the run directory's lock: no other writer is alive then. Returns how many.
    """
    n = 0
    for tmp in root.rglob(".*.tmp"):
        if tmp.is_file() and _TMP_NAME.match(tmp.name):
            with contextlib.suppress(OSError):
                tmp.unlink()
                n += 1
    return n


#: ``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")``: 8 random characters (a user's ``.notes.tmp`` is kept)
_TMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def locked(rd: RunDir) -> Iterator[None]:
    """Hold an exclusive lock on the run directory so two runs never write into it at once."""
    path = rd.lock
    fh = open(path, "a+")  # noqa: SIM115
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{rd.root} is in use by another miaudit process (pid in {path})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        remove_stale_temporaries(rd.root)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()
