"""Helpers for the dataset tests (tests/unit/data/): load a registered dataset, write small archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from miaudit.data import DATASETS


def load(name: str, data_dir: Path | None, **params):
    """Load a registered dataset the way the pipeline does: validated params, (params, dir, seed)."""
    spec = DATASETS.get(name)
    return spec.load(spec.params(**params), data_dir, 0)


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
