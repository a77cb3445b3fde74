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
import warnings
import zipfile
from pathlib import Path

import numpy as np

from miaudit.errors import DataError
from miaudit.io import open_user_npz, save_npz
from miaudit.signals import Signals, load_signals

log = logging.getLogger(__name__)

REQUIRED = ("logits", "labels", "in_mask")
OPTIONAL = ("population_logits", "population_labels", "test_logits", "test_labels", "is_image")


class SignalsFileWarning(UserWarning):
    """Something in a signals file is unusual but usable (unbalanced membership, converted mask)."""


def _shape(a: np.ndarray) -> str:
    return "(" + ", ".join(str(d) for d in a.shape) + ")"


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
    bad = int(np.size(a) - np.isfinite(a).sum())
    if bad:
        raise DataError(f"{name}: {bad} NaN or infinite value(s); every logit must be finite")
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
        for key in z.files:
            try:
                arrays[key] = z[key]
            except ValueError:
                raise DataError(f"{key}: holds Python objects (pickled); save plain numeric arrays") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"{key}: cannot be read from {path} ({exc})") from None
    return validate_signals(arrays)


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
    if not (run_dir / "signals" / "manifest.json").is_file():
        raise DataError(f"{run_dir}: no finished signals (run `miaudit run --out {run_dir}` first)")
    save_signals_file(path, load_signals(run_dir / "signals"))
    return Path(path)
