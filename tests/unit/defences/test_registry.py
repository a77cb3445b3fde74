"""The defence registry: validated parameters, repeated names refused."""

from __future__ import annotations

import pytest

from miaudit.config import DefenceConfig
from miaudit.pipeline.configure import load_config
from miaudit.defences import DEFENCES
from miaudit.pipeline.defences import defence_keys
from miaudit.errors import ConfigError


def test_registry_builds_validated_defences_and_names_repeats():
    d = DEFENCES.get("logit-reweighting").build({"w": 0.2})
    assert d.get_params() == {"w": 0.2, "preserve_argmax": True}
    with pytest.raises(ConfigError, match="defences.0.params.w"):
        load_config(None, ["defences=[{name: logit-reweighting, params: {w: 2}}]"])
    with pytest.raises(ConfigError, match="did you mean 'top-k'"):
        load_config(None, ["defences=[top_k]"])
    specs = [DefenceConfig(name="top-k"), DefenceConfig(name="temperature", params={"temperature": 3.0})]
    assert defence_keys(specs) == ["top-k", "temperature"]
