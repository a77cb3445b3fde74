"""Reading dataset archives (tar, tar.gz, gzip) safely: in memory where possible, never outside a target.

Loaders read members straight out of the archive (``read_members``) so nothing is written to
disk. ``safe_extract`` exists for the cases that must extract; it refuses any member that
would land outside the target directory (``../evil``, absolute paths, links pointing out,
device files). Every failure to read (truncated gzip, corrupt tar) becomes a one-line
``DataError`` that names the archive and says to download it again.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from miaudit.errors import DataError

# What a damaged archive raises, depending on where the damage is: a truncated gzip stream
# (EOFError), a bad header (gzip.BadGzipFile, an OSError), a corrupt deflate block
# (zlib.error) or a broken tar structure (tarfile.TarError).
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
# Raised by tarfile's extraction filters (Python 3.11.4+); an empty tuple matches nothing.
_FILTER_ERRORS: tuple[type[BaseException], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


def _corrupt(path: Path, exc: BaseException) -> DataError:
    detail = str(exc) or type(exc).__name__
    return DataError(f"archive {path} is truncated or corrupt ({detail}); download it again")


def normalise_member_name(name: str) -> str:
    """``./a/b`` and ``a//b`` -> ``a/b``: how tar member names are compared."""
    return str(PurePosixPath(*[p for p in PurePosixPath(name).parts if p not in (".", "/")]))


@contextmanager
def open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    """Open a (possibly compressed) tar archive; read errors inside the block become DataError."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            yield tar
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc) from exc


def read_members(path: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """Read the named regular-file members of a tar archive into memory, in one pass.

    Parameters
    ----------
    path : the archive (tar, tar.gz, tar.bz2, tar.xz).
    wanted : member names as stored (``cifar-10-batches-bin/data_batch_1.bin``); a leading
        ``./`` in the archive is ignored.

    Returns
    -------
    dict mapping each wanted name that was found to its bytes; missing names are absent (the
    caller decides whether that is an error). Reading continues to the end of the archive so
    that a truncated one is noticed even when the wanted members come first.
    """
    want = {normalise_member_name(w): w for w in wanted}
    out: dict[str, bytes] = {}
    with open_tar(path) as tar:
        for member in tar:
            key = normalise_member_name(member.name)
            if key in want and member.isfile() and want[key] not in out:
                f = tar.extractfile(member)
                if f is None:  # pragma: no cover - isfile() members always have data
                    continue
                data = f.read()
                if len(data) != member.size:
                    short = EOFError(f"member {member.name} ends after {len(data)} of {member.size} bytes")
                    raise _corrupt(path, short)
                out[want[key]] = data
    return out


def list_members(path: Path) -> list[str]:
    """Normalised names of the regular files in a tar archive."""
    with open_tar(path) as tar:
        return [normalise_member_name(m.name) for m in tar.getmembers() if m.isfile()]


def read_gzip(path: Path) -> bytes:
    """The decompressed bytes of a ``.gz`` file; a truncated or corrupt one raises DataError."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc) from exc


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, decompressed when it starts with the gzip magic (whatever its name)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return read_gzip(path)
    return path.read_bytes()


def _check_member(member: tarfile.TarInfo, dest: Path, archive: str) -> Path:
    """The resolved target of ``member`` under ``dest``, or DataError if it would escape or is special."""
    target = (dest / member.name).resolve()
    if not target.is_relative_to(dest):
        raise DataError(
            f"archive {archive}: member {member.name!r} would be written outside {dest}; refusing to extract "
            "(the archive is malicious or broken)"
        )
    if member.issym() or member.islnk():
        link_base = target.parent if member.issym() else dest
        link_target = (link_base / member.linkname).resolve()
        if PurePosixPath(member.linkname).is_absolute() or not link_target.is_relative_to(dest):
            raise DataError(
                f"archive {archive}: link {member.name!r} -> {member.linkname!r} points outside {dest}; "
                "refusing to extract"
            )
    elif not (member.isfile() or member.isdir()):
        raise DataError(f"archive {archive}: member {member.name!r} is a device or fifo; refusing to extract")
    return target


def safe_extract(archive: Path | tarfile.TarFile, dest: Path) -> list[Path]:
    """Extract every member of ``archive`` under ``dest``, refusing any that would land outside it.

    All members are checked before anything is written, so a refused archive leaves ``dest``
    untouched. Where Python's tarfile has extraction filters (3.11.4+), the ``data`` filter is
    applied as a second line of defence (it also drops setuid bits and odd permissions).

    Returns
    -------
    The paths of the extracted regular files.
    """
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if isinstance(archive, tarfile.TarFile):
        return _extract_all(archive, dest, str(archive.name))
    with open_tar(Path(archive)) as tar:
        return _extract_all(tar, dest, str(archive))


def _extract_all(tar: tarfile.TarFile, dest: Path, name: str) -> list[Path]:
    try:
        members = tar.getmembers()
        files = [_check_member(m, dest, name) for m in members]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4; members were checked above
            tar.extractall(dest, members=members)
    except DataError:
        raise
    except _FILTER_ERRORS as exc:
        raise DataError(f"archive {name}: {exc}; refusing to extract") from exc
    except _READ_ERRORS as exc:
        raise _corrupt(Path(name), exc) from exc
    return [f for f, m in zip(files, members) if m.isfile()]
