"""`npz` and `csv`: the user's own data, as a NumPy ``.npz`` archive or a CSV file with a header.

Both take the file as the ``path`` param; a relative path is resolved against ``data.data_dir``
when given, else the current directory. Nothing is unpickled: ``.npz`` files are opened with
``allow_pickle=False`` and an object array is refused with the reason.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.data.base import MAX_CLASSES, Dataset, Kind, register_dataset
from miaudit.errors import DataError
from miaudit.io import open_user_npz


class NpzParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="the .npz file holding arrays x and y (relative to data.data_dir, else the CWD)")
    kind: Literal["tabular", "image"] | None = Field(
        None, description="tabular (x is (N, F)) or image (x is (N, C, H, W) or (N, H, W)); default: from x.ndim"
    )
    n_classes: int | None = Field(None, ge=2, le=MAX_CLASSES, description="number of classes; default max(y) + 1")


class CsvParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="the CSV file (relative to data.data_dir, else the CWD)")
    label_column: str = Field("label", min_length=1, description="header name of the label column")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field separator")


def resolve_user_path(dataset: str, path: str, data_dir: Path | None) -> Path:
    """``path`` as given if absolute, else under ``data_dir`` (or the CWD); it must exist."""
    p = Path(path).expanduser()
    base = Path(data_dir).expanduser() if data_dir is not None else Path.cwd()
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        raise DataError(
            f"dataset {dataset!r}: file {p} not found (params.path {path!r} resolved against {base}); "
            "fix params.path or data.data_dir"
        )
    return p


def _classes_from_ints(y: np.ndarray, n_classes: int | None, where: str) -> int:
    """Check 0-based integer labels; return the class count (given, or max + 1)."""
    if y.min() < 0:
        raise DataError(f"{where}: label {int(y.min())} is negative; labels must be class numbers 0..n_classes-1")
    if n_classes is None and y.max() >= MAX_CLASSES:
        raise DataError(f"{where}: label {int(y.max())} is too large; labels are class numbers 0..n_classes-1 "
                        f"and miaudit supports up to {MAX_CLASSES:,} classes")
    n = int(y.max()) + 1 if n_classes is None else n_classes
    if y.max() >= n:
        raise DataError(
            f"{where}: label {int(y.max())} is outside 0..{n - 1}; raise n_classes or fix the labels"
        )
    return n


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------


def _npz_array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        arr = npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path}: array {key!r} is an object array, stored with pickle, which miaudit refuses to load "
                f"(unpickling can run code); save it as numbers, e.g. np.savez(path, x=x.astype(np.float32), "
                "y=y.astype(np.int64))"
            ) from exc
        raise DataError(f"{path}: array {key!r} cannot be read ({exc}); save the file again") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: array {key!r} cannot be read ({exc}); the file is damaged: save it again") from exc
    if arr.dtype.kind not in "biuf":  # bool, signed, unsigned, float
        raise DataError(f"{path}: array {key!r} has dtype {arr.dtype}; expected real numbers")
    return arr


@register_dataset(
    "npz",
    kind="tabular",
    description="your own .npz with arrays x (N, F) or (N, C, H, W) and y (N,); params: path, kind, n_classes",
    params=NpzParams,
)
def load_npz(params: NpzParams, data_dir: Path | None, seed: int) -> Dataset:
    """x and y from a user .npz; images must be uint8 (scaled by 1/255) or already in [0, 1]."""
    path = resolve_user_path("npz", params.path, data_dir)
    npz = open_user_npz(path, where=str(path), hint="; write it with np.savez(path, x=x, y=y)")
    with npz:
        missing = [k for k in ("x", "y") if k not in npz.files]
        if missing:
            raise DataError(
                f"{path}: no array named {missing[0]!r} (arrays found: {', '.join(npz.files) or 'none'}); "
                "save the features as x and the labels as y"
            )
        x = _npz_array(npz, "x", path)
        y_raw = _npz_array(npz, "y", path)

    n = len(y_raw)
    if y_raw.ndim == 2 and y_raw.shape[1] == 1:
        y_raw = y_raw[:, 0]
    if y_raw.ndim != 1 or n == 0:
        raise DataError(f"{path}: y has shape {y_raw.shape}; expected (N,) labels with N > 0")
    if x.ndim < 2 or x.shape[0] != n:
        raise DataError(f"{path}: x has shape {x.shape} but y has {n} labels; x needs one row per label")
    kind: Kind = params.kind or ("tabular" if x.ndim == 2 else "image")
    if kind == "tabular" and x.ndim != 2:
        raise DataError(f"{path}: x has shape {x.shape}; tabular data needs (N, F), or set kind: image")
    if kind == "image":
        if x.ndim == 3:
            x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
        if x.ndim != 4:
            raise DataError(f"{path}: x has shape {x.shape}; images need (N, C, H, W) or (N, H, W)")

    if x.dtype == np.uint8 and kind == "image":
        xf = x.astype(np.float32)
        xf /= 255.0
    else:
        xf = x.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(xf).reshape(n, -1).all(axis=1))
        if len(bad):
            raise DataError(
                f"{path}: x row {bad[0]} has NaN or infinite values ({len(bad)} rows affected); fix or drop them"
            )
        if kind == "image" and (xf.min() < 0 or xf.max() > 1):
            raise DataError(
                f"{path}: image values lie in {xf.min():g}..{xf.max():g}, not [0, 1]; "
                "divide by 255 or store x as uint8"
            )

    if np.issubdtype(y_raw.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(y_raw) | (y_raw != np.round(y_raw)))
        if len(bad):
            raise DataError(f"{path}: y[{bad[0]}] = {y_raw[bad[0]]:g} is not an integer class number")
    y = y_raw.astype(np.int64)
    n_classes = _classes_from_ints(y, params.n_classes, str(path))
    if n_classes < 2:
        raise DataError(f"{path}: y holds a single class; a classifier needs two or more (or set n_classes)")
    return Dataset(
        name="npz",
        x=xf,
        y=y,
        ids=np.arange(n, dtype=np.int64),
        kind=kind,
        class_names=tuple(f"class_{k}" for k in range(n_classes)),
        source=str(path),
    )


# --------------------------------------------------------------------------------------------
# csv
# --------------------------------------------------------------------------------------------


def _bad_cell(cells: np.ndarray, lines: list[int], columns: list[str], path: Path) -> DataError:
    """The DataError for the first cell of ``cells`` (rows x columns of str) that is not a number."""
    for c in range(cells.shape[1]):
        try:
            cells[:, c].astype(np.float64)
            continue
        except ValueError:
            pass
        for i, v in enumerate(cells[:, c]):
            try:
                float(v)
            except ValueError:
                shown = repr(str(v)) if v else "empty"
                return DataError(
                    f"{path}: line {lines[i]}, column {columns[c]!r} is {shown}, not a number; "
                    "every column but the label must be numeric"
                )
    return DataError(f"{path}: a feature value is not a number")  # pragma: no cover - astype and float agree


@register_dataset(
    "csv",
    kind="tabular",
    description="your own CSV with a header row, numeric features and a label column; params: path, label_column",
    params=CsvParams,
)
def load_csv(params: CsvParams, data_dir: Path | None, seed: int) -> Dataset:
    """Features and labels from a CSV with a header.

    Labels that are all integers are used as class numbers (0-based, n_classes = max + 1);
    otherwise every distinct label string is a class, numbered in sorted order, and the
    strings become the class names. Ids are data-row numbers (0 = first row after the header).
    """
    path = resolve_user_path("csv", params.path, data_dir)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: drop a BOM written by spreadsheets
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8 CSV") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=params.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        rows, lines = [], []
        for row in reader:
            if not row or all(not v.strip() for v in row):
                continue  # blank line
            rows.append(row)
            lines.append(reader.line_num)
    except StopIteration:
        raise DataError(f"{path} is empty; expected a header row and data rows") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}; fix the CSV quoting") from exc
    if params.label_column not in header:
        raise DataError(
            f"{path}: no column {params.label_column!r} (columns found: {', '.join(map(repr, header))}); "
            "set label_column to the name of the label column"
        )
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    width = len(header)
    bad = [i for i, r in enumerate(rows) if len(r) != width]
    if bad:
        i = bad[0]
        raise DataError(
            f"{path}: line {lines[i]} has {len(rows[i])} fields but the header has {width} "
            f"(check delimiter {params.delimiter!r})"
        )
    label_at = header.index(params.label_column)
    feat_at = [c for c in range(width) if c != label_at]
    if not feat_at:
        raise DataError(f"{path}: only the label column {params.label_column!r} is present; no features")
    columns = [header[c] for c in feat_at]
    cells = np.char.strip(np.array(rows, dtype=str))
    try:
        x = cells[:, feat_at].astype(np.float64)
    except ValueError:
        raise _bad_cell(cells[:, feat_at], lines, columns, path) from None
    finite = np.isfinite(x) & (np.abs(x) <= np.finfo(np.float32).max)  # features are float32: 1e300 is inf there
    if not finite.all():
        i, c = (int(v[0]) for v in np.nonzero(~finite))
        raise DataError(
            f"{path}: line {lines[i]}, column {columns[c]!r} is {x[i, c]}; NaN and infinite values are not allowed"
            + ("" if not np.isfinite(x[i, c]) else " (nor values beyond ±3.4e38, infinite in float32)")
        )

    labels = cells[:, label_at]
    empty = np.flatnonzero(labels == "")
    if len(empty):
        raise DataError(f"{path}: line {lines[empty[0]]} has an empty {params.label_column!r}; every row needs a label")
    try:
        y = labels.astype(np.int64)
    except (ValueError, OverflowError):
        names, y = np.unique(labels, return_inverse=True)
        class_names = tuple(str(s) for s in names)
    else:
        n_classes = _classes_from_ints(y, None, f"{path} column {params.label_column!r}")
        class_names = tuple(f"class_{k}" for k in range(n_classes))
    if len(class_names) < 2:
        raise DataError(f"{path}: column {params.label_column!r} holds a single class; a classifier needs two or more")
    return Dataset(
        name="csv",
        x=x.astype(np.float32),
        y=np.asarray(y, dtype=np.int64).reshape(-1),
        ids=np.arange(len(rows), dtype=np.int64),
        kind="tabular",
        class_names=class_names,
        source=str(path),
    )
