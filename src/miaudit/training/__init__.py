"""Training: one trainer; defences plug in as recipes (``miaudit.training.recipes``).

Importing the package registers every recipe: the settings-only ones and augmentation
(``recipes``), curriculum learning (``curriculum``), DP-SGD (``dp``) and targeted augmentation
(``targeted``), each importing the recipe base; the base imports none of them.
"""

from miaudit.training import curriculum, dp, targeted  # noqa: F401  (register their recipes)
from miaudit.training.trainer import TrainOutcome, TrainRun, evaluate, train_model

__all__ = ["TrainOutcome", "TrainRun", "evaluate", "train_model"]
