"""Queries follow the training recipe (issue 14, item 2); the audit honouring them is in test_attack.py."""

from miaudit.pipeline.configure import load_config
from miaudit.pipeline.signals import n_queries, queries_mismatch


def test_queries_default_to_the_training_augmentation():
    plain = load_config(None, ["data.name=fashion-mnist"])
    assert n_queries(plain, is_image=True) == 1 and n_queries(plain, is_image=False) == 1
    flips = load_config(None, ["data.name=fashion-mnist", "train.recipes=[{name: augmentation}]"])
    assert n_queries(flips, is_image=True) == 2 and queries_mismatch(flips, True) is None
    no_flip = load_config(None, ["data.name=fashion-mnist", "train.recipes=[{name: augmentation, params: {hflip: false}}]"])
    assert n_queries(no_flip, is_image=True) == 1
    asked = load_config(None, ["data.name=fashion-mnist", "audit.queries=2"])
    assert n_queries(asked, is_image=True) == 2
    assert "trained without that augmentation" in queries_mismatch(asked, True)
    assert queries_mismatch(asked, False) is None  # tabular data is queried once anyway
