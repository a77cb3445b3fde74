"""Provenance: the versions and machine facts a run records."""

from __future__ import annotations

import platform
from importlib import metadata

import numpy as np

from miaudit.provenance import PACKAGES, machine, package_versions


def test_package_versions_are_the_installed_ones():
    v = package_versions()
    assert list(v) == ["python", *PACKAGES]
    assert v["python"] == platform.python_version() and v["numpy"] == np.__version__
    assert v["torch"] == metadata.version("torch")


def test_a_missing_package_says_so(monkeypatch):
    monkeypatch.setattr("miaudit.provenance.PACKAGES", ("numpy", "no-such-package-xyz"))
    assert package_versions()["no-such-package-xyz"] == "not installed"


def test_machine_facts_are_strings():
    m = machine()
    assert set(m) == {"platform", "processor", "cpus", "argv"} and all(isinstance(s, str) for s in m.values())
