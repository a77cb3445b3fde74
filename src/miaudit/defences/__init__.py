"""Inference-time defences: transforms of the target's outputs, and their evaluation against
non-adaptive, adaptive and label-only attackers (``miaudit.pipeline.defences``).

Training-time defences are recipes (``miaudit.training.recipes``).
"""

from miaudit.defences._registry import DEFENCES, DefenceSpec, OutputDefence, register_defence

from miaudit.defences import transforms  # noqa: F401  isort: skip
from miaudit.defences.transforms import LabelOnly, LogitReweighting, Temperature, TopK, reweight_logits  # noqa: E402

__all__ = [
    "DEFENCES",
    "DefenceSpec",
    "LabelOnly",
    "LogitReweighting",
    "OutputDefence",
    "Temperature",
    "TopK",
    "register_defence",
    "reweight_logits",
]
