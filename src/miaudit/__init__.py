"""miaudit: audit machine-learning models for membership-inference leakage.

Which records leak, why, and what each defence really buys.

>>> from miaudit import load_config, run_audit
>>> cfg = load_config(None, ["train.epochs=2"])  # the embedded default, shortened
"""

import importlib
from typing import Any

from miaudit.errors import ConfigError, DataError, MiauditError, RunDirError, UnreliableEstimateWarning, UserError

__version__ = "0.1.0"

# Entry points load on first use (the pipeline's import torch), so `import miaudit.attacks`
# and `import miaudit.metrics` load only the array layer and the errors.
_LAZY = {
    "RunConfig": "miaudit.config",
    "load_config": "miaudit.pipeline.configure",
    "audit_signals": "miaudit.pipeline.audit_signals",
    "run_audit": "miaudit.pipeline.run",
    "export_signals": "miaudit.signals.file",
    "load_signals_file": "miaudit.signals.file",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")

__all__ = [
    "ConfigError",
    "DataError",
    "MiauditError",
    "RunConfig",
    "RunDirError",
    "UnreliableEstimateWarning",
    "UserError",
    "audit_signals",
    "export_signals",
    "load_config",
    "load_signals_file",
    "run_audit",
]
