"""The model tests run one intra-op thread (see the fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Batches of 2 gain nothing from intra-op threads, and on a busy 2-core machine (xdist,
    other jobs) spinning OpenMP threads made these tests ~8x slower; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
