"""The error classes: which the CLI prints as one line (UserError), and a warning that crosses processes."""

from __future__ import annotations

import pickle

from miaudit.errors import (
    ConfigError,
    DataError,
    MembersFailedError,
    NonFiniteScoresWarning,
    RunDirError,
    TargetError,
    TrainingDivergedError,
    UserError,
)


def test_every_error_the_user_fixes_is_a_user_error():
    for cls in (ConfigError, DataError, RunDirError, TrainingDivergedError, MembersFailedError, TargetError):
        assert issubclass(cls, UserError), cls
    assert issubclass(ConfigError, ValueError)  # pydantic validators may raise it
    assert issubclass(TargetError, DataError)


def test_non_finite_scores_warning_says_what_and_survives_pickling():
    w = NonFiniteScoresWarning("rmia-online", 3, 600, "target 2")
    assert str(w).startswith("attack 'rmia-online' returned 3 of 600 scores not finite (NaN or ±inf) on target 2")
    back = pickle.loads(pickle.dumps(w))  # a worker process sends it to the parent
    assert type(back) is NonFiniteScoresWarning and str(back) == str(w)
    assert (back.attack, back.count, back.total, back.where) == ("rmia-online", 3, 600, "target 2")
