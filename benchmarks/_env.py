"""Environment of a benchmark child process: its own compile caches (to time a
cold start) and no warnings on stderr."""

from __future__ import annotations

import os
from pathlib import Path


def child_env(compiledir: str | None) -> dict:
    env = dict(os.environ)
    if compiledir is not None:
        flag = f"base_compiledir={compiledir}"
        env["PYTENSOR_FLAGS"] = f"{env['PYTENSOR_FLAGS']},{flag}" if env.get("PYTENSOR_FLAGS") else flag
        # PyTensor 3 keeps its Numba cache under base_compiledir/numba; Numba's own
        # cache=True functions go to NUMBA_CACHE_DIR: isolate both.
        env["NUMBA_CACHE_DIR"] = str(Path(compiledir) / "numba_global")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env
