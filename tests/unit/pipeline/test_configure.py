"""Loading a config: defaults, YAML, overrides, names and params resolved against the registries, one-line errors."""

import pytest

from miaudit.config import RunConfig
from miaudit.pipeline.configure import load_config, validate_config
from miaudit.errors import ConfigError


def test_defaults_are_the_embedded_audit():
    cfg = load_config()
    assert cfg.data.name == "synthetic-purchase"
    assert cfg.model.name == "fcn"
    assert cfg.pool.n_models == 8
    # dataset params are resolved with their defaults, so the run directory records them
    assert cfg.data.params["n_features"] == 600


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.epochz=3", "train.epochz: unknown key"),
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=0", "train.epochs"),
        ("data.splits.audit=-5", "data.splits.audit"),
        ("pool.n_models=5", "pool.n_models: must be even"),
        ("audit.fprs=[0.01, 1.5]", "audit.fprs"),
        ("data.name=purchase1000", "data.name: unknown dataset 'purchase1000'"),
        ("model.name=resnet", "model.name: unknown model 'resnet'"),
        ("audit.attacks=[lira-onlin]", "audit.attacks[0]: unknown attack 'lira-onlin', did you mean 'lira-online'"),
        ("data.params.n_recordz=5", "data.params.n_recordz: unknown key"),
        ("data.params.density=2", "data.params.density"),
        ("audit.targets=9", "audit.targets"),

    ],
)
def test_bad_values_name_their_key_in_one_line(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg


def test_model_params_are_checked_at_load_time():
    with pytest.raises(ConfigError, match=r"model.params.depth: .*multiple of 6"):
        load_config(None, ["model.name=densenet-bc", "model.params.depth=101"])


def test_several_problems_are_reported_together():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.epochs=0", "pool.n_models=3"])
    assert "train.epochs" in str(info.value) and "pool.n_models" in str(info.value)


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n  lr: 0.01\npool:\n  n_models: 4\n")
    cfg = load_config(p, ["train.epochs=7"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.pool.n_models) == (7, 0.01, 4)


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_schemas_know_no_registry_the_loader_resolves_names():
    """config.py is plain schemas: a config built in code is checked for types and ranges only; the
    loader (pipeline.configure) checks names against the registries and fills their params."""
    built = RunConfig(model={"name": "no-such-model"}, pool={"n_models": 4})
    assert built.model.params == {}  # nothing resolved, nothing refused
    with pytest.raises(ConfigError, match="model.name: unknown model 'no-such-model'"):
        validate_config({"model": {"name": "no-such-model"}})
    with pytest.raises(ConfigError, match="pool.n_models: must be even"):  # the schema's own rule still holds
        validate_config({"pool": {"n_models": 3}})
    resolved = validate_config({})
    assert resolved.model.params["hidden"] == [1024, 512, 256, 128]  # defaults of the registered FCN
    assert resolved == load_config(None)
