"""`texas100`: the Texas hospital-discharge dataset of Shokri et al. (2017).

Two text files from the same directory (as ML Privacy Meter unpacks ``dataset_texas.tgz``):

- ``feats``: one record per line, 6,169 comma-separated binary features (67,330 lines);
- ``labels``: one class number per line, 1..100, in the same order.

Either file may also be read from ``dataset_texas.tgz`` (members ``texas/100/feats`` and
``texas/100/labels``), in memory. Labels become 0..99 (``label_base: 1``). There is no stable
public download location with a pinned checksum, so this loader never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.data.archive import read_members
from miaudit.data.base import MAX_CLASSES, Dataset, ExpectedFile, register_dataset, require_files
from miaudit.data.purchase import labels_to_classes, parse_numeric_text, read_text_source
from miaudit.errors import DataError

FEATS_FILES = ("feats", "texas/100/feats", "dataset_texas.tgz")
LABELS_FILES = ("labels", "texas/100/labels", "dataset_texas.tgz")
_MEMBERS = {"feats": "texas/100/feats", "labels": "texas/100/labels"}  # inside dataset_texas.tgz


class TexasParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_features: int = Field(6169, gt=0, description="features per line of `feats` (6,169 in Texas100)")
    n_classes: int = Field(100, ge=2, le=MAX_CLASSES, description="classes (100 in Texas100)")
    label_base: Literal[0, 1] = Field(1, description="number of the first class in `labels` (1 in the original files)")


@register_dataset(
    "texas100",
    kind="tabular",
    description="Texas100 hospital discharges (Shokri et al. 2017): 6,169 binary features, 100 classes",
    params=TexasParams,
    files=(
        ExpectedFile(FEATS_FILES, "feats: 6,169 comma-separated binary features per line"),
        ExpectedFile(LABELS_FILES, "labels: one class number 1..100 per line, same order as feats"),
    ),
)
def load_texas100(params: TexasParams, data_dir: Path | None, seed: int) -> Dataset:
    """Load Texas100 from ``data_dir``; labels 1..100 become 0..99; ids are line numbers."""
    feats_path, labels_path = require_files("texas100", data_dir, (FEATS_FILES, LABELS_FILES))
    if feats_path == labels_path:  # both inside dataset_texas.tgz: one pass over the archive
        found = read_members(feats_path, _MEMBERS.values())
        missing = [m for m in _MEMBERS.values() if m not in found]
        if missing:
            raise DataError(f"archive {feats_path} holds no {missing[0]!r}; is it the right archive? download it again")
        feats_bytes, labels_bytes = found[_MEMBERS["feats"]], found[_MEMBERS["labels"]]
    else:
        feats_bytes = read_text_source(feats_path, _MEMBERS["feats"])
        labels_bytes = read_text_source(labels_path, _MEMBERS["labels"])
    _, x = parse_numeric_text(feats_bytes, params.n_features, feats_path, label_first=False)
    del feats_bytes
    raw_labels, _ = parse_numeric_text(labels_bytes, 1, labels_path, label_first=True)
    if raw_labels is None or len(raw_labels) != len(x):
        n_labels = 0 if raw_labels is None else len(raw_labels)
        raise DataError(
            f"dataset 'texas100': {feats_path} has {len(x)} records but {labels_path} has {n_labels} labels; "
            "they must come from the same release"
        )
    y = labels_to_classes(raw_labels, label_base=params.label_base, n_classes=params.n_classes, path=labels_path)
    return Dataset(
        name="texas100",
        x=x,
        y=y,
        ids=np.arange(len(y), dtype=np.int64),
        kind="tabular",
        class_names=tuple(f"class_{k}" for k in range(params.n_classes)),
        source=f"{feats_path}, {labels_path}",
    )
