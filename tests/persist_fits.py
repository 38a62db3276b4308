"""One small ML fit per registered family, shared by test_persist.py and
test_predict.py (made once per test process: compilation dominates)."""

from __future__ import annotations

import functools
import warnings

import bayesmix as bm
from bayesmix import families


def example_of(name: str):
    """(family object, two_level) of the family's single-level example, else its
    two-level one."""
    for two_level in (False, True):
        fam = families.example(name, two_level)
        if fam is not None:
            return fam, two_level
    raise AssertionError(f"{name} has no example")


def fit_of(name: str, two_level: bool | None = None):
    """``(fam, res)``: ``fit_ml`` with 2 starts of the family's example (the
    single-level one unless ``two_level``; the two-level one for a family with
    no single-level example)."""
    return _fit(name, example_of(name)[1] if two_level is None else two_level)


@functools.cache
def _fit(name: str, two_level: bool):
    fam = families.example(name, two_level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=2, n_final=1, seed=0, progress=False, check_integration=False)
    return fam, res
