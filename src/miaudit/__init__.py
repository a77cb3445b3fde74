"""miaudit: audit machine-learning models for membership-inference leakage.

Which records leak, why, and what each defence really buys.

>>> from miaudit import load_config, run_audit
>>> cfg = load_config(None, ["train.epochs=2"])  # the embedded default, shortened
"""

from miaudit.config import RunConfig, load_config
from miaudit.errors import ConfigError, DataError, MiauditError, RunDirError, UnreliableEstimateWarning, UserError
from miaudit.runner import run_audit

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "MiauditError",
    "RunConfig",
    "RunDirError",
    "UnreliableEstimateWarning",
    "UserError",
    "load_config",
    "run_audit",
]
