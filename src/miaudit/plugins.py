"""Your own datasets, models, attacks and defences, loaded by name from a config's ``plugins``.

A plugin is a Python module that registers entries when imported, with the public decorators
``miaudit.data.register_dataset``, ``miaudit.models.register_model``,
``miaudit.attacks.register_attack``, ``miaudit.training.recipes.register_recipe`` or
``miaudit.defences.register_defence``. A config names it as a dotted module (``mylab.models``,
importable from the Python path) or a ``.py`` file::

    plugins: [./my_models.py]
    model: {name: my-net}

Plugins load before the rest of the config is validated, so the names they register are known
to it; worker processes (``runtime.workers``, Ray) load them again from the resolved config,
which holds absolute paths. Importing a plugin runs its code: name only files you trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from miaudit.errors import ConfigError


def is_file_plugin(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name


def resolve_plugin_paths(plugins: Iterable[str], base: Path) -> list[str]:
    """File plugins made absolute, relative to ``base`` (the config file's directory); modules unchanged."""
    out = []
    for p in plugins:
        if isinstance(p, str) and is_file_plugin(p) and not Path(p).expanduser().is_absolute():
            p = str((base / Path(p).expanduser()).resolve())
        out.append(p)
    return out


_RUN_DIR_PLUGINS = {"allowed": False}


@contextlib.contextmanager
def allow_run_dir_plugins(allow: bool = True) -> Iterator[None]:
    """Within the block, plugins named by a run directory's config may be imported (``--allow-plugins``)."""
    before = _RUN_DIR_PLUGINS["allowed"]
    _RUN_DIR_PLUGINS["allowed"] = allow
    try:
        yield
    finally:
        _RUN_DIR_PLUGINS["allowed"] = before


def check_run_dir_plugins(config_path: Path, plugins: object) -> None:
    """Refuse to import the plugins a run directory's config names unless the user asked for it.

    A run folder someone sends you would otherwise run its code when you analyse it.
    """
    names = plugins if isinstance(plugins, list) else [plugins] if plugins else []
    if names and not _RUN_DIR_PLUGINS["allowed"]:
        raise ConfigError(
            f"{config_path} names plugin(s) {', '.join(map(str, names))}; miaudit does not import code named by "
            "a run directory unless asked: read the plugin(s), then rerun with --allow-plugins"
        )


def load_plugins(plugins: Iterable[str]) -> None:
    """Import every plugin once per process; any failure is a one-line ``ConfigError``."""
    for name in plugins:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"plugins: expected a module name or a .py path, got {name!r}")
        try:
            if is_file_plugin(name):
                _load_file(Path(name).expanduser())
            else:
                importlib.import_module(name)
        except ConfigError:
            raise
        except SystemExit as exc:  # sys.exit() while importing would end miaudit silently with its code
            raise ConfigError(f"plugins: {name}: called sys.exit({exc.code!r}) while loading") from None
        except FileNotFoundError:
            raise ConfigError(f"plugins: {name}: no such file") from None
        except ModuleNotFoundError as exc:
            raise ConfigError(f"plugins: cannot import {name!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001  the plugin's own code failed: say where, in one line
            raise ConfigError(f"plugins: {name}: {type(exc).__name__}: {exc}") from None


def _load_file(path: Path) -> None:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    # one module per file, whatever its stem: a file loaded twice registers nothing twice
    module_name = "miaudit_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugins: {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
