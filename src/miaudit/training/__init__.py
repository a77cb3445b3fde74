"""Training: one trainer; defences plug in as recipes (``miaudit.training.recipes``)."""

from miaudit.training.trainer import TrainOutcome, TrainRun, evaluate, train_model

__all__ = ["TrainOutcome", "TrainRun", "evaluate", "train_model"]
