"""Atomic, pickle-free artefact I/O.

Every artefact is written to a temporary name in its destination directory, flushed and
fsynced, then renamed into place, so a file that exists under its final name is complete.
OS errors (permission, disk full) become one-line ``RunDirError``s naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from miaudit import failpoints
from miaudit.errors import DataError, RunDirError


def _describe_os_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}; finished artefacts are kept, free space and rerun the same command"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied (choose another --out or fix its permissions)"
    return f"cannot write {path}: {exc.strerror or exc}"


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise RunDirError(_describe_os_error(path, exc)) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        failpoints.hit(f"mid-write:{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunDirError(_describe_os_error(path, exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and paths so ``json.dumps`` accepts them; NaN becomes null."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, 2-space indent, NaN as null (byte-stable for the same data)."""
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, dumps_json(obj))


def read_json(path: Path | str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def save_npy(path: Path | str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def load_npy(path: Path | str, *, mmap: bool = False) -> np.ndarray:
    """Load an array written by ``save_npy`` (never unpickles; optionally memory-mapped)."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def open_user_npz(path: Path | str, *, where: str, hint: str = "") -> np.lib.npyio.NpzFile:
    """``np.load`` a user's ``.npz`` without ever unpickling; a file numpy cannot read as an archive
    of named arrays is a one-line ``DataError`` (``where`` names the file, ``hint`` says how to fix it)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # numpy takes a file that is neither a zip nor an .npy for a pickle and suggests unpickling it
        why = "neither a zip archive nor an .npy array" if "pickle" in str(exc) else exc
        raise DataError(f"{where} is not a readable .npz file ({why}){hint}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{where} holds a single array, not an .npz archive of named arrays{hint}")
    return z


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def write_memmap(path: Path | str, shape: tuple[int, ...], dtype: Any, fill: Callable[[np.ndarray], None]) -> None:
    """Create a ``.npy`` of ``shape`` under a temporary name, let ``fill`` write into its memmap, rename."""
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        fill(arr)
        arr.flush()
        del arr


def write_npy_stream(
    path: Path | str, shape: tuple[int, ...], dtype: Any, fill: Callable[[BinaryIO], None]
) -> None:
    """Write a C-order ``.npy`` of ``shape`` whose data ``fill`` appends to the file in order.

    For arrays larger than memory, assembled block by block: memory stays at one block (a
    writable memmap would keep every written page resident until it is written back). Raises
    ``RunDirError`` if ``fill`` wrote another number of bytes than ``shape`` needs.
    """
    dt = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": tuple(int(s) for s in shape)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            start = fh.tell()
            fill(fh)
            written = fh.tell() - start
        expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if written != expected:
            raise RunDirError(f"{path}: wrote {written} bytes of array data, expected {expected} for shape {shape}")


def save_weights(path: Path | str, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save torch tensors as safetensors (never pickle)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_weights(path: Path | str) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from None


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (configs, parameters)."""
    return hashlib.sha256(dumps_json(obj).encode()).hexdigest()[:16]
