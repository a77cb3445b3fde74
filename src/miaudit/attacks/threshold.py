"""Attacks without reference models: one global threshold on a per-record statistic.

The score is the statistic oriented so that higher = member; the threshold itself is swept by
the metrics (ROC), so these need no calibration data. Yeom et al. 2018 (loss).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks._common import cross_entropy
from miaudit.attacks.base import AttackInput, register_attack


@register_attack("loss", description="global threshold on the target's loss (Yeom et al. 2018)", knowledge="none")
def loss_attack(inp: AttackInput) -> np.ndarray:
    """Score = −loss of the target on the plain query; members have lower loss."""
    return -cross_entropy(inp.target[0], inp.labels)
