"""Plugins: your own dataset/model registered from a file named in the config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from miaudit.pipeline.configure import load_config
from miaudit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my_plugin.yaml"


def test_example_plugin_registers_names_the_config_can_use(tmp_path):
    cfg = load_config(EXAMPLE)
    assert cfg.data.name == "my-blobs" and cfg.model.name == "my-two-layer"
    plugin = Path(cfg.plugins[0])
    assert plugin.is_absolute() and plugin.name == "my_plugin.py"  # resolved against the config's folder
    # loading the same file again (another config, a rerun) registers nothing twice
    assert load_config(EXAMPLE, ["model.params.width=8"]).model.params["width"] == 8


def test_a_fresh_process_rebuilds_the_resolved_config():
    """What a worker process or a Ray task does: validate the resolved config from JSON."""
    resolved = json.dumps(load_config(EXAMPLE).model_dump(mode="json"))
    code = ("import json, sys; from miaudit.pipeline.configure import validate_config; "
            "c = validate_config(json.loads(sys.stdin.read())); print(c.data.name, c.model.name)")
    out = subprocess.run([sys.executable, "-c", code], input=resolved, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["my-blobs", "my-two-layer"]


def test_without_the_plugin_the_names_are_unknown():
    # a fresh process: registrations are per process, and this one may have loaded the plugin
    code = ("from miaudit.pipeline.configure import validate_config\n"
            "try:\n    validate_config({'model': {'name': 'my-two-layer'}})\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "model.name" in out.stdout and "my-two-layer" in out.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("import not_a_module_anywhere\n", "not_a_module_anywhere"),
    ],
)
def test_a_broken_plugin_is_a_one_line_config_error(tmp_path, content, expected):
    path = tmp_path / "plug.py"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"plugins=[{path}]"])
    msg = str(info.value)
    assert "plugins" in msg and expected in msg and "\n" not in msg


def test_an_unknown_plugin_module_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import"):
        load_config(None, ["plugins=[no_such_pkg.models]"])
