"""Optional downloads of public dataset files, each checked against a pinned SHA-256.

Downloading is a convenience for users who are online; nothing in miaudit needs it (CI has
no internet). A loader fetches only when its params say ``download: true``. A file without a
pinned hash is never downloaded: miaudit cannot tell a good copy from a bad one, so the user
is asked to fetch it by hand. A download goes to a temporary file in the destination
directory, is hashed while it streams, and is renamed into place only when the hash matches,
so a partial or tampered download never appears under the real name.

Purchase100 and Texas100 have no stable public location with a pinned checksum (the copies
the papers point at live on personal web pages), so they are never downloaded.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from miaudit.data.base import find_file, require_files
from miaudit.errors import DataError
from miaudit.io import atomic_path, sha256_file

logger = logging.getLogger(__name__)

CACHE_ROOT = "~/.cache/miaudit/datasets"  # where downloads go when no data.data_dir is given
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """A public file: its name on disk, where to get it, and its SHA-256 (None: not verified)."""

    filename: str
    url: str
    sha256: str | None


def cache_dir(spec_name: str) -> str:
    """The per-dataset download directory used when no data_dir is given (unexpanded, for default_dirs)."""
    return f"{CACHE_ROOT}/{spec_name}"


def fetch(url: str, dest: Path, sha256: str | None, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``; return ``dest``.

    Parameters
    ----------
    url : http(s) address.
    dest : final path; its directory is created if needed.
    sha256 : the pinned hex digest. None refuses to download (nothing to verify against).
    timeout : seconds to wait for the server on connect and on each read.

    Notes
    -----
    An existing ``dest`` with the right hash is kept (no download); one with another hash is
    an error, never silently replaced. The data streams into a temporary file next to ``dest``
    (``miaudit.io.atomic_path``) and is renamed over it only after the hash matched; on any
    failure the temporary file is removed.
    """
    dest = Path(dest).expanduser()
    if sha256 is None:
        raise DataError(
            f"no pinned SHA-256 for {url}, so miaudit will not download it; download it yourself and put it at {dest}"
        )
    expected = sha256.strip().lower()
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DataError(f"refusing to download {url!r}: only http and https addresses are fetched")
    if dest.is_file():
        actual = sha256_file(dest)
        if actual == expected:
            return dest
        raise DataError(f"{dest} exists but its SHA-256 is {actual}, expected {expected}; delete it and download again")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {dest.parent} ({exc.strerror or exc}); set data.data_dir to a writable directory"
        ) from exc
    if not os.access(dest.parent, os.W_OK):
        raise DataError(f"cannot write to {dest.parent} (permission denied); set data.data_dir to a writable directory")
    logger.info("downloading %s to %s", url, dest)
    with atomic_path(dest) as tmp:
        actual = _stream(url, tmp, dest, timeout)
        if actual != expected:
            raise DataError(
                f"download of {url} has SHA-256 {actual}, expected {expected}; it was deleted: retry, "
                f"or put a verified copy at {dest}"
            )
    return dest


def _stream(url: str, tmp: Path, dest: Path, timeout: float) -> str:
    """Write the body at ``url`` into ``tmp`` and return its SHA-256; network failures are DataErrors."""
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "miaudit"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            while chunk := response.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"cannot download {url}: HTTP {exc.code} {exc.reason}; download it yourself and put it at {dest}"
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"cannot download {url} ({reason}); if this machine is offline, put {dest.name} in {dest.parent}"
        ) from exc
    return h.hexdigest()


def download_hint(remotes: tuple[Remote | None, ...]) -> str:
    """The suffix a 'file not found' message gets when the files could be downloaded."""
    if any(r is not None and r.sha256 is not None for r in remotes):
        return ", or set data.params.download: true to fetch them (SHA-256 checked)"
    return ""


def locate_or_fetch(
    spec_name: str,
    data_dir: Path | None,
    groups: tuple[tuple[str, ...], ...],
    default_dirs: tuple[str, ...],
    remotes: tuple[Remote | None, ...],
    *,
    download: bool,
    timeout: float,
) -> list[Path]:
    """Find every file group in one directory; if absent and ``download``, fetch the missing ones.

    ``remotes[i]`` is where group ``i`` can be downloaded (None: nowhere). Downloads go to
    ``data_dir`` when given, else to the per-dataset cache directory (one of ``default_dirs``).
    """
    try:
        return require_files(spec_name, data_dir, groups, default_dirs, hint="" if download else download_hint(remotes))
    except DataError:
        if not download:
            raise
    target = Path(data_dir).expanduser() if data_dir is not None else Path(cache_dir(spec_name)).expanduser()
    for names, remote in zip(groups, remotes):
        if find_file(target, names) is not None:
            continue
        if remote is None:
            raise DataError(
                f"dataset {spec_name!r}: {names[0]!r} has no public download location; put it in {target}"
            )
        fetch(remote.url, target / remote.filename, remote.sha256, timeout=timeout)
    return require_files(spec_name, target, groups)
