"""What produced a run: package versions, Python, platform, thread count."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("miaudit", "torch", "numpy", "scipy", "scikit-learn", "pydantic", "opacus", "captum", "openTSNE", "safetensors")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    import os

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "argv": " ".join(sys.argv),
    }
