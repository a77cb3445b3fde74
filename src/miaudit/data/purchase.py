"""`purchase100`: the Purchase100 shopping-basket dataset of Shokri et al. (2017).

Accepted files, in the order they are looked for:

- ``purchase.npy``: a 2-D numeric array, label column first, then the 600 features (the
  array the study's code uses); loaded with ``allow_pickle=False``.
- ``dataset_purchase``: the Shokri / ML Privacy Meter text file, one record per line,
  ``label,f1,...,f600`` (197,324 lines in the real file).
- ``dataset_purchase.tgz``: the archive that text file is distributed in (read in memory).

Labels are 1..100 in these files and become 0..99 (``label_base: 1``); a file that numbers
classes from 0 needs ``label_base: 0``. Features are binary in the real data, but any finite
number is accepted. There is no stable public download location with a pinned checksum, so
this loader never downloads.

The comma-separated text parser here (``parse_numeric_text``) is shared with ``texas100``.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field

from miaudit.data.archive import read_members
from miaudit.data.base import MAX_CLASSES, Dataset, ExpectedFile, register_dataset, require_file
from miaudit.errors import DataError

PURCHASE_FILES = ("purchase.npy", "dataset_purchase", "dataset_purchase.tgz")
_PURCHASE_MEMBER = "dataset_purchase"  # the text file inside dataset_purchase.tgz


class PurchaseParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_features: int = Field(600, gt=0, description="features per record after the label (600 in Purchase100)")
    n_classes: int = Field(100, ge=2, le=MAX_CLASSES, description="classes (100 in Purchase100)")
    label_base: Literal[0, 1] = Field(1, description="number of the first class in the file (1 in the original files)")


# --------------------------------------------------------------------------------------------
# comma-separated numeric text
# --------------------------------------------------------------------------------------------


def parse_numeric_text(
    data: bytes, n_cols: int, path: Path | str, *, label_first: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """Parse comma-separated numbers, exactly ``n_cols`` per line, into arrays.

    Parameters
    ----------
    data : the file's bytes (``\\n`` or ``\\r\\n`` line ends; trailing blank lines ignored).
    n_cols : fields every line must have.
    path : the file, for error messages.
    label_first : split off the first column as labels.

    Returns
    -------
    labels : (L,) float64 first column, or None when ``label_first`` is false.
    features : (L, n_cols - label_first) float32.

    Notes
    -----
    The real Purchase100 and Texas100 files hold one-character features (``0``/``1``). For
    those a fixed-width fast path reads the digits straight out of the byte buffer with
    numpy, about 10x faster than ``np.loadtxt`` (measured on a fabricated file of the real
    size, 197,324 x 601, on a 2-core development machine: ~3 s instead of ~30 s). Anything
    else (multi-digit or fractional values, ``nan``) falls back to ``np.loadtxt``'s C
    parser, and errors are located to a line and field.
    """
    if not data or data.isspace():
        raise DataError(f"file {path} is empty; expected {n_cols} comma-separated numbers per line")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.endswith(b"\n") or data.endswith(b"\n\n"):
        data = data.rstrip(b"\n\t ") + b"\n"
    fast = _parse_fixed_width(data, n_cols, label_first)
    if fast is not None:
        return fast
    arr = _parse_general(data, n_cols, path)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if len(bad):
        col = int(np.flatnonzero(~np.isfinite(arr[bad[0]]))[0])
        raise DataError(
            f"file {path}: line {bad[0] + 1}, field {col + 1} is {arr[bad[0], col]}; NaN and infinite values are "
            f"not allowed ({len(bad)} lines affected): fix or drop those records"
        )
    if label_first:
        return arr[:, 0].copy(), arr[:, 1:].astype(np.float32)
    return None, arr.astype(np.float32)


def _parse_fixed_width(data: bytes, n_cols: int, label_first: bool) -> tuple[np.ndarray | None, np.ndarray] | None:
    """Fast path: every field a single digit, except a leading label of up to 9 digits.

    Returns None (use the general parser) as soon as the file does not have that shape.
    """
    u = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(u == ord("\n"))
    n_lines = len(nl)
    starts = np.empty(n_lines, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    if not label_first:
        width = 2 * n_cols - 1  # "d,d,...,d"
        if not np.all(nl - starts == width):
            return None
        block = u.reshape(n_lines, width + 1)[:, :width]  # a view: every line has the same length
        digits = block[:, 0::2]
        if not (np.all(block[:, 1::2] == ord(",")) and _all_digits(digits)):
            return None
        feats = digits.astype(np.float32)
        feats -= ord("0")
        return None, feats

    n_feat = n_cols - 1
    tail = 2 * n_feat  # ",d" per feature, right before the newline
    label_end = nl - tail
    label_width = label_end - starts
    if label_width.min() < 1 or label_width.max() > 9:
        return None
    if n_feat:
        block = sliding_window_view(u, tail)[label_end]  # (L, tail) copy of each line's features
        digits = block[:, 1::2]
        if not (np.all(block[:, 0::2] == ord(",")) and _all_digits(digits)):
            return None
        feats = digits.astype(np.float32)
        feats -= ord("0")
    else:
        feats = np.empty((n_lines, 0), dtype=np.float32)
    w = int(label_width.max())
    idx = label_end[:, None] - w + np.arange(w)  # the w bytes ending at each label's end
    inside = idx >= starts[:, None]
    d = u[np.maximum(idx, 0)].astype(np.int64) - ord("0")
    if not np.all(((d >= 0) & (d <= 9)) | ~inside):
        return None
    d[~inside] = 0
    labels = (d * 10 ** np.arange(w - 1, -1, -1, dtype=np.int64)).sum(axis=1).astype(np.float64)
    return labels, feats


def _all_digits(a: np.ndarray) -> bool:
    return bool(np.all((a >= ord("0")) & (a <= ord("9"))))


_LOADTXT_WHERE = re.compile(r"at row (\d+), column (\d+)")


def _parse_general(data: bytes, n_cols: int, path: Path | str) -> np.ndarray:
    """Field counts checked line by line, then ``np.loadtxt``; errors name the line and field."""
    lines = data.split(b"\n")[:-1]  # data ends with exactly one newline
    counts = np.fromiter((ln.count(b",") for ln in lines), dtype=np.int64, count=len(lines)) + 1
    empty = np.fromiter((not ln.strip() for ln in lines), dtype=bool, count=len(lines))
    counts[empty] = 0
    bad = np.flatnonzero(counts != n_cols)
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"file {path}: line {i + 1} has {counts[i]} fields, expected {n_cols} "
            f"({len(bad)} of {len(lines)} lines differ); check the file or the n_features parameter"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError as exc:
        raise _locate_bad_number(lines, path, str(exc)) from exc
    return arr


def _locate_bad_number(lines: list[bytes], path: Path | str, message: str) -> DataError:
    """The DataError for a field that is not a number, pointing at its line and field."""
    m = _LOADTXT_WHERE.search(message)
    order = [int(m.group(1))] if m and int(m.group(1)) < len(lines) else []
    for i in order + list(range(len(lines))):
        for j, field in enumerate(lines[i].split(b",")):
            try:
                float(field)
            except ValueError:
                shown = field.decode("utf-8", "replace").strip()
                return DataError(f"file {path}: line {i + 1}, field {j + 1} is {shown!r}, not a number")
    return DataError(f"file {path}: cannot parse numbers ({message})")


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------


def labels_to_classes(
    labels: np.ndarray, *, label_base: int, n_classes: int, path: Path | str, unit: str = "line", offset: int = 1
) -> np.ndarray:
    """Check labels are integers in ``label_base .. label_base + n_classes - 1``; return them as 0-based int64.

    ``unit``/``offset`` say how a record is named in errors ("line" 1-based for text files,
    "row" 0-based for arrays).
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.number) or np.issubdtype(labels.dtype, np.complexfloating):
        raise DataError(f"file {path}: labels have dtype {labels.dtype}; expected integer class numbers")
    if np.issubdtype(labels.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"file {path}: {unit} {i + offset}: label {labels[i]:g} is not an integer class number "
                f"({len(bad)} such labels)"
            )
    lo, hi = label_base, label_base + n_classes - 1
    bad = np.flatnonzero((labels < lo) | (labels > hi))
    if len(bad):
        i = int(bad[0])
        value = float(labels[i])
        fix = (
            "set label_base: 0 if the file numbers classes from 0"
            if value == lo - 1 == 0
            else "check n_classes and label_base"
        )
        raise DataError(
            f"file {path}: {unit} {i + offset}: label {value:g} is outside {lo}..{hi} ({len(bad)} such labels); {fix}"
        )
    return labels.astype(np.int64) - label_base


# --------------------------------------------------------------------------------------------
# the loader
# --------------------------------------------------------------------------------------------


def read_text_source(path: Path, member: str) -> bytes:
    """The bytes of a text file, or of ``member`` when ``path`` is a .tgz/.tar.gz archive."""
    if path.name.endswith((".tgz", ".tar.gz", ".tar")):
        found = read_members(path, [member])
        if member not in found:
            raise DataError(f"archive {path} holds no {member!r}; is it the right archive? download it again")
        return found[member]
    return path.read_bytes()


def _load_npy(path: Path, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, features) from a 2-D array whose first column is the label."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"file {path} holds an object (pickled) array, which miaudit refuses to load; "
                "save it as a numeric array (np.save(path, a.astype(np.float32)))"
            ) from exc
        raise DataError(f"file {path} is not a valid .npy array ({exc}); save it again with np.save") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"file {path} is not a valid .npy array ({exc}); save it again with np.save") from exc
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        shape = getattr(arr, "shape", None)
        raise DataError(f"file {path}: array has shape {shape}; expected (records, {n_cols}) with the label first")
    if arr.shape[0] == 0:
        raise DataError(f"file {path} is empty (0 records)")
    if arr.shape[1] != n_cols:
        raise DataError(
            f"file {path}: array has {arr.shape[1]} columns, expected {n_cols} (label + {n_cols - 1} features); "
            "check the n_features parameter"
        )
    if arr.dtype.kind not in "biuf":  # bool, signed, unsigned, float
        raise DataError(f"file {path}: array has dtype {arr.dtype}; expected numbers")
    feats = arr[:, 1:].astype(np.float32)
    if np.issubdtype(feats.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(feats).all(axis=1))
        if len(bad):
            raise DataError(
                f"file {path}: row {bad[0]} has NaN or infinite features ({len(bad)} rows affected); "
                "fix or drop those records"
            )
    return arr[:, 0], feats


def load_tabular_with_labels(path: Path, member: str, n_features: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(labels, features, unit) from a ``.npy`` array or a label-first text file/archive."""
    if path.suffix == ".npy":
        labels, feats = _load_npy(path, n_features + 1)
        return labels, feats, "row"
    data = read_text_source(path, member)
    labels, feats = parse_numeric_text(data, n_features + 1, path, label_first=True)
    return np.asarray(labels), feats, "line"


@register_dataset(
    "purchase100",
    kind="tabular",
    description="Purchase100 shopping baskets (Shokri et al. 2017): 600 binary features, 100 classes",
    params=PurchaseParams,
    files=(
        ExpectedFile(
            PURCHASE_FILES,
            "purchase.npy (label column first), or the text file dataset_purchase (label 1..100 then 600 "
            "features per line), or its archive dataset_purchase.tgz",
        ),
    ),
)
def load_purchase100(params: PurchaseParams, data_dir: Path | None, seed: int) -> Dataset:
    """Load Purchase100 from ``data_dir``; labels 1..100 become 0..99; ids are line/row numbers."""
    path = require_file("purchase100", data_dir, PURCHASE_FILES)
    labels, feats, unit = load_tabular_with_labels(path, _PURCHASE_MEMBER, params.n_features)
    y = labels_to_classes(
        labels,
        label_base=params.label_base,
        n_classes=params.n_classes,
        path=path,
        unit=unit,
        offset=1 if unit == "line" else 0,
    )
    return Dataset(
        name="purchase100",
        x=feats,
        y=y,
        ids=np.arange(len(y), dtype=np.int64),
        kind="tabular",
        class_names=tuple(f"class_{k}" for k in range(params.n_classes)),
        source=str(path),
    )
