"""PyMC's own entry points on ``model.model`` (issue 10, part 7): the graph draws,
prior and posterior predictive sampling draw the data node ``y`` with the family's
simulator, and the data node adds nothing to the log density."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import special

import bayesmix as bm
from bayesmix import dims
from bayesmix.fit.compiled import compiled

CASES = [(name, two) for name in sorted(bm.REGISTRY) for two in (False, True)]


def _example(name, two):
    fam = bm.families.example(name, two)
    if fam is None:
        pytest.skip(f"{name} has no {'two-level' if two else 'single-level'} example")
    return fam


def _posterior(fam, theta, n_draws=2):
    """A fake posterior (one chain) at a fixed raw point."""
    point = compiled(fam).packing.unpack(theta)
    data = {}
    for name in fam.free_names:
        value = np.broadcast_to(point[name], (1, n_draws) + point[name].shape)
        data[name] = ((dims.CHAIN, dims.DRAW) + fam.model.named_vars_to_dims.get(name, ()), value.copy())
    coords = {d: list(fam.model.coords[d]) for n in fam.free_names for d in fam.model.named_vars_to_dims.get(n, ())}
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)})


@pytest.mark.parametrize("name,two", CASES)
def test_graph_and_forward_draws(name, two):
    fam = _example(name, two)
    assert [rv.name for rv in fam.model.observed_RVs] == ["loglik", "y"]
    graph = pm.model_to_graphviz(fam.model)
    assert "loglik" in graph.source and "y" in graph.source
    with fam.model:
        prior = pm.sample_prior_predictive(draws=2, random_seed=1, compile_kwargs={"mode": "FAST_COMPILE"})
    y = prior["prior_predictive"]["y"]
    assert y.dims == (dims.CHAIN, dims.DRAW, dims.PERSON, dims.OBSERVED_ITEM)
    assert y.shape[2:] == fam.data.y.shape
    # the missing cells of the data stay missing in every replicate
    np.testing.assert_array_equal(np.isnan(y.to_numpy()), np.broadcast_to(~fam.data.observed, y.shape))
    obs = prior["observed_data"]["y"].to_numpy()
    np.testing.assert_array_equal(obs[fam.data.observed], fam.data.y[fam.data.observed])


def test_data_node_adds_no_log_density():
    fam = _example("lca", False)
    point = fam.model.initial_point()
    assert float(fam.model.logp(vars=[fam.model["y"]]).eval()) == 0.0
    full = float(fam.model.compile_logp(mode="FAST_COMPILE")(point))
    parts = float(fam.model.compile_logp(vars=[fam.model["loglik"], *fam.model.free_RVs], mode="FAST_COMPILE")(point))
    assert full == pytest.approx(parts, abs=1e-10)


def _missing_lca():
    rng = np.random.default_rng(4)
    n = 400
    c = rng.random(n) < 0.35
    p = np.where(c[:, None], [0.85, 0.8, 0.9], [0.2, 0.15, 0.3])
    y = (rng.random((n, 3)) < p).astype(float)
    y[rng.random((n, 3)) < 0.1] = np.nan
    return bm.lca(pd.DataFrame(y, columns=["a", "b", "c"]), ["a", "b", "c"], 2)


def test_posterior_predictive_is_the_lca_distribution():
    """pm.sample_posterior_predictive at a fixed point: endorsement rates match the
    LCA's marginal P(y_i = 1) = sum_c pi_c expit(-tau_ic) computed here in numpy
    (Monte Carlo tolerance: 4 sd over 300 draws x 400 persons), missing cells stay NaN."""
    fam = _missing_lca()
    theta = compiled(fam).packing.pack({"tau": np.array([[-1.7, -1.4, -2.2], [1.4, 1.7, 0.85]]),
                                        "alpha": np.array([-0.6])})
    dt = _posterior(fam, theta, n_draws=300)
    with fam.model:
        # the simulator is Python: a JAX default mode cannot compile it (README, "Plain PyMC")
        ppc = pm.sample_posterior_predictive(dt, var_names=["y"], random_seed=3, progressbar=False,
                                             compile_kwargs={"mode": "FAST_COMPILE"})
    y = ppc["posterior_predictive"]["y"].to_numpy()[0]  # (draw, person, item)
    assert np.isnan(y).sum() == 300 * (~fam.data.observed).sum()
    share = special.softmax([-0.6, 0.0])
    tau = np.array([[-1.7, -1.4, -2.2], [1.4, 1.7, 0.85]])
    expected = share @ special.expit(-tau)
    observed = fam.data.observed
    rates = np.array([np.nanmean(y[:, observed[:, i], i]) for i in range(3)])
    n_cells = 300 * observed.sum(axis=0)
    # persons are independent given the point, so the binomial sd is an upper bound
    assert np.all(np.abs(rates - expected) < 4 * np.sqrt(expected * (1 - expected) / n_cells))
    assert set(np.unique(y[~np.isnan(y)])) == {0.0, 1.0}


def test_pymc_log_likelihood_matches_bayesmix():
    """pm.compute_log_likelihood on loglik = the engine's per-unit log-likelihood."""
    fam = _missing_lca()
    comp = compiled(fam)
    theta = comp.packing.pack(fam.start_point(np.random.default_rng(2)))
    dt = _posterior(fam, theta)
    with fam.model:
        ll = pm.compute_log_likelihood(dt, var_names=["loglik"], extend_inferencedata=False, progressbar=False)
    np.testing.assert_allclose(ll["loglik"].to_numpy()[0, 0], comp.unit_loglik(theta), rtol=1e-10, atol=1e-10)
