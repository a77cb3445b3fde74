"""Every module of the package imports in a fresh interpreter.

A module that imports an undeclared package (as ``cli.py`` once imported ``click``, present in
development only because Ray pulled it in) fails here, and in `.ci/run`'s fresh environment, instead
of on a user's first command. Optional extras are imported lazily; only their own module may be
skipped, and only when the extra is absent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import miaudit

#: modules that exist only to serve an optional extra, and the package that extra installs
OPTIONAL_MODULES = {"miaudit.pipeline.executors_ray": "ray"}

_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
import miaudit
skip = set(sys.argv[1:])
failed = {}
names = [m.name for m in pkgutil.walk_packages(miaudit.__path__, "miaudit.")]
for name in names:
    if name in skip:
        continue
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001  report every failure, not the first
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"names": names, "failed": failed}))
"""


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    skip = [mod for mod, pkg in OPTIONAL_MODULES.items() if importlib.util.find_spec(pkg) is None]
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *skip], capture_output=True, text=True, check=True, timeout=600
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    # the walk really saw the package: the CLI, the attacks and every stage are among the names
    for expected in ("miaudit.cli", "miaudit.attacks.lira", "miaudit.pipeline.run", *OPTIONAL_MODULES):
        assert expected in report["names"]


def test_cli_module_does_not_import_click() -> None:
    """typer vendors click; `click` is not a dependency, so the CLI must not need it."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'click' or name.startswith('click.'):\n"
        "            raise ImportError('click is not a dependency')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import miaudit.cli\n"
        "raise SystemExit(miaudit.cli.main(['--help']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Usage: miaudit" in out.stdout


def test_optional_modules_exist() -> None:
    """The skip list names real modules (a renamed module would otherwise be skipped silently)."""
    for mod in OPTIONAL_MODULES:
        assert importlib.util.find_spec(mod) is not None, mod
    assert miaudit.__name__ == "miaudit"
