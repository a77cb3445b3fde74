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
import stat
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


#: in a run, audit or sweep directory: every file miaudit wrote there, one relative path a line.
#: ``--force`` deletes only what it lists; a folder without it was not made by miaudit.
ARTEFACTS = ".miaudit-artefacts"
_ARTEFACT_DEPTH = 4  # run/signals/parts/member_000.npz is the deepest artefact below its run directory


def start_artefact_list(root: Path) -> None:
    """Make ``root`` a directory whose artefacts are recorded (idempotent)."""
    (Path(root) / ARTEFACTS).touch(exist_ok=True)


def artefact_list(root: Path) -> Path | None:
    """``root``'s artefact list, or None when miaudit never recorded writing there."""
    p = Path(root) / ARTEFACTS
    return p if p.is_file() and not p.is_symlink() else None


def listed_artefacts(root: Path) -> list[Path]:
    """The files of ``root`` that miaudit wrote and that still exist (never outside ``root``, never a link)."""
    lst = artefact_list(root)
    if lst is None:
        return []
    base = Path(root).resolve()
    seen: dict[Path, None] = {}
    for line in lst.read_text(encoding="utf-8", errors="replace").splitlines():
        rel = Path(line.strip())
        if not line.strip() or rel.is_absolute() or ".." in rel.parts:
            continue
        p = base / rel
        if p.is_file() and not p.is_symlink():
            seen[p] = None
    return list(seen)


def _record_artefact(path: Path) -> None:
    """Append ``path`` to the artefact list of the nearest directory above it that has one."""
    path = path.absolute()
    d = path.parent
    for _ in range(_ARTEFACT_DEPTH):
        lst = d / ARTEFACTS
        if lst.is_file():
            line = f"{path.relative_to(d).as_posix()}\n"
            with open(lst, "a+", encoding="utf-8") as fh:  # O_APPEND: one short line per write, workers too
                fh.seek(0)
                if line not in fh.read().splitlines(keepends=True):  # a rewrite leaves the list as it was
                    fh.write(line)
            return
        if d.parent == d:
            return
        d = d.parent


def refuse_non_regular(path: Path, what: str = "") -> None:
    """Refuse to replace something that exists and is not a regular file (a device, FIFO, socket, directory):
    the atomic rename would swap it out for a file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RunDirError(f"{what or path}: cannot write there ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise RunDirError(f"{what or path}: exists and is {kind}; miaudit only replaces files, choose another path")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    refuse_non_regular(path)
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
        _record_artefact(path)  # listed before it exists: a crash in between lists a file that is not there
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


def read_json(path: Path | str, *, kind: type = dict) -> Any:
    """A JSON file miaudit wrote; anything else at its name (not UTF-8, not JSON, another type) is a ``DataError``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file, so not a JSON file miaudit wrote") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, kind):
        raise DataError(f"{path}: expected a JSON {'object' if kind is dict else kind.__name__}, "
                        f"found {type(data).__name__}; not a file miaudit wrote")
    return data


def save_npy(path: Path | str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def load_npy(path: Path | str, *, mmap: bool = False) -> np.ndarray:
    """Load an array written by ``save_npy`` (never unpickles; optionally memory-mapped).

    A missing, truncated or foreign file is a one-line ``DataError`` naming it.
    """
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; rerun `miaudit run` with the same config to recompute it") from None
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno not in (errno.EINVAL,):
            raise
        raise DataError(f"{path}: damaged or not a .npy array ({exc}); rerun `miaudit run` with the same "
                        "config to recompute it") from None


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
