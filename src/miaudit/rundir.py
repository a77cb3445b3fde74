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
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from miaudit.config import RunConfig
from miaudit.errors import RunDirError
from miaudit.io import read_json

MANIFEST = "run.json"
#: everything miaudit writes at the top of a run directory (removed by --force)
MANAGED = (
    "models", "signals", "scores", "figures", "analysis", "variants",
    MANIFEST, "config.resolved.yaml", "results.json", "summary.txt", "timing.json",
    "report.html", "report.md", "vulnerable_records.csv", "splits.npz", "in_mask.npy",
    "sweep.csv", "sweep.md", "attacks.csv",
)


@dataclass(frozen=True)
class RunDir:
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


def prepare_run_dir(root: Path, config: RunConfig, *, force: bool = False) -> RunDir:
    """Create or reopen ``root`` for ``config``; refuse a directory that holds another run."""
    root = Path(root)
    rd = RunDir(root)
    if root.exists() and not root.is_dir():
        raise RunDirError(f"--out {root}: exists and is not a directory")
    if root.is_dir():
        if rd.manifest.is_file():
            old = read_json(rd.manifest).get("pool_fingerprint")
            if old != config.pool_fingerprint():
                if not force:
                    raise RunDirError(
                        f"{root} holds a run with a different data/model/training/pool config; "
                        "use another --out, or --force to delete its models and start over"
                    )
                clear_run_dir(root)
        elif any(root.iterdir()):
            raise RunDirError(f"--out {root}: directory is not empty and is not a miaudit run; choose another --out")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"--out {root}: not writable ({exc.strerror or exc})") from None
    return rd


def clear_run_dir(root: Path) -> None:
    """Remove what miaudit wrote in ``root`` (never anything else)."""
    for name in MANAGED:
        p = root / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files a killed run left behind (``.<name>.<random>.tmp``, from ``io.atomic_path``).

    Safe only while holding the run directory's lock: no other writer is alive then. Returns how many.
    """
    n = 0
    for tmp in root.rglob(".*.tmp"):
        if tmp.is_file():
            with contextlib.suppress(OSError):
                tmp.unlink()
                n += 1
    return n


@contextlib.contextmanager
def locked(rd: RunDir) -> Iterator[None]:
    """Hold an exclusive lock on the run directory so two runs never write into it at once."""
    path = rd.root / ".lock"
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
