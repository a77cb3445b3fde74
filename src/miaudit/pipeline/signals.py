"""Computing the signals: every pool member's logits on the audit pool, population and test split.

Computed once in batches and cached in the run directory (the layout is ``miaudit.signals``);
every attack reads from there. For image datasets each record is also queried under A
deterministic augmentations (identity first), as LiRA does. Per-member parts are written as
they finish (resumable), then assembled into memory-mappable ``.npy`` arrays.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from miaudit import failpoints
from miaudit.config import RunConfig
from miaudit.data import Dataset, Splits
from miaudit.errors import DataError
from miaudit.inference.logits import model_logits
from miaudit.io import fingerprint, save_npz, write_npy_stream
from miaudit.pipeline.pool import load_member
from miaudit.rundir import RunDir
from miaudit.transforms import query_offsets

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


#: recipes whose image augmentation flips inputs at training time (``hflip`` parameter)
FLIPPING_RECIPES = ("augmentation", "targeted-augmentation")


def trained_flips(config: RunConfig) -> bool:
    """Whether the pool trained with random horizontal flips (an augmentation recipe with ``hflip``)."""
    return any(r.name in FLIPPING_RECIPES and dict(r.params or {}).get("hflip", False) for r in config.train.recipes)


def n_queries(config: RunConfig, is_image: bool) -> int:
    """Queries per record: ``audit.queries``, or by default the augmentations the models trained with.

    Queries must be inputs the models saw in training: a flipped query of a model trained
    without flips is an unseen input, and LiRA on it scores below chance (measured on
    Fashion-MNIST: online-fixed AUC 0.573 on the plain query, 0.492 on the flip alone). So
    null gives 2 (identity, flip) with a flipping augmentation recipe and 1 otherwise;
    ``queries_mismatch`` says when an explicit value asks for augmentations not trained with.
    """
    if not is_image:
        return 1
    if config.audit.queries is not None:
        return config.audit.queries
    return 2 if trained_flips(config) else 1


def queries_mismatch(config: RunConfig, is_image: bool) -> str | None:
    """A warning when explicit ``audit.queries`` include flips or shifts the training recipe never applied."""
    q = config.audit.queries
    if not is_image or q is None or q < 2:
        return None
    offsets = query_offsets(q)
    flips = any(f for f, _, _ in offsets)
    pad = max((int(dict(r.params or {}).get("padding", 0)) for r in config.train.recipes if r.name in FLIPPING_RECIPES),
              default=0)
    shift = max(max(abs(dy), abs(dx)) for _, dy, dx in offsets)
    if (flips and not trained_flips(config)) or shift > pad:
        return (
            f"audit.queries={q} queries flipped/shifted images but the models trained without that augmentation "
            f"(train.recipes); such queries are unseen inputs and bias LiRA/RMIA (AUC can fall below 0.5): "
            f"leave audit.queries unset to match the training recipe"
        )
    return None


def signals_fingerprint(config: RunConfig, is_image: bool) -> str:
    return fingerprint({"pool": config.pool_fingerprint(), "queries": n_queries(config, is_image)})


def compute_member_signals(
    config: RunConfig, dataset: Dataset, splits: Splits, rd: RunDir, m: int, *, device: torch.device
) -> None:
    """Write member ``m``'s logits on audit, population and test records (one .npz part)."""
    is_image = dataset.kind == "image"
    queries = query_offsets(n_queries(config, is_image))
    model = load_member(config, dataset.input_shape, dataset.n_classes, rd, m).to(device)
    save_npz(
        rd.member_signals(m),
        audit=model_logits(model, dataset.x[splits.audit], queries, device=device),
        population=model_logits(model, dataset.x[splits.population], queries, device=device),
        test=model_logits(model, dataset.x[splits.test], queries[:1], device=device),
        fingerprint=np.array(signals_fingerprint(config, is_image)),
    )
    failpoints.hit("signals-part")


def member_part_done(rd: RunDir, m: int, fp: str) -> bool:
    """Whether member ``m``'s signals part exists and was computed under fingerprint ``fp``."""
    return _part_done(rd.member_signals(m), fp)


def _part_done(path: Path, fp: str) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"]) == fp
    except Exception:  # noqa: BLE001  a damaged part is recomputed
        return False


def assemble_signals(rd: RunDir, n_models: int, fp: str) -> None:
    """Stack per-member parts into (M, A, N, C) ``.npy`` arrays, one member at a time.

    Member m's block is contiguous in the (M, ...) layout, so each part is appended to the file
    in turn: memory stays at one member's part (a writable memmap of the whole array would
    count every written page in the process's resident set until the kernel writes it back).
    """
    with np.load(rd.member_signals(0), allow_pickle=False) as first:
        shapes = {k: first[k].shape for k in ("audit", "population", "test")}
    for key, out_name in (("audit", "audit_logits"), ("population", "population_logits"), ("test", "test_logits")):

        def fill(fh: BinaryIO, key: str = key) -> None:
            for m in range(n_models):
                with np.load(rd.member_signals(m), allow_pickle=False) as z:
                    part = np.ascontiguousarray(z[key], dtype=np.float32)
                if part.shape != shapes[key]:
                    raise DataError(f"{rd.member_signals(m)}: {key} has shape {part.shape}, expected {shapes[key]}")
                fh.write(part.tobytes())

        write_npy_stream(rd.signals / f"{out_name}.npy", (n_models, *shapes[key]), np.float32, fill)
