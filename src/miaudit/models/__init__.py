"""Models: a registry of builders that return AuditModel (logits, penultimate features, CAM layer)."""

from miaudit.models.base import MODELS, AuditModel, ModelSpec, build_model, norm_layer, register_model

from miaudit.models import fcn  # noqa: F401  isort: skip
from miaudit.models import cnn, densenet, resnet  # noqa: F401  isort: skip

__all__ = ["MODELS", "AuditModel", "ModelSpec", "build_model", "norm_layer", "register_model"]
