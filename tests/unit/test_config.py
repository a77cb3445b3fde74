"""The config schemas: the dotted-key override language, the pool fingerprint, the resolved YAML round trip."""

import pytest

from miaudit.config import apply_overrides, parse_override
from miaudit.pipeline.configure import load_config, validate_config
from miaudit.errors import ConfigError


def test_override_parsing():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=true") == (["a"], True)
    with pytest.raises(ConfigError):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": 3}, ["train.epochs=2"])


def test_pool_fingerprint_ignores_attacks_and_runtime():
    a = validate_config({})
    b = load_config(None, ["audit.attacks=[loss]", "runtime.threads=1", "analysis.vulnerability=false"])
    c = load_config(None, ["train.epochs=3"])
    assert a.pool_fingerprint() == b.pool_fingerprint()
    assert a.pool_fingerprint() != c.pool_fingerprint()


def test_resolved_yaml_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=3", "audit.attacks=[loss]"])
    p = tmp_path / "r.yaml"
    p.write_text(cfg.to_yaml())
    assert load_config(p) == cfg
