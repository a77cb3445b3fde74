"""Every error and warning class miaudit raises on purpose, in one place.

``UserError`` and its subclasses are problems the user can fix (bad config, missing file):
the CLI prints them as one line and exits with code 2. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class MiauditError(Exception):
    """Anything miaudit raises on purpose."""


class UserError(MiauditError):
    """Fixable by the user: the CLI prints one line and exits 2."""


class ConfigError(UserError, ValueError):
    """Bad YAML, unknown name, out-of-range value, incompatible run directory."""


class DataError(UserError):
    """Missing file, checksum mismatch, wrong shape, corrupt archive, unsafe pickle."""


class RunDirError(UserError):
    """The run directory cannot be used: not writable, full, or holds a different run."""


class TrainingDivergedError(UserError):
    """A pool member's loss or weights became NaN or infinite (a learning rate too high); finished members are kept."""


class MembersFailedError(UserError):
    """Pool members whose tasks kept failing (Ray executor); the finished ones are kept, a rerun retries."""


class UnreliableEstimateWarning(UserWarning):
    """A TPR at FPR alpha backed by fewer than ~10/alpha non-members."""


class SkippedAttackWarning(UserWarning):
    """An attack that the pool or dataset cannot support was skipped."""


class BelowChanceWarning(UserWarning):
    """An attack's AUC interval lies wholly below 0.5: a broken setup (e.g. queries the models never trained on)."""


class FewReferencesWarning(UserWarning):
    """An attack variant that needs many reference models ran with few (its figures understate the leak)."""


class TargetError(DataError):
    """The target's weights or records cannot be audited as given (one line, exit 2)."""


class NonFiniteScoresWarning(UserWarning):
    """An attack returned NaN or ±inf scores: a bug in the attack or its inputs. The run maps them to
    the ends of the finite range (order kept) and goes on; results.json's ``warnings`` records it."""

    def __init__(self, attack: str, count: int, total: int, where: str) -> None:
        self.attack, self.count, self.total, self.where = attack, count, total, where
        super().__init__(
            f"attack {attack!r} returned {count} of {total} scores not finite (NaN or ±inf) on {where}, "
            "mapped to the ends of the finite range: a bug in the attack or its inputs"
        )

    def __reduce__(self) -> tuple:
        return type(self), (self.attack, self.count, self.total, self.where)
