"""Signals of models trained anywhere: the ``.npz`` format that ``miaudit audit --signals`` reads.

Arrays (``np.savez``; never pickled objects):

============================  ===========================  =====================================
name                          shape                        meaning
============================  ===========================  =====================================
``logits``                    (M, N, C) or (M, A, N, C)    every model's logits on the audit
                              float                        records (A augmented queries, the
                                                           plain query first)
``labels``                    (N,) int in [0, C)           true labels
``in_mask``                   (M, N) bool                  True where the record was in that
                                                           model's training set (0/1 integers
                                                           are accepted and converted)
``population_logits``         (M, P, C) or (M, A, P, C)    optional: records no model trained
                                                           on (RMIA's z)
``population_labels``         (P,) int                     required with ``population_logits``
``test_logits``               (M, T, C)                    optional: for test accuracy
``test_labels``               (T,) int                     required with ``test_logits``
``is_image``                  () bool                      optional: enables image-only attacks;
                                                           default: A > 1
============================  ===========================  =====================================

Every problem is a one-line ``DataError`` naming the array. A membership matrix that is not
balanced (records IN for different numbers of models) is allowed, with a warning: attacks that
need IN and OUT references for every record are then skipped where they cannot run.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from miaudit.errors import DataError
from miaudit.io import open_user_npz, refuse_non_regular, save_npz
from miaudit.rundir import RunDir
from miaudit.signals import Signals, load_signals

log = logging.getLogger(__name__)

REQUIRED = ("logits", "labels", "in_mask")
OPTIONAL = ("population_logits", "population_labels", "test_logits", "test_labels", "is_image")


class SignalsFileWarning(UserWarning):
    """Something in a signals file is unusual but usable (unbalanced membership, converted mask)."""


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(d) for d in a.shape) + ")"


#: largest |logit| accepted: trained networks stay within ±1e3; beyond ~1e6 float32 statistics overflow
MAX_LOGIT = 1e6


def _check_logits(name: str, a: np.ndarray, *, m: int | None = None, c: int | None = None, q: int | None = None) -> np.ndarray:
    if a.ndim not in (3, 4):
        raise DataError(f"{name}: expected shape (models, records, classes) or (models, queries, records, classes), got {_shape(a)}")
    if a.dtype.kind != "f":
        raise DataError(f"{name}: expected a float array, got dtype {a.dtype}")
    a = a[:, None] if a.ndim == 3 else a
    if m is not None and a.shape[0] != m:
        raise DataError(f"{name}: has {a.shape[0]} models, logits has {m}")
    if q is not None and a.shape[1] != q:
        raise DataError(f"{name}: has {a.shape[1]} queries, logits has {q}")
    if c is not None and a.shape[3] != c:
        raise DataError(f"{name}: has {a.shape[3]} classes, logits has {c}")
    if 0 in a.shape[1:]:
        what = ("queries", "records", "classes")[a.shape[1:].index(0)]
        raise DataError(f"{name}: has 0 {what} (shape {_shape(a)}); nothing to audit")
    bad = int(np.size(a) - np.isfinite(a).sum())
    if bad:
        raise DataError(f"{name}: {bad} NaN or infinite value(s); every logit must be finite")
    big = float(np.abs(a).max()) if a.size else 0.0
    if big > MAX_LOGIT:
        raise DataError(f"{name}: a logit of magnitude {big:.3g}; logits beyond ±{MAX_LOGIT:.0e} are not a trained "
                        "model's outputs (softmax and the attacks' statistics overflow); check the file")
    return a.astype(np.float32) if a.dtype != np.float64 else a


def _check_labels(name: str, a: np.ndarray, n: int, c: int) -> np.ndarray:
    if a.ndim != 1 or a.shape[0] != n:
        raise DataError(f"{name}: expected shape ({n},), got {_shape(a)}")
    if a.dtype.kind not in "iu":
        raise DataError(f"{name}: expected integer class indices, got dtype {a.dtype}")
    if n and (a.min() < 0 or a.max() >= c):
        raise DataError(f"{name}: labels must lie in 0..{c - 1} (the logits have {c} classes), found {a.min()}..{a.max()}")
    return a.astype(np.int64)


def _check_mask(a: np.ndarray, m: int, n: int) -> np.ndarray:
    if a.shape != (m, n):
        raise DataError(f"in_mask: expected shape ({m}, {n}) (models, records) to match logits, got {_shape(a)}")
    if a.dtype == bool:
        return a
    if a.dtype.kind in "iu" and np.isin(a, (0, 1)).all():
        log.info("in_mask: converted 0/1 integers to booleans")
        return a.astype(bool)
    raise DataError(f"in_mask: expected booleans (or 0/1 integers), got dtype {a.dtype}")


def validate_signals(arrays: dict[str, np.ndarray]) -> Signals:
    """Check the arrays of a signals file and build ``Signals``; raises ``DataError`` (one line) on a problem."""
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        log.info("signals file: ignoring unknown array(s) %s", ", ".join(unknown))
        arrays = {k: v for k, v in arrays.items() if k not in unknown}
    for key in REQUIRED:
        if key not in arrays:
            raise DataError(f"{key}: missing from the signals file (needs {', '.join(REQUIRED)})")
    logits = _check_logits("logits", np.asarray(arrays["logits"]))
    m, q, n, c = logits.shape
    if m < 2:
        raise DataError(f"logits: needs at least 2 models (a target and a reference), got {m}")
    if c < 2:
        raise DataError(f"logits: needs at least 2 classes, got {c}")
    labels = _check_labels("labels", np.asarray(arrays["labels"]), n, c)
    in_mask = _check_mask(np.asarray(arrays["in_mask"]), m, n)
    for k, row in enumerate(in_mask):
        if row.all() or not row.any():
            what = "every record is IN (no non-members)" if row.all() else "no record is IN (no members)"
            need = f", so needs at least 2 records (N = {n})" if n < 2 else ""
            raise DataError(f"in_mask: row {k}: {what}; every model needs members and non-members to be "
                            f"scored{need}")
    counts = in_mask.sum(axis=0)
    if not (counts == counts[0]).all() or 2 * int(counts[0]) != m:
        msg = (
            f"in_mask: not the balanced design (records are IN for {int(counts.min())}..{int(counts.max())} of {m} "
            "models, not exactly half); attacks run where every record has the references they need"
        )
        log.warning(msg)
        warnings.warn(msg, SignalsFileWarning, stacklevel=3)

    def pair(logit_key: str, label_key: str, *, same_queries: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        if (logit_key in arrays) != (label_key in arrays):
            have, miss = (logit_key, label_key) if logit_key in arrays else (label_key, logit_key)
            raise DataError(f"{miss}: missing; it is required together with {have}")
        if logit_key not in arrays:
            return None, None
        lg = _check_logits(logit_key, np.asarray(arrays[logit_key]), m=m, c=c, q=q if same_queries else None)
        lb = _check_labels(label_key, np.asarray(arrays[label_key]), lg.shape[2], c)
        return lg, lb

    pop_logits, pop_labels = pair("population_logits", "population_labels", same_queries=True)
    test_logits, test_labels = pair("test_logits", "test_labels", same_queries=False)
    if test_logits is not None:
        test_logits = test_logits[:, :1]
    is_image = q > 1
    if "is_image" in arrays:
        flag = np.asarray(arrays["is_image"])
        if flag.shape != () or flag.dtype.kind not in "bui":
            raise DataError(f"is_image: expected one boolean, got shape {_shape(flag)} dtype {flag.dtype}")
        is_image = bool(flag)
    return Signals(
        logits=logits, in_mask=in_mask, labels=labels,
        population_logits=pop_logits, population_labels=pop_labels,
        test_logits=test_logits, test_labels=test_labels, is_image=is_image,
    )


def load_signals_file(path: Path | str) -> Signals:
    """Read and validate a signals ``.npz`` (``np.load(allow_pickle=False)``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--signals {path}: file not found")
    z = open_user_npz(path, where=f"--signals {path}", hint=f"; expected arrays {', '.join(REQUIRED)}")
    arrays = {}
    with z:
        used = [key for key in z.files if key in REQUIRED or key in OPTIONAL]
        ignored = sorted(set(z.files) - set(used))
        if ignored:  # never read: a member miaudit does not use costs nothing, whatever it holds
            log.info("signals file: ignoring unknown array(s) %s", ", ".join(ignored))
        check_members(z.zip, used, budget=memory_budget())
        for key in used:
            try:
                arrays[key] = z[key]
            except ValueError:
                raise DataError(f"{key}: holds Python objects (pickled); save plain numeric arrays") from None
            except (OSError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
                raise DataError(f"{key}: cannot be read from {path} ({exc})") from None
    return validate_signals(arrays)


def memory_budget() -> int:
    """Bytes the arrays of a signals file may take: half the memory available now."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_members(zf: zipfile.ZipFile, keys: list[str], *, budget: int) -> None:
    """Check each used member's ``.npy`` header against the member's size and the memory budget,
    before anything is allocated: a zip bomb or a header that lies is refused in one line."""
    total = 0
    for key in keys:
        info = zf.getinfo(f"{key}.npy" if f"{key}.npy" in zf.namelist() else key)
        if info.flag_bits & 0x1:
            raise DataError(f"{key}: the zip member is encrypted; save the signals file with np.savez, unencrypted")
        try:
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(fh))
                header = fh.tell()
        except (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
            raise DataError(f"{key}: not a readable .npy array ({exc})") from None
        if dtype.hasobject:
            raise DataError(f"{key}: holds Python objects (pickled); save plain numeric arrays")
        declared = math.prod(shape) * dtype.itemsize
        if header + declared != info.file_size:
            raise DataError(f"{key}: its header declares shape {tuple(shape)} ({declared:,} bytes) but the member "
                            f"holds {max(info.file_size - header, 0):,} bytes of data; the file is damaged or forged")
        total += declared
        if total > budget:
            raise DataError(f"{key}: the arrays need {total / 2**30:.1f} GiB, over the {budget / 2**30:.1f} GiB "
                            "this machine can spare (half its available memory); use fewer records or models")


def signals_arrays(signals: Signals) -> dict[str, np.ndarray]:
    """The arrays of the signals-file format for ``signals`` ((M, N, C) logits when there is one query)."""

    def squeeze(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        return a[:, 0] if a.shape[1] == 1 else a

    out = {
        "logits": squeeze(signals.logits),
        "labels": np.asarray(signals.labels),
        "in_mask": np.asarray(signals.in_mask, dtype=bool),
        "is_image": np.array(bool(signals.is_image)),
    }
    if signals.population_logits is not None and signals.population_labels is not None:
        out["population_logits"] = squeeze(signals.population_logits)
        out["population_labels"] = np.asarray(signals.population_labels)
    if signals.test_logits is not None and signals.test_labels is not None and len(signals.test_labels):
        out["test_logits"] = np.asarray(signals.test_logits)[:, 0]
        out["test_labels"] = np.asarray(signals.test_labels)
    return out


def save_signals_file(path: Path | str, signals: Signals) -> None:
    """Write ``signals`` in the signals-file format (atomically)."""
    save_npz(path, **signals_arrays(signals))


def export_signals(run_dir: Path | str, path: Path | str) -> Path:
    """Write the signals of a finished ``miaudit run`` directory as a signals file; returns ``path``."""
    run_dir = Path(run_dir)
    path = Path(path)
    refuse_non_regular(path, what=f"export-signals {path}")
    if path.exists() and not _is_signals_file(path):
        raise DataError(f"export-signals {path}: exists and is not a signals file; miaudit never overwrites "
                        "another file, choose another name")
    rd = RunDir(run_dir)
    if not rd.signals_manifest.is_file():
        raise DataError(f"{run_dir}: no finished signals (run `miaudit run --out {run_dir}` first)")
    save_signals_file(path, load_signals(rd.signals))
    return path


def _is_signals_file(path: Path) -> bool:
    """Whether ``path`` is a zip holding the required arrays (a signals file written earlier, safe to replace)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return all(f"{k}.npy" in names for k in REQUIRED)
