"""``data.planted``: the user's own ground truth of atypical or canary records (canary auditing).

The file names records by their dataset id (``Dataset.ids``: the row number, from 0, for the
``csv`` and ``npz`` datasets), one per line, optionally with a kind:

    id,kind          <- optional header
    17,canary
    204,mislabelled
    981              <- no kind: "planted"

Blank lines and lines starting with ``#`` are skipped. The vulnerability analysis then reports
the same per-kind enrichment and recall tables as for the built-in synthetic data. A kind named
in the file replaces the dataset's own planted kind for that record; the others keep theirs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from miaudit.errors import DataError

#: the kind of a listed record without one
DEFAULT_KIND = "planted"
#: kinds reserved by the enrichment table
_RESERVED = ("natural", "all-planted", "")


def read_planted(path: Path | str, ids: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """(N,) str kinds: ``base`` (or '' for every record) with the records listed in ``path`` set.

    Raises
    ------
    DataError
        file missing or unreadable, an id that is not an integer or not a record of the dataset,
        a reserved kind, or a record listed twice.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data.planted: file {p} not found")
    ids = np.asarray(ids)
    kinds = np.full(len(ids), "", dtype=object) if base is None else np.asarray(base, dtype=object).copy()
    row_of = {int(v): i for i, v in enumerate(ids)}
    seen: set[int] = set()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.planted: cannot read {p} ({exc})") from None
    for lineno, fields in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in fields]
        if not fields or not fields[0] or fields[0].startswith("#"):
            continue
        if lineno == 1 and fields[0].lower() == "id":
            continue  # header
        try:
            rid = int(fields[0])
        except ValueError:
            raise DataError(f"data.planted: {p}:{lineno}: record id {fields[0]!r} is not an integer") from None
        if rid not in row_of:
            raise DataError(f"data.planted: {p}:{lineno}: no record with id {rid} in the dataset ({len(ids)} records)")
        if rid in seen:
            raise DataError(f"data.planted: {p}:{lineno}: record {rid} is listed twice")
        seen.add(rid)
        kind = fields[1] if len(fields) > 1 and fields[1] else DEFAULT_KIND
        if kind in _RESERVED:
            raise DataError(f"data.planted: {p}:{lineno}: kind {kind!r} is reserved; name it otherwise")
        kinds[row_of[rid]] = kind
    if not seen:
        raise DataError(f"data.planted: {p} lists no record")
    return kinds.astype(str)
