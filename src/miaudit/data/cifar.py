"""`cifar10` / `cifar100`: the official CIFAR archives, binary or python, without running pickles.

Accepted sources, looked for in this order in each candidate directory (``format: auto``):

1. the extracted binary folder (``cifar-10-batches-bin/``, ``cifar-100-binary/``), or the
   directory itself when it holds the batch files;
2. the binary archive (``cifar-10-binary.tar.gz``, ``cifar-100-binary.tar.gz``);
3. the extracted python folder (``cifar-10-batches-py/``, ``cifar-100-python/``);
4. the python archive (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``).

Archives are read in memory (nothing is extracted). Binary records are parsed with numpy:
CIFAR-10 ``<1 label byte><3072 pixel bytes>``, CIFAR-100 ``<coarse byte><fine byte><3072>``,
pixels as 1024 red, 1024 green, 1024 blue values in row-major order, i.e. already (3, 32, 32).
Python batches are pickles written by Python 2's cPickle; they are read only through
``RestrictedUnpickler``, which admits exactly the three numpy globals an array needs and
refuses every other global, so a crafted pickle cannot call anything.

Records are numbered train batches first (1..5 for CIFAR-10), then test. ``download: true``
fetches the *binary* archive (SHA-256 pinned) when no source is found.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.data.archive import read_members
from miaudit.data.base import Dataset, ExpectedFile, dirs_text, register_dataset
from miaudit.data.download import Remote, cache_dir, download_hint, fetch
from miaudit.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_PIXELS = 3 * 32 * 32

# SHA-256 from TensorFlow Datasets' url_checksums (cifar10.txt, cifar100.txt), matching the
# official MD5s c32a1d4ab5d03f1284b67883e8d87530 / 03b5dce01913d631647c71ecec9e9cb8 by source.
CIFAR10_BINARY = Remote(
    "cifar-10-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
)
CIFAR100_BINARY = Remote(
    "cifar-100-binary.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
)


# --------------------------------------------------------------------------------------------
# restricted unpickling
# --------------------------------------------------------------------------------------------

# numpy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by __setstate__ with
# (version, shape, dtype, fortran, raw bytes), and the dtype as dtype('u1', 0, 1) plus state.
# Python 2-era files name the module numpy.core.multiarray; numpy >= 2 writes numpy._core.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR python batches that refuses every global but numpy's array makers.

    A pickle can only call what ``find_class`` hands it, so refusing all other globals
    (``os.system``, ``builtins.eval``, ``subprocess.*``, ``builtins.open`` ...) means a crafted
    file can build dicts, lists, bytes, numbers and numpy arrays, and nothing else. Python 2
    ``str`` values are kept as ``bytes`` (``encoding="bytes"``), as in the real files.
    """

    def __init__(self, file: io.BufferedIOBase, *, where: str) -> None:
        super().__init__(file, encoding="bytes")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._where}: refusing to unpickle {module}.{name}; a CIFAR python batch holds only "
                "numpy arrays, lists and bytes, so this file is not one (possibly malicious): use the "
                "official binary archive instead"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._where}: refusing a pickle with persistent ids; it is not a CIFAR python batch")


def restricted_loads(data: bytes, where: str) -> Any:
    """Unpickle ``data`` with ``RestrictedUnpickler``; any failure is a DataError naming ``where``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), where=where).load()
    except DataError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways (EOFError, ValueError, ...)
        raise DataError(
            f"{where} is not a readable CIFAR python batch ({type(exc).__name__}: {exc}); download it again"
        ) from exc


# --------------------------------------------------------------------------------------------
# layouts of the two datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    name: str
    n_classes: dict[str, int]  # by label kind
    bin_archive: Remote
    bin_folder: str
    bin_files: tuple[str, ...]  # train batches first, then test
    bin_names: dict[str, str]  # label kind -> class-name text file
    py_archive: str
    py_folder: str
    py_files: tuple[str, ...]
    py_meta: str
    py_label_key: dict[str, bytes]
    py_names_key: dict[str, bytes]

    @property
    def label_bytes(self) -> int:
        return 2 if "coarse" in self.n_classes else 1


CIFAR10 = _Layout(
    name="cifar10",
    n_classes={"fine": 10},
    bin_archive=CIFAR10_BINARY,
    bin_folder="cifar-10-batches-bin",
    bin_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",),
    bin_names={"fine": "batches.meta.txt"},
    py_archive="cifar-10-python.tar.gz",
    py_folder="cifar-10-batches-py",
    py_files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
    py_meta="batches.meta",
    py_label_key={"fine": b"labels"},
    py_names_key={"fine": b"label_names"},
)
CIFAR100 = _Layout(
    name="cifar100",
    n_classes={"fine": 100, "coarse": 20},
    bin_archive=CIFAR100_BINARY,
    bin_folder="cifar-100-binary",
    bin_files=("train.bin", "test.bin"),
    bin_names={"fine": "fine_label_names.txt", "coarse": "coarse_label_names.txt"},
    py_archive="cifar-100-python.tar.gz",
    py_folder="cifar-100-python",
    py_files=("train", "test"),
    py_meta="meta",
    py_label_key={"fine": b"fine_labels", "coarse": b"coarse_labels"},
    py_names_key={"fine": b"fine_label_names", "coarse": b"coarse_label_names"},
)


class Cifar10Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["auto", "binary", "python"] = Field(
        "auto", description="which official archive to read; auto prefers binary (no pickle at all)"
    )
    download: bool = Field(False, description="fetch the binary archive (SHA-256 checked) when no copy is found")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for the server when downloading")


class Cifar100Params(Cifar10Params):
    labels: Literal["fine", "coarse"] = Field("fine", description="100 fine classes or 20 coarse superclasses")


# --------------------------------------------------------------------------------------------
# finding and reading a source
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where the batch files are: an extracted folder or an archive (with the folder inside)."""

    fmt: Literal["binary", "python"]
    path: Path  # the folder holding the batch files, or the archive
    folder: str  # the folder's name inside the archive ("" for a directory source)

    @property
    def is_archive(self) -> bool:
        return self.path.is_file()

    def read(self, names: list[str]) -> dict[str, bytes]:
        """The bytes of those of ``names`` present (archive members are looked up in ``folder``)."""
        if self.is_archive:
            found = read_members(self.path, [f"{self.folder}/{n}" for n in names])
            return {n: found[f"{self.folder}/{n}"] for n in names if f"{self.folder}/{n}" in found}
        return {n: (self.path / n).read_bytes() for n in names if (self.path / n).is_file()}

    def describe(self, name: str) -> str:
        return f"{self.path}:{self.folder}/{name}" if self.is_archive else str(self.path / name)


def _find_source(layout: _Layout, d: Path, formats: tuple[str, ...]) -> _Source | None:
    for fmt in formats:
        folder, archive, files = (
            (layout.bin_folder, layout.bin_archive.filename, layout.bin_files)
            if fmt == "binary"
            else (layout.py_folder, layout.py_archive, layout.py_files)
        )
        if (d / folder / files[-1]).is_file():
            return _Source(fmt, d / folder, "")  # type: ignore[arg-type]
        if (d / files[-1]).is_file():
            return _Source(fmt, d, "")  # type: ignore[arg-type]
        if (d / archive).is_file():
            return _Source(fmt, d / archive, folder)  # type: ignore[arg-type]
    return None


def _locate(layout: _Layout, params: Cifar10Params, data_dir: Path | None) -> _Source:
    formats = ("binary", "python") if params.format == "auto" else (params.format,)
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else [Path(cache_dir(layout.name)).expanduser()]
    for d in dirs:
        source = _find_source(layout, d, formats)
        if source is not None:
            return source
    if params.download and "binary" in formats:
        remote = layout.bin_archive
        path = fetch(remote.url, dirs[0] / remote.filename, remote.sha256, timeout=params.timeout)
        return _Source("binary", path, layout.bin_folder)
    wanted = []
    if "binary" in formats:
        wanted += [repr(layout.bin_archive.filename), repr(layout.bin_folder + "/")]
    if "python" in formats:
        wanted += [repr(layout.py_archive), repr(layout.py_folder + "/")]
    hint = download_hint((layout.bin_archive,)) if "binary" in formats and not params.download else ""
    where = dirs_text(dirs)
    raise DataError(
        f"dataset {layout.name!r}: none of {', '.join(wanted)} found in {where}; put one there "
        f"(set data.data_dir){hint}"
    )


def parse_binary_batch(data: bytes, label_bytes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N, label_bytes) uint8, pixels (N, 3, 32, 32) uint8) from a CIFAR binary batch."""
    record = label_bytes + _PIXELS
    if len(data) == 0 or len(data) % record:
        raise DataError(
            f"{where} has {len(data)} bytes, not a positive multiple of the {record}-byte record; "
            "it is truncated or not a CIFAR binary batch: download it again"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, :label_bytes], rows[:, label_bytes:].reshape(-1, 3, 32, 32)


def _python_batch(data: bytes, label_key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) int64, pixels (N, 3, 32, 32) uint8) from an unpickled CIFAR python batch."""
    batch = restricted_loads(data, where)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(
            f"{where}: expected a dict with keys b'data' and {label_key!r}, found {keys}; not a CIFAR python batch"
        )
    pixels, labels = batch[b"data"], batch[label_key]
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != _PIXELS:
        desc = (
            f"{pixels.dtype} array of shape {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels).__name__
        )
        raise DataError(f"{where}: b'data' is a {desc}; expected a uint8 array of shape (N, {_PIXELS})")
    try:
        y = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {label_key!r} is not a list of class numbers") from exc
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(pixels):
        raise DataError(
            f"{where}: {label_key!r} holds {y.shape} {y.dtype} values for {len(pixels)} images; "
            "expected one integer per image"
        )
    return y.astype(np.int64), pixels.reshape(-1, 3, 32, 32)


def _class_names(layout: _Layout, source: _Source, kind: str, extra: dict[str, bytes]) -> tuple[str, ...]:
    """Names from the archive's own metadata when present and consistent, else the known/generic ones."""
    n = layout.n_classes[kind]
    names: list[str] = []
    if source.fmt == "binary":
        text = extra.get(layout.bin_names[kind])
        if text is not None:
            names = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines() if ln.strip()]
    else:
        meta_bytes = extra.get(layout.py_meta)
        if meta_bytes is not None:
            meta = restricted_loads(meta_bytes, source.describe(layout.py_meta))
            raw = meta.get(layout.py_names_key[kind]) if isinstance(meta, dict) else None
            if isinstance(raw, list):
                names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw]
    if len(names) == n:
        return tuple(names)
    if layout.name == "cifar10":
        return CIFAR10_CLASSES
    return tuple(f"class_{k}" for k in range(n))


def load_cifar(layout: _Layout, params: Cifar10Params, data_dir: Path | None) -> Dataset:
    """Read every batch of ``layout`` (train then test) from the first source found."""
    kind = getattr(params, "labels", "fine")
    n_classes = layout.n_classes[kind]
    source = _locate(layout, params, data_dir)
    files = layout.bin_files if source.fmt == "binary" else layout.py_files
    meta = [layout.bin_names[kind]] if source.fmt == "binary" else [layout.py_meta]
    blobs = source.read(list(files) + meta)
    missing = [f for f in files if f not in blobs]
    if missing:
        raise DataError(
            f"dataset {layout.name!r}: {source.describe(missing[0])} is missing ({len(missing)} of {len(files)} "
            "batch files); the copy is incomplete: download or extract it again"
        )
    ys, xs = [], []
    for f in files:
        where = source.describe(f)
        if source.fmt == "binary":
            label_cols, pixels = parse_binary_batch(blobs[f], layout.label_bytes, where)
            y = label_cols[:, 1 if kind == "fine" and layout.label_bytes == 2 else 0].astype(np.int64)
        else:
            y, pixels = _python_batch(blobs[f], layout.py_label_key[kind], where)
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            bad = int(np.flatnonzero((y < 0) | (y >= n_classes))[0])
            raise DataError(
                f"{where}: record {bad} has {kind} label {int(y[bad])}, outside 0..{n_classes - 1}; "
                f"this is not a {layout.name} batch"
            )
        ys.append(y)
        xs.append(pixels)
    x = np.concatenate(xs).astype(np.float32)
    x /= 255.0
    y = np.concatenate(ys)
    return Dataset(
        name=layout.name,
        x=x,
        y=y,
        ids=np.arange(len(y), dtype=np.int64),
        kind="image",
        class_names=_class_names(layout, source, kind, blobs),
        source=str(source.path),
    )


def _expected(layout: _Layout) -> tuple[ExpectedFile, ...]:
    return (
        ExpectedFile(
            (
                layout.bin_archive.filename,
                f"{layout.bin_folder}/{layout.bin_files[-1]}",
                layout.bin_files[-1],
                layout.py_archive,
                f"{layout.py_folder}/{layout.py_files[-1]}",
                layout.py_files[-1],
            ),
            f"the official binary archive {layout.bin_archive.filename} (preferred) or python archive "
            f"{layout.py_archive}, packed or extracted",
        ),
    )


@register_dataset(
    "cifar10",
    kind="image",
    description="CIFAR-10: 60,000 32x32 colour images in 10 classes (official binary or python archive)",
    params=Cifar10Params,
    files=_expected(CIFAR10),
    default_dirs=(cache_dir("cifar10"),),
    url=CIFAR10_BINARY.url,
)
def load_cifar10(params: Cifar10Params, data_dir: Path | None, seed: int) -> Dataset:
    """CIFAR-10, 50,000 train then 10,000 test images, x (N, 3, 32, 32) in [0, 1]."""
    return load_cifar(CIFAR10, params, data_dir)


@register_dataset(
    "cifar100",
    kind="image",
    description="CIFAR-100: 60,000 32x32 colour images, 100 fine or 20 coarse classes (binary or python archive)",
    params=Cifar100Params,
    files=_expected(CIFAR100),
    default_dirs=(cache_dir("cifar100"),),
    url=CIFAR100_BINARY.url,
)
def load_cifar100(params: Cifar100Params, data_dir: Path | None, seed: int) -> Dataset:
    """CIFAR-100, 50,000 train then 10,000 test images; ``labels`` picks fine (100) or coarse (20)."""
    return load_cifar(CIFAR100, params, data_dir)
