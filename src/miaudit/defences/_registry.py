"""The inference-time defence interface and registry.

A defence is a transform of a model's output logits, in scikit-learn's shape: ``__init__``
stores its keyword parameters unchanged, ``fit(train_logits, train_labels)`` learns what it
needs from the defended model's own training set (attributes ending in ``_``) and returns
``self``, and ``__call__(logits)`` maps logits (..., C) to released outputs (..., C), vectorised
over the leading axes. Released outputs are logits too (log-probabilities where the defence
releases probabilities), so every attack reads them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from miaudit._registry import Registry


class OutputDefence:
    """Base class: ``fit`` learns nothing, ``__call__`` must be implemented."""

    def fit(self, train_logits: np.ndarray, train_labels: np.ndarray) -> OutputDefence:
        """Learn from the defended model's logits (n, C) on its training records and their labels (n,)."""
        return self

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_params(self) -> dict:
        """The constructor's parameters (scikit-learn's convention)."""
        return {k: getattr(self, k) for k in getattr(self, "_param_names", ())}


@dataclass(frozen=True)
class DefenceSpec:
    name: str
    cls: type[OutputDefence]
    params: type[BaseModel]
    description: str

    def build(self, params: dict | None = None) -> OutputDefence:
        """A fresh, unfitted defence with validated ``params``."""
        p = self.params.model_validate(params or {})
        return self.cls(**p.model_dump())


DEFENCES: Registry[DefenceSpec] = Registry("defence")


def register_defence(
    name: str, *, params: type[BaseModel], description: str
) -> Callable[[type[OutputDefence]], type[OutputDefence]]:
    """Register an :class:`OutputDefence` subclass whose ``__init__`` takes the fields of ``params``."""

    def add(cls: type[OutputDefence]) -> type[OutputDefence]:
        DEFENCES.add(name, DefenceSpec(name=name, cls=cls, params=params, description=description))
        cls._param_names = tuple(params.model_fields)  # type: ignore[attr-defined]
        return cls

    return add
