"""Pydantic errors as one line: each problem names its dotted key, an unknown key gets the closest."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from miaudit._validation import format_validation_error


class Train(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = 1
    lr: float = 0.1

    @field_validator("lr")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be positive; min: see docs")
        return v


class Run(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: Train = Train()
    stages: list[Train] = []


def _message(data: dict, **kw) -> str:
    with pytest.raises(ValidationError) as exc:
        Run.model_validate(data)
    return format_validation_error(exc.value, **kw)


def test_unknown_keys_get_the_closest_known_key_of_their_section():
    assert _message({"train": {"epoch": 3}}, model=Run) == "train.epoch: unknown key (did you mean train.epochs?)"
    assert _message({"trian": {}}, model=Run) == "trian: unknown key (did you mean train?)"
    assert _message({"stages": [{"lrr": 1}]}, model=Run) == "stages.0.lrr: unknown key (did you mean stages.0.lr?)"
    assert _message({"train": {"zzz": 3}}, model=Run) == "train.zzz: unknown key"  # nothing close
    assert _message({"train": {"epoch": 3}}) == "train.epoch: unknown key"  # no model: no hint


def test_every_problem_is_a_part_naming_its_key_with_the_bad_value():
    msg = _message({"train": {"epochs": "many", "lr": -1}}, prefix="run")
    parts = msg.split("; ")
    assert parts[0].startswith("run.train.epochs: Input should be a valid integer") and "(got 'many')" in parts[0]
    # a validator's "subkey: text" parts become keys below the field; plain text follows the field's key
    assert parts[1:] == ["run.train.lr: must be positive", "run.train.lr.min: see docs"]
