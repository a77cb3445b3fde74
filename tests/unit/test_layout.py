"""tests/unit mirrors the package: every module with logic has its test module at the mirror path.

``src/miaudit/<path>/<name>.py`` is tested by ``tests/unit/<path>/test_<name>.py`` (a leading
underscore dropped: ``_registry.py`` -> ``test_registry.py``); a package's ``__init__.py`` by
``tests/unit/<path>/test_<package>.py`` (``miaudit/__init__.py`` -> ``tests/unit/test_miaudit.py``).
"With logic" means a ``def`` or ``class`` at the module's top level. A module tested elsewhere
is named in ``TESTED_ELSEWHERE`` with its reason and the test files that cover it; a unit test
module that mirrors no module is named in ``NOT_A_MIRROR`` with its reason. Both lists are
checked in both directions, so they cannot go stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "miaudit"
UNIT = ROOT / "tests" / "unit"

#: module (relative to src/miaudit) -> (why it has no unit mirror, the test files that cover it)
TESTED_ELSEWHERE: dict[str, tuple[str, tuple[str, ...]]] = {
    "attacks/label_only.py": ("known-answer tests on fabricated pools", ("tests/known_answer/test_shokri_label_only.py",)),
    "attacks/lira.py": ("known-answer tests against the paper's formulas",
                        ("tests/known_answer/test_lira.py", "tests/known_answer/test_lira_refs.py")),
    "attacks/rmia.py": ("known-answer tests against the paper's formulas", ("tests/known_answer/test_rmia.py",)),
    "attacks/shokri.py": ("known-answer tests on fabricated pools", ("tests/known_answer/test_shokri_label_only.py",)),
    "attacks/threshold.py": ("known-answer tests by hand", ("tests/known_answer/test_threshold_attacks.py",)),
    "config_reference.py": ("its one job, docs/configuration.md generated from the schemas, is a repository contract",
                            ("tests/test_contracts.py",)),
    "pipeline/executors_ray.py": ("needs Ray (an optional extra) and worker processes that train",
                                  ("tests/integration/test_ray.py",)),
}

#: unit test module (relative to tests/unit) that mirrors no module -> why
NOT_A_MIRROR: dict[str, str] = {
    "test_imports.py": "every module imports in a fresh interpreter: about the whole package",
    "test_layout.py": "this file: about the test tree",
    "vulnerability/test_torch_free.py": "the pure vulnerability modules never import torch: about the subpackage",
}


def has_logic(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def mirror(rel: Path) -> Path:
    """The unit test module of ``rel`` (a path relative to src/miaudit), relative to tests/unit."""
    if rel.name == "__init__.py":
        return rel.parent / f"test_{rel.parent.name or 'miaudit'}.py"
    return rel.parent / f"test_{rel.stem.lstrip('_')}.py"


def modules() -> list[Path]:
    return sorted(p.relative_to(SRC) for p in SRC.rglob("*.py"))


def test_every_module_with_logic_has_its_unit_test_module():
    missing = [f"{rel} -> tests/unit/{mirror(rel)}" for rel in modules()
               if has_logic(SRC / rel) and str(rel) not in TESTED_ELSEWHERE and not (UNIT / mirror(rel)).is_file()]
    assert missing == [], ("write the mirror test module of each (or name the module in TESTED_ELSEWHERE with "
                           "its reason):\n  " + "\n  ".join(missing))


def test_tested_elsewhere_is_true_and_current():
    for name, (reason, files) in TESTED_ELSEWHERE.items():
        rel = Path(name)
        assert (SRC / rel).is_file() and has_logic(SRC / rel), f"{name}: no such module with logic; drop it"
        assert not (UNIT / mirror(rel)).is_file(), f"{name}: has its mirror now; drop it from TESTED_ELSEWHERE"
        assert reason and files, name
        for f in files:
            assert (ROOT / f).is_file(), f"{name}: {f} does not exist"


def test_every_unit_test_module_mirrors_a_module():
    mirrors = {mirror(rel) for rel in modules()}
    stray = [str(t.relative_to(UNIT)) for t in sorted(UNIT.rglob("test_*.py"))
             if t.relative_to(UNIT) not in mirrors and str(t.relative_to(UNIT)) not in NOT_A_MIRROR]
    assert stray == [], "move each to the mirror path of the module it tests (or name it in NOT_A_MIRROR):\n  " + (
        "\n  ".join(stray))
    for name, reason in NOT_A_MIRROR.items():
        assert (UNIT / name).is_file() and reason, f"{name}: no such test module; drop it from NOT_A_MIRROR"


def test_mirror_paths():
    assert mirror(Path("results.py")) == Path("test_results.py")
    assert mirror(Path("_registry.py")) == Path("test_registry.py")
    assert mirror(Path("pipeline/members.py")) == Path("pipeline/test_members.py")
    assert mirror(Path("signals/__init__.py")) == Path("signals/test_signals.py")
    assert mirror(Path("__init__.py")) == Path("test_miaudit.py")
