"""Import a script of models/ as a module (the scripts are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"


def load_script(name: str):
    """models/<name>.py, executed once per call as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
