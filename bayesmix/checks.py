"""Argument checks shared by every layer (families/, fit/, simstudy).

Neutral ground: fit/ may not import families/, so the checks both use live here.
Each raises a ``SpecificationError`` naming the argument, the value received and
what to give instead.
"""

from __future__ import annotations

import numbers

import numpy as np

from bayesmix.exceptions import SpecificationError


def check_int(name: str, value, low: int = 1, hint: str = "") -> int:
    """An integer argument >= ``low``, or a ``SpecificationError`` naming it
    (``True``/``False`` are refused: ``n_starts=True`` is a slip, not a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecificationError(f"{name}: got {value!r}; give an integer >= {low}{hint}.")
    return int(value)


def check_positive(name: str, value) -> float:
    """A finite number > 0 (a tolerance), or a ``SpecificationError`` naming it."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not np.isfinite(value) or value <= 0):
        raise SpecificationError(f"{name}: got {value!r}; give a finite number > 0, e.g. 1e-5.")
    return float(value)


def check_bool(name: str, value) -> bool:
    """``True`` or ``False`` (a string such as ``"no"`` would count as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise SpecificationError(f"{name}: got {value!r}; give True or False.")
    return bool(value)


def check_seed(name: str, value, generator: bool = True):
    """A seed: None, an integer >= 0 or (with ``generator``) a ``numpy.random.Generator``,
    as ``numpy.random.default_rng`` takes them; else a ``SpecificationError``."""
    if value is None or (generator and isinstance(value, np.random.Generator)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        what = "None, an integer >= 0 or a numpy.random.Generator" if generator else "None or an integer >= 0"
        raise SpecificationError(f"{name}: got {value!r}; give {what}, e.g. {name}=0.")
    return int(value)
