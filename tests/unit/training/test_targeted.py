"""Targeted augmentation: which records a vulnerability ranking flags."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from miaudit.pipeline.configure import load_config
from miaudit.errors import DataError
from miaudit.training.targeted import TargetedAugmentationParams, flagged_records, read_vulnerability_ranking
from recipe_fixtures import context, write_ranking


def test_ranking_is_read_by_record_id_and_flags_the_top_fraction(tmp_path):
    ids = np.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    # the file lists records in another order and one record that is not in this audit pool
    write_ranking(tmp_path / "vulnerable_records.csv", [13, 99, 10, 17], [0.9, 1.0, 0.5, 0.7], [1, 1, 0, 0])
    score, flags = read_vulnerability_ranking(tmp_path, ids)
    assert np.isnan(score[[1, 2, 4, 5, 6, 8, 9]]).all()
    assert score[3] == 0.9 and score[0] == 0.5 and score[7] == 0.7
    assert flags.tolist() == [False, False, False, True] + [False] * 6
    cfg = load_config(None)
    ctx = context(cfg, torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), ids=ids)
    top = flagged_records(TargetedAugmentationParams(ranking_from=tmp_path, fraction=0.2), ctx)
    assert np.flatnonzero(top).tolist() == [3, 7]
    from_flags = flagged_records(TargetedAugmentationParams(ranking_from=tmp_path, fraction=None), ctx)
    assert np.flatnonzero(from_flags).tolist() == [3]
    with pytest.raises(DataError, match="vulnerable_records.csv"):
        read_vulnerability_ranking(tmp_path / "nowhere", ids)
