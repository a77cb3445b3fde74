"""The generic registry: sorted names, a name registered twice refused, a miss naming the closest."""

from __future__ import annotations

import pytest

from miaudit._registry import Registry
from miaudit.errors import ConfigError


def _colours() -> Registry[int]:
    reg: Registry[int] = Registry("colour")
    for i, name in enumerate(["red", "green", "blue"]):
        reg.add(name, i)
    return reg


def test_names_items_and_iteration_are_sorted():
    reg = _colours()
    assert reg.names() == list(reg) == ["blue", "green", "red"]
    assert reg.items() == [("blue", 2), ("green", 1), ("red", 0)]
    assert "red" in reg and "pink" not in reg and reg.get("green") == 1


def test_a_second_registration_is_refused_unless_forced():
    reg = _colours()
    with pytest.raises(RuntimeError, match="colour 'red' registered twice"):
        reg.add("red", 9)
    reg.add("red", 9, force=True)
    assert reg.get("red") == 9
    reg.remove("red")
    reg.remove("red")  # removing what is not there is not an error
    assert reg.names() == ["blue", "green"]


def test_a_miss_is_a_config_error_with_the_closest_name_and_the_known_ones():
    reg = _colours()
    with pytest.raises(ConfigError) as exc:
        reg.get("gren", where="model.colour")
    assert str(exc.value) == "model.colour: unknown colour 'gren', did you mean 'green'? (known: blue, green, red)"
    assert reg.unknown_message("zzzzzz") == "unknown colour 'zzzzzz' (known: blue, green, red)"
