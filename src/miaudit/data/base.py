"""The in-memory dataset every loader returns, and the dataset registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from miaudit._registry import Registry
from miaudit.errors import DataError

Kind = Literal["tabular", "image"]


@dataclass(frozen=True)
class Dataset:
    """Records as arrays, with stable ids and (for synthetic data) planted ground truth.

    Attributes
    ----------
    x : (N, F) float32 for tabular data, (N, C, H, W) float32 in [0, 1] for images.
    y : (N,) int64 labels in [0, n_classes).
    ids : (N,) int64 stable record ids (row numbers of the source, unless it has its own).
    planted : (N,) str kind of planted atypical record ('' for natural records), or None
        when the dataset has no ground truth.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    kind: Kind
    class_names: tuple[str, ...]
    planted: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.x.shape[0] != n or self.ids.shape != (n,):
            raise DataError(
                f"dataset {self.name!r}: x has {self.x.shape[0]} rows, y {n}, ids {self.ids.shape[0]}"
            )
        if self.planted is not None and self.planted.shape != (n,):
            raise DataError(f"dataset {self.name!r}: planted has shape {self.planted.shape}, expected ({n},)")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class ExpectedFile:
    """One file (or one of several acceptable alternatives) a loader reads, for `miaudit datasets`."""

    names: tuple[str, ...]  # any one of these satisfies the requirement
    description: str


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LoaderFn = Callable[[BaseModel, Path | None, int], Dataset]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to load it, its options, and the files it needs."""

    name: str
    load: LoaderFn  # (params, data_dir, seed) -> Dataset
    params: type[BaseModel]
    kind: Kind
    description: str
    files: tuple[ExpectedFile, ...] = ()
    default_dirs: tuple[str, ...] = ()  # searched when the config gives no data_dir
    url: str | None = None  # public download location, if any
    extra: dict = field(default_factory=dict)

    def candidate_dirs(self, data_dir: Path | None) -> list[Path]:
        if data_dir is not None:
            return [Path(data_dir).expanduser()]
        return [Path(d).expanduser() for d in self.default_dirs]

    def find_dir(self, data_dir: Path | None) -> Path | None:
        """The first candidate directory holding every expected file, or None."""
        for d in self.candidate_dirs(data_dir):
            if all(find_file(d, f.names) is not None for f in self.files):
                return d
        return None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(
    name: str,
    *,
    kind: Kind,
    description: str,
    params: type[BaseModel] = NoParams,
    files: tuple[ExpectedFile, ...] = (),
    default_dirs: tuple[str, ...] = (),
    url: str | None = None,
) -> Callable[[LoaderFn], LoaderFn]:
    """Register ``fn(params, data_dir, seed) -> Dataset`` under ``name``."""

    def add(fn: LoaderFn) -> LoaderFn:
        DATASETS.add(
            name,
            DatasetSpec(
                name=name,
                load=fn,
                params=params,
                kind=kind,
                description=description,
                files=files,
                default_dirs=default_dirs,
                url=url,
            ),
        )
        return fn

    return add


def find_file(directory: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that exists in ``directory``."""
    for n in names:
        p = directory / n
        if p.is_file():
            return p
    return None


def dirs_text(dirs: list[Path]) -> str:
    """The folders searched, for an error message; a folder that does not exist says so."""
    if not dirs:
        return "a directory given as data.data_dir"
    return " or ".join(str(d) + ("" if d.is_dir() else " (no such folder)") for d in dirs)


def require_file(spec_name: str, data_dir: Path | None, names: tuple[str, ...], default_dirs: tuple[str, ...] = ()) -> Path:
    """Locate one of ``names`` or raise a DataError that says exactly what to put where."""
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else [Path(d).expanduser() for d in default_dirs]
    for d in dirs:
        p = find_file(d, names)
        if p is not None:
            return p
    where = dirs_text(dirs)
    wanted = " or ".join(repr(n) for n in names)
    raise DataError(f"dataset {spec_name!r}: file {wanted} not found; put it in {where} (set data.data_dir)")


def require_files(
    spec_name: str,
    data_dir: Path | None,
    groups: tuple[tuple[str, ...], ...],
    default_dirs: tuple[str, ...] = (),
    *,
    hint: str = "",
) -> list[Path]:
    """Locate every group of alternative names in one directory, or raise one DataError.

    Files that belong together (images and labels, features and labels) must come from the
    same directory, so the first candidate directory holding all of them wins. The error
    names the files still missing and where they were looked for; ``hint`` is appended
    (e.g. ", or set data.params.download: true").
    """
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else [Path(d).expanduser() for d in default_dirs]
    best: tuple[Path, list[tuple[str, ...]], int] | None = None
    for d in dirs:
        found = [find_file(d, names) for names in groups]
        if all(p is not None for p in found):
            return [p for p in found if p is not None]
        missing = [names for names, p in zip(groups, found) if p is None]
        n_found = len(groups) - len(missing)
        if n_found and (best is None or n_found > best[2]):
            best = (d, missing, n_found)
    if best is not None:  # a directory holds some of the files: name exactly what it lacks
        where, missing = str(best[0]), best[1]
    else:
        where = dirs_text(dirs)
        missing = list(groups)
    if len(missing) == 1:
        wanted = " or ".join(repr(n) for n in missing[0])
    else:  # several files: their usual names, to keep the message one readable line
        others = any(len(names) > 1 for names in missing)
        wanted = ", ".join(repr(names[0]) for names in missing) + (
            " (or the other names `miaudit datasets` lists)" if others else ""
        )
    raise DataError(
        f"dataset {spec_name!r}: {wanted} not found in {where}; put the files there (set data.data_dir){hint}"
    )


#: most classes a dataset may have: a label of 10^9 would size the output layer (and memory) by it
MAX_CLASSES = 100_000


def check_arrays(name: str, x: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> None:
    """Refuse NaN/inf features, non-integer or out-of-range labels, and empty data."""
    if len(y) == 0:
        raise DataError(f"dataset {name!r}: no records")
    if x.ndim < 2 or 0 in x.shape[1:]:
        raise DataError(f"dataset {name!r}: records have no features (x has shape {x.shape}); nothing to learn from")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"dataset {name!r}: {x.shape[0]} feature rows but {y.shape[0]} labels")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"dataset {name!r}: {bad} records have NaN or infinite features")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise DataError(f"dataset {name!r}: labels must be integers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"dataset {name!r}: labels must be integers, got dtype {y.dtype}")
    if y.min() < 0 or (n_classes is not None and y.max() >= n_classes):
        hi = n_classes - 1 if n_classes is not None else "n_classes-1"
        raise DataError(f"dataset {name!r}: labels must lie in 0..{hi}, found {int(y.min())}..{int(y.max())}")


def load_dataset(name: str, params: dict, data_dir: Path | None, seed: int) -> Dataset:
    """Load a registered dataset by name with validated params, and check its arrays."""
    spec = DATASETS.get(name, where="data.name")
    p = spec.params.model_validate(params or {})
    ds = spec.load(p, Path(data_dir).expanduser() if data_dir is not None else None, seed)
    check_arrays(name, ds.x, ds.y, ds.n_classes)
    return ds
