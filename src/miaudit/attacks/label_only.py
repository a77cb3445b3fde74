"""Label-only attacks: the attacker sees only the target's predicted label.

- ``label-only-gap`` (Yeom et al. 2018; Choquette-Choo et al. 2021 "gap attack"): a correctly
  classified record is called a member. The score is 1.0 or 0.0; the ROC has one interior
  point and its ties are handled by the metrics (no tie-breaking noise is added).
- ``label-only-augment`` (Choquette-Choo et al., ICML 2021, §4 "data augmentation"): the share
  of the A augmented queries (identity, flip, shifts) whose predicted label is the true one;
  members keep their label under more augmentations. Images only, and needs A > 1
  (``audit.queries``).
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import AttackInput, NotApplicable, register_attack


@register_attack("label-only-gap", description="label-only gap attack: correctly classified ⇒ member", knowledge="none")
def label_only_gap(inp: AttackInput) -> np.ndarray:
    """Score = 1.0 if the target's argmax on the plain query is the label, else 0.0."""
    return (inp.target[0].argmax(axis=-1) == inp.labels).astype(np.float64)


@register_attack(
    "label-only-augment",
    description="label-only: share of augmented queries still classified correctly (Choquette-Choo et al. 2021)",
    knowledge="none",
    images_only=True,
)
def label_only_augment(inp: AttackInput) -> np.ndarray:
    """Score = mean over the A queries of [argmax = label]."""
    if inp.target.shape[0] < 2:
        raise NotApplicable("needs augmented queries (audit.queries > 1, or 4-D logits in a signals file)")
    return (inp.target.argmax(axis=-1) == inp.labels[None, :]).mean(axis=0)
