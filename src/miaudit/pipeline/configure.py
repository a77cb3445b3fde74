"""Loading a run configuration: the YAML file, ``--set`` overrides, plugins, and validation of the
schemas (``miaudit.config``) against the registries, gathering every problem into one line.

The schemas ask the :class:`RegistryResolver` (passed in pydantic's validation context) for what
they cannot know themselves: the registered datasets, models, recipes, defences and attacks and
their ``params`` (filled with their defaults), the rows of a split index file, and the sections
the training recipes replace. Plugins named in the config are imported first, so the names they
register are known when the sections are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo

from miaudit._registry import Registry
from miaudit._validation import format_validation_error
from miaudit.attacks import ATTACKS
from miaudit.config import RESOLVER, RunConfig, apply_overrides, check_depth
from miaudit.data import DATASETS
from miaudit.data.splits import read_split_indices
from miaudit.defences import DEFENCES
from miaudit.errors import ConfigError
from miaudit.models import MODELS
from miaudit.pipeline.data import resolve_target_paths
from miaudit.plugins import check_run_dir_plugins, load_plugins, resolve_plugin_paths
from miaudit.training.recipes import RECIPES, resolve_config


class RegistryResolver:
    """The registries and files behind a config's names (``config.Resolver``)."""

    registries: dict[str, Registry[Any]] = {"dataset": DATASETS, "model": MODELS, "recipe": RECIPES, "defence": DEFENCES}

    def params(self, kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        registry = self.registries[kind]
        if name not in registry:
            raise ValueError(registry.unknown_message(name, where="name"))
        spec = registry.get(name)
        try:
            return spec.params.model_validate(params or {}).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, prefix="params", model=spec.params)) from None

    def check_attacks(self, attacks: list[str] | None, attack_params: dict[str, dict[str, Any]]) -> None:
        problems = []
        for i, name in enumerate(attacks or []):
            if name not in ATTACKS:
                problems.append(ATTACKS.unknown_message(name, where=f"attacks[{i}]"))
        for name, params in attack_params.items():
            if name not in ATTACKS:
                problems.append(ATTACKS.unknown_message(name, where="attack_params"))
                continue
            try:
                ATTACKS.get(name).params.model_validate(params)
            except ValidationError as exc:
                problems.append(format_validation_error(exc, prefix=f"attack_params.{name}"))
        if problems:
            raise ValueError("; ".join(problems))

    def split_rows(self, path: Path) -> dict[str, Any]:
        return read_split_indices(path, key="indices")

    def apply_recipes(self, config: RunConfig, info: ValidationInfo) -> dict[str, BaseModel]:
        return resolve_config(config, context=info.context)


def validation_context() -> dict[str, Any]:
    """The context every ``*.model_validate`` of a config section needs to check names (``config.RESOLVER``)."""
    return {RESOLVER: RegistryResolver()}


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict | set):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, not a {type(key).__name__}", key_node.start_mark)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one section", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def read_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506  (a SafeLoader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (a config is a few levels of sections)") from None
    check_depth(raw, str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, train, ...)")
    return raw


def _with_sections(raw: Any) -> Any:
    """``raw`` with every absent section that is a schema given as ``{}``: pydantic builds an absent
    section from its default without the validation context, so its names would go unresolved."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for name, field in RunConfig.model_fields.items():
        if name not in out and field.default_factory is not None and isinstance(field.annotation, type) \
                and issubclass(field.annotation, BaseModel):
            out[name] = {}
    return out


def validate_config(raw: dict[str, Any], source: str | None = "config") -> RunConfig:
    """A validated, resolved ``RunConfig`` from a raw mapping: plugins imported, names checked, recipes
    applied. Every problem in one ``ConfigError`` line, prefixed by ``source`` (None: no prefix)."""
    if isinstance(raw, dict) and raw.get("plugins"):
        # before any section: the names the plugins register must be known when data/model are checked
        plugins = raw["plugins"]
        load_plugins(plugins if isinstance(plugins, list) else [plugins])
    try:
        return RunConfig.model_validate(_with_sections(raw), context=validation_context())
    except ValidationError as exc:
        msg = format_validation_error(exc, model=RunConfig)
        raise ConfigError(f"{source}: {msg}" if source else msg) from None


def load_config(path: Path | str | None = None, overrides: list[str] | None = None, *, from_run_dir: bool = False
                ) -> RunConfig:
    """Defaults, then the YAML file (if any), then ``--set`` overrides; validated as a whole.

    ``from_run_dir``: ``path`` is a run directory's config, whose plugins are imported only when allowed
    (``miaudit.plugins.allow_run_dir_plugins``).
    """
    raw = read_yaml(path) if path is not None else {}
    if from_run_dir and path is not None:
        check_run_dir_plugins(Path(path), raw.get("plugins"))
    raw = apply_overrides(raw, list(overrides or []))
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    if isinstance(raw.get("plugins"), list):
        # file plugins relative to the config file (or the working directory), stored absolute
        raw["plugins"] = resolve_plugin_paths(raw["plugins"], base)
    splits = raw["data"].get("splits") if isinstance(raw.get("data"), dict) else None
    if isinstance(splits, dict) and isinstance(splits.get("indices"), str):  # likewise the split indices
        splits["indices"] = str(base / Path(splits["indices"]).expanduser())
    if path is not None and isinstance(raw.get("target"), dict):
        resolve_target_paths(raw, Path(path).resolve().parent)  # relative to the config file, as plugins
    return validate_config(raw, source=str(path) if path is not None else "config")
