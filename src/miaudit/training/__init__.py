"""Training: one trainer; defences plug in as recipes."""

from miaudit.training.trainer import TrainOutcome, evaluate, train_model

__all__ = ["TrainOutcome", "evaluate", "train_model"]
