"""The factory call behind a family object: recorded once for every registry
factory, replayed to rebuild the model (pickling, ``bayesmix.load``,
``bayesmix.predict_classes``).

``record_calls(REGISTRY, globals())`` (in ``families/__init__.py``) wraps each
registry factory so that the object it returns carries ``fam.call``, a
``FactoryCall``: the registry name, the data as given (a copy of a DataFrame)
and every other argument with its default filled in. A family added to the
registry gets this with no change to its module. The wrapper also replaces the
factory in its own module (so the module's ``example()`` and
``bayesmix.families.<module>.<factory>`` record too) and every module-level name
bound to it in the namespace given (``bayesmix.families.lca`` and what
``bayesmix/__init__.py`` re-exports from there).

Replaying is ``factory(data, **kwargs)``, which repeats every validation of the
original call, then, when the object's spec was changed afterwards
(``FamilyModel.with_spec``: the integration rule refined by ``fit_ml``), the
family's own ``_rebuild`` with that spec (default priors, as ``with_spec``).
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from dataclasses import dataclass, field

import pandas as pd

from bayesmix.exceptions import BayesmixWarning, PersistenceError

_MARK = "__bayesmix_factory__"
#: name -> recording factory; filled by ``record_calls`` (the package's ``REGISTRY``)
REGISTRY: dict = {}


@dataclass(frozen=True, eq=False)
class FactoryCall:
    """``REGISTRY[family](data, **kwargs)``: how a family object was made."""

    family: str
    data: object = field(repr=False)
    kwargs: dict = field(default_factory=dict)

    def replay(self, data=None, spec=None, quiet: bool = True):
        """The family object of this call on ``data`` (default: the recorded data),
        with ``spec`` when given and different from the factory's. ``quiet``
        silences the data warnings (dropped rows, inferred item kinds) already
        shown by the original call."""
        if self.family not in REGISTRY:
            raise PersistenceError(f"family: got {self.family!r}, which this bayesmix does not register "
                                   f"(it has {sorted(REGISTRY)}); use the bayesmix version that made the fit.")
        data = self.data if data is None else data
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", BayesmixWarning)
            fam = REGISTRY[self.family](data, **self.kwargs)
        call = fam.call
        if spec is not None and not same_spec(fam.spec, spec):
            fam = fam._rebuild(spec)  # the spec with_spec made (default priors, as there)
            fam.call = call
        return fam


def same_spec(a, b) -> bool:
    """Whether two specs are equal (False when they cannot be compared)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # a spec holding arrays
        return False


def _wrap(name: str, factory):
    sig = inspect.signature(factory)
    params = list(sig.parameters.values())
    replayable = bool(params) and not any(p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) for p in params[1:])

    @functools.wraps(factory)
    def recorded(*args, **kwargs):
        fam = factory(*args, **kwargs)
        if replayable and hasattr(fam, "call"):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            data = arguments.pop(params[0].name)
            for p in params:  # **kwargs of a factory: passed flat on replay
                if p.kind is p.VAR_KEYWORD:
                    arguments.update(arguments.pop(p.name, {}))
            # a copy: the fit must not change when the user edits the frame afterwards
            data = data.copy() if isinstance(data, pd.DataFrame) else data
            fam.call = FactoryCall(name, data, arguments)
        return fam

    setattr(recorded, _MARK, name)
    module = sys.modules.get(factory.__module__)
    if module is not None and getattr(module, factory.__name__, None) is factory:
        setattr(module, factory.__name__, recorded)
    return recorded


def record_calls(registry: dict, namespace: dict) -> dict:
    """The registry with every factory wrapped to record its call; names in
    ``namespace`` bound to an unwrapped factory are rebound to the wrapped one."""
    wrapped = {name: f if getattr(f, _MARK, None) else _wrap(name, f) for name, f in registry.items()}
    originals = {id(f): wrapped[name] for name, f in registry.items()}
    for key, value in list(namespace.items()):
        if id(value) in originals and callable(value):
            namespace[key] = originals[id(value)]
    REGISTRY.update(wrapped)
    return wrapped


def no_call_error(fam, what: str) -> PersistenceError:
    name = fam.family or type(fam).__name__
    return PersistenceError(
        f"{what}: this {name} model has no recorded factory call (it was built with {type(fam).__name__}.build "
        "or another path that bypasses bayesmix's factories), so it cannot be rebuilt. Fix: build it with the "
        f"factory (bayesmix.{name}(data, ...) or bayesmix.REGISTRY[{name!r}](data, ...)), fit it again, and keep "
        "the fit with bayesmix.save(res, path) / bayesmix.load(path, data=df) (or pickle the new objects).")


def unpickle_family(call: FactoryCall, spec):
    """The inverse of ``FamilyModel.__reduce__``: a fresh model (empty cache)."""
    return call.replay(spec=spec)
