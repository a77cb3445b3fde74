"""Contracts that hold for every registry entry and for the generated documentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miaudit.attacks import ATTACKS, NotApplicable, make_input
from miaudit.config_reference import reference_markdown
from miaudit.data import DATASETS
from miaudit.defences import DEFENCES
from miaudit.models import MODELS
from miaudit.training.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_in_docs_is_the_generated_one():
    """docs/configuration.md is `miaudit config --reference`: regenerate it after changing a config field."""
    on_disk = (ROOT / "docs" / "configuration.md").read_text()
    assert on_disk == reference_markdown(), "docs/configuration.md is stale: run `miaudit config --reference > docs/configuration.md`"


@pytest.mark.parametrize("registry", [ATTACKS, DATASETS, MODELS, RECIPES, DEFENCES], ids=lambda r: r.kind)
def test_every_registry_entry_is_documented(registry):
    reference = reference_markdown()
    for name, spec in registry.items():
        assert spec.description and len(spec.description) > 10, name
        assert f"### `{name}`" in reference, name
        params = getattr(spec, "params", None)
        if params is not None and params.model_fields:
            for field_name, field in params.model_fields.items():
                assert field.description, f"{registry.kind} {name}: option {field_name} has no description"


def test_importing_the_attacks_does_not_load_torch():
    """Attacks run on saved signals (`miaudit audit`) without the training stack: the array layer
    (attacks, metrics, numerics) loads neither torch nor matplotlib nor any pipeline module."""
    banned = ["torch", "matplotlib", "miaudit.signals", "miaudit.data", "miaudit.models", "miaudit.training",
              "miaudit.report", "miaudit.vulnerability", "miaudit.pipeline"]
    code = f"import sys, miaudit.attacks, miaudit.metrics, miaudit.numerics; print([m for m in {banned!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.filterwarnings("error::miaudit.errors.NonFiniteScoresWarning")
@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_meets_the_signature_contract(name, rng):
    """(N,) finite float64, deterministic for a seed, and blind to the target's membership. A NaN or
    inf score is an error here (``AttackSpec.run`` would map it to an extreme and warn in a run)."""
    m, n, c, p = 6, 120, 4, 60
    in_mask = np.zeros((m, n), bool)
    for j in range(n):
        in_mask[rng.permutation(m)[: m // 2], j] = True
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, 2, n, c)).astype(np.float32)
    logits[:, :, np.arange(n), labels] += 1.5 * in_mask[:, None, :]
    pop = rng.normal(size=(m, 2, p, c)).astype(np.float32)
    pop_labels = rng.integers(0, c, p)
    kw = dict(population_logits=pop, population_labels=pop_labels, is_image=True, seed=5,
              features=rng.normal(size=(n, 3)), population_features=rng.normal(size=(p, 3)))  # qmia's inputs
    spec = ATTACKS.get(name)
    try:
        scores = spec(make_input(logits, in_mask, labels, 0, **kw))
    except NotApplicable:
        pytest.skip(f"{name} does not apply to this pool")
    assert scores.shape == (n,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    again = spec(make_input(logits.copy(), in_mask, labels, 0, **kw))
    np.testing.assert_array_equal(scores, again)
    # the target's own membership row is never read: flipping it changes nothing
    flipped = in_mask.copy()
    flipped[0] = ~flipped[0]
    np.testing.assert_array_equal(scores, spec(make_input(logits.copy(), flipped, labels, 0, **kw)))


#: import-linter's command in this interpreter's environment (not another one's on PATH)
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.mark.skipif(not LINT_IMPORTS.is_file(), reason="import-linter not installed here (the `lint` extra)")
def test_the_import_layers_of_docs_architecture_hold():
    """pyproject's [tool.importlinter] contracts (the layers of docs/architecture.md, the pipeline's stage
    order, no torch in the array layer, no cycles) hold, function-local imports included."""
    out = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout

