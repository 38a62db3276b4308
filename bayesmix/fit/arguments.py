"""Checks of the arguments of ``fit_ml`` and ``sample``, before any compilation.

``fit_ml``/``sample`` call ``check_fit_ml``/``check_sample`` first, so that a
wrong argument (a DataFrame or an ``MLResult`` where the model goes, a start
from another model, a seed that is a string) gets a ``SpecificationError``
naming the argument, the value and the fix, instead of a PyTensor or NumPy
error from deep inside the fit.

fit/ may not import bayesmix.families (ARCHITECTURE.md), so a model is
recognised by what fit/ uses of it: ``FittableModel`` is a runtime-checkable
``Protocol`` listing the attributes and hooks of ``families.base.FamilyModel``
that fit/ calls (``isinstance`` looks them up statically: nothing is evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from bayesmix.checks import check_bool, check_int, check_positive, check_seed
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.results import MLResult

SE_CHOICES = ("mlr", "ml")
ADAPTATIONS = ("diag", "draw_diag", "low_rank", "flow")  # nutpie.sample's choices


@runtime_checkable
class FittableModel(Protocol):
    """What fit/ uses of a family object (declared in ``families.base.FamilyModel``)."""

    model: object
    data: object
    spec: object
    free: list
    cache: dict

    def start_point(self, rng): ...

    def bounds(self, packing): ...

    def labels(self, names): ...

    def value_vars(self): ...

    def loglik_graph(self): ...

    def with_spec(self, **changes): ...


def _model_fix(model) -> str:
    if isinstance(model, MLResult):
        return "an MLResult is a fit, not a model: pass res.model (and to sample, ml=res)"
    kind = type(model)
    if kind.__module__.split(".")[0] == "pymc":
        return ("give the bayesmix object returned by the family factory (e.g. m = bm.lca(...)), "
                "not its PyMC model m.model")
    if kind.__name__ == "DataFrame":
        return "build a model from the data first, e.g. bm.fit_ml(bm.lca(df, items, n_classes=2))"
    return "give a model built by a bayesmix family, e.g. bm.lca(df, items, n_classes=2)"


def check_model(model) -> None:
    """``model`` must be a family object (see ``FittableModel``)."""
    if not isinstance(model, FittableModel):
        raise SpecificationError(f"model: got {type(model).__name__}; {_model_fix(model)}.")


def _shapes(model) -> dict[str, tuple[int, ...]]:
    """Shapes of the free parameters, from their dims (as ``Compiled.packing``)."""
    coords = model.model.coords
    return {p.name: tuple(len(coords[d]) for d in p.dims) for p in model.free}


def check_start(model, start, argname: str = "start") -> dict | None:
    """``start`` as a dict of raw free values with the model's shapes: a dict with
    one entry per free parameter, the ``MLResult`` of a fit of a model with the
    same parameters, or a flat vector of the right length (the packing order,
    ``model.free_names``). None stays None."""
    if start is None:
        return None
    shapes = _shapes(model)
    sizes = {n: int(np.prod(s)) for n, s in shapes.items()}
    total = sum(sizes.values())
    if isinstance(start, MLResult):
        start = start.point
    elif isinstance(start, (np.ndarray, list, tuple)):
        flat = np.asarray(start, dtype=object)
        if flat.ndim != 1 or flat.size != total:
            raise SpecificationError(
                f"{argname}: got an array of shape {flat.shape}; a flat start needs {total} values (the free "
                f"parameters {list(shapes)} raveled in that order). Fix: give a dict name -> values instead.")
        start = dict(zip(shapes, np.split(flat, np.cumsum(list(sizes.values()))[:-1])))
    elif not isinstance(start, Mapping):
        raise SpecificationError(
            f"{argname}: got {type(start).__name__}; give a dict of raw free values (e.g. res.point), the "
            f"MLResult of a fit, or a flat array of {total} values.")
    missing = [n for n in shapes if n not in start]
    extra = [n for n in start if n not in shapes]
    if missing or extra:
        what = "; ".join(s for s in (f"missing {missing}" if missing else "",
                                     f"not parameters of this model {extra}" if extra else "") if s)
        raise SpecificationError(
            f"{argname}: the start does not match this model's free parameters ({what}); it needs exactly "
            f"{list(shapes)}. Fix: start from a fit of the same model (res.point), or leave start out.")
    out = {}
    for name, shape in shapes.items():
        try:
            value = np.asarray(start[name], dtype=float)
        except (TypeError, ValueError):
            raise SpecificationError(f"{argname}[{name!r}]: got {start[name]!r}; give numbers.") from None
        if value.size != sizes[name]:
            raise SpecificationError(
                f"{argname}[{name!r}]: got shape {value.shape}; this model needs shape {shape} "
                f"({sizes[name]} values). Fix: start from a fit of the same model.")
        if not np.all(np.isfinite(value)):
            raise SpecificationError(f"{argname}[{name!r}]: holds non-finite values; give finite raw values.")
        out[name] = value.reshape(shape)
    return out


def check_fit_ml(model, *, start, seed, se, n_starts, n_final, short_iter, max_iter, newton_steps, gtol,
                 ll_tol, progress, check_integration) -> dict | None:
    """All arguments of ``fit_ml``; returns ``start`` as a dict (or None)."""
    check_model(model)
    if se not in SE_CHOICES:
        raise SpecificationError(f"se: got {se!r}; valid choices are 'mlr', 'ml'.")
    for name, value, low in (("n_starts", n_starts, 0), ("n_final", n_final, 1), ("short_iter", short_iter, 1),
                             ("max_iter", max_iter, 1), ("newton_steps", newton_steps, 0)):
        check_int(name, value, low)
    check_positive("gtol", gtol)
    check_positive("ll_tol", ll_tol)
    check_bool("progress", progress)
    check_bool("check_integration", check_integration)
    check_seed("seed", seed)
    if n_starts == 0 and start is None:
        raise SpecificationError("n_starts: got 0 without a start; give n_starts >= 1 or start=<dict or MLResult>.")
    return check_start(model, start)


def check_sample(model, *, ml, draws, tune, chains, seed, posterior_predictive, ppc_draws, progress,
                 adaptation) -> None:
    """All arguments of ``sample`` that bayesmix reads (the rest go to nutpie)."""
    check_model(model)
    if ml is not None and not isinstance(ml, MLResult):
        raise SpecificationError(f"ml: got {type(ml).__name__}; give the MLResult of bm.fit_ml(model), or None "
                                 "to fit it here.")
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains), ("ppc_draws", ppc_draws)):
        check_int(name, value, 1)
    # nutpie takes an integer seed (or None); a Generator cannot seed the chains
    check_seed("seed", seed, generator=False)
    check_bool("posterior_predictive", posterior_predictive)
    check_bool("progress", progress)
    if adaptation not in ADAPTATIONS:
        raise SpecificationError(f"adaptation: got {adaptation!r}; valid choices are {list(ADAPTATIONS)}.")
