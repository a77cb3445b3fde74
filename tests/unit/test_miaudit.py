"""The package's top level: heavy entry points load on first use, unknown names fail plainly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import miaudit


def test_lazy_entry_points_are_the_pipeline_functions():
    from miaudit.pipeline.audit_signals import audit_signals
    from miaudit.pipeline.run import run_audit
    from miaudit.signals.file import export_signals, load_signals_file

    assert miaudit.audit_signals is audit_signals and miaudit.run_audit is run_audit
    assert miaudit.export_signals is export_signals and miaudit.load_signals_file is load_signals_file
    assert set(miaudit._LAZY) <= set(miaudit.__all__)
    with pytest.raises(AttributeError, match="module 'miaudit' has no attribute 'nope'"):
        miaudit.nope  # noqa: B018


def test_importing_the_package_does_not_load_the_pipeline():
    code = "import sys, miaudit; print('miaudit.pipeline.run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
