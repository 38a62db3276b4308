"""Models built (and fitted) in a loop are released: nothing global keeps them alive.

Before the fix every ``pm.CustomDist`` registered a new ``CustomDistRV`` subclass (two
per model) in PyMC's global dispatch tables, whose logp closure held the family object,
its ``pm.Model`` and its compiled functions (+3.9 MiB per LCA build and fit). This test
is deterministic (object counts, no RSS): the dispatch tables must not grow, no
``CustomDistRV`` subclass may be created per build, and every model must be collectable.
``benchmarks/bench_memory.py`` measures the RSS."""

import gc
import weakref

import numpy as np
import pytest

from pymc.distributions.custom import CustomDistRV
from pymc.distributions.distribution import _support_point
from pymc.logprob.abstract import _logcdf, _logprob

import bayesmix as bm
from bayesmix.families import example
from bayesmix.families.base import LoglikRV

N_BUILDS = 10
pytestmark = pytest.mark.filterwarnings("ignore::bayesmix.exceptions.BayesmixWarning")


def _dispatch_sizes():
    return len(_logprob.registry), len(_logcdf.registry), len(_support_point.registry)


def _is_custom_dist_class(o) -> bool:
    try:
        return isinstance(o, type) and issubclass(o, CustomDistRV)
    except (TypeError, ReferenceError):  # a GenericAlias passes isinstance(o, type); a dead weakproxy
        return False


def _custom_dist_classes():
    return sum(1 for o in gc.get_objects() if _is_custom_dist_class(o))


def test_building_and_fitting_in_a_loop_releases_every_model():
    fitted = example("lca")
    bm.fit_ml(fitted, n_starts=1, n_final=1, seed=0, progress=False)  # compiled functions in fitted.cache
    del fitted
    gc.collect()
    sizes, classes = _dispatch_sizes(), _custom_dist_classes()
    refs = []
    for i in range(N_BUILDS):
        m = example("lca", two_level=bool(i % 2))
        assert isinstance(m.model["loglik"].owner.op, LoglikRV)
        if i == 0:
            bm.fit_ml(m, n_starts=1, n_final=1, seed=0, progress=False)
        refs.append((weakref.ref(m), weakref.ref(m.model)))
        del m
    gc.collect()
    assert _dispatch_sizes() == sizes
    assert _custom_dist_classes() == classes
    alive = [i for i, (fam, model) in enumerate(refs) if fam() is not None or model() is not None]
    assert alive == []


def test_a_live_model_keeps_its_likelihood():
    """The Op holds the logp weakly and the pm.Model strongly, so a pm.Model whose family
    object is gone still evaluates its likelihood. At the all-zero point every class
    answers each binary item with probability 1/2, so LL = 48 persons x 4 items x log(1/2)."""
    model = example("lca").model  # the family object is dropped at once
    gc.collect()
    point = {k: np.zeros_like(v) for k, v in model.initial_point().items()}
    ll = model.compile_logp(vars=[model["loglik"]], sum=True, mode="FAST_COMPILE")(point)
    assert ll == pytest.approx(48 * 4 * np.log(0.5), rel=1e-12)
