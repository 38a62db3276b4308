"""Bayesian fitting: label-switching repair on constructed draws (sampler
mocked), and one small real nutpie run for the plumbing (DataTree groups,
pointwise log-likelihood, LOO, ML-vs-Bayes table)."""

import json
import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.fit.bayes import relabel
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca

TAU3 = np.array([[-2.0, -1.5, -2.0, -1.0, -1.5, -2.0],
                 [0.0, 0.5, -0.5, 0.0, 0.3, 2.0],
                 [2.0, 1.5, 2.0, 2.5, 1.5, -0.5]])
ITEMS = [f"y{j}" for j in range(1, 7)]


@pytest.fixture(scope="module")
def three_class():
    df, _ = simulate_lca(TAU3, [0.3, 0.0], n_clusters=30, cluster_size=10, psi=[[0.5, 0.1], [0.1, 0.4]], seed=4)
    m = bm.lca(df, ITEMS, n_classes=3, cluster="cluster")
    res = bm.fit_ml(m, n_starts=4, n_final=2, seed=1, progress=False)
    return m, res


def _fake_posterior(m, res, n_chain=2, n_draw=30, seed=0):
    """Draws = ML point + small noise, as nutpie would return them."""
    comp = compiled(m)
    rng = np.random.default_rng(seed)
    theta = res.theta + 0.01 * rng.standard_normal((n_chain, n_draw, res.theta.size))
    free = comp.packing.unpack(theta)
    dets = [comp.deterministics(theta[c, d]) for c in range(n_chain) for d in range(n_draw)]
    data = {}
    for name, val in free.items():
        data[name] = ((("chain", "draw") + m.model.named_vars_to_dims.get(name, ())), val)
    for name in dets[0]:
        arr = np.stack([d[name] for d in dets]).reshape((n_chain, n_draw) + dets[0][name].shape)
        data[name] = ((("chain", "draw") + m.model.named_vars_to_dims.get(name, ())), arr)
    coords = {k: list(v) for k, v in m.model.coords.items()}
    coords.update(chain=np.arange(n_chain), draw=np.arange(n_draw))
    ds = xr.Dataset(data, coords={k: v for k, v in coords.items() if any(k in d[0] for d in data.values())})
    return xr.DataTree.from_dict({"posterior": ds}), free


def test_relabel_repairs_switched_draws(three_class):
    m, res = three_class
    dt, free = _fake_posterior(m, res)
    original = {n: dt["posterior"][n].to_numpy().copy() for n in ("tau", "alpha", "psi", "class_share")}
    # chain 1, draws 10-29 switch to another labelling (classes 1 and 3 swapped, then a 3-cycle)
    post = dt["posterior"]
    for sl, perm in ((slice(10, 20), np.array([2, 1, 0])), (slice(20, 30), np.array([1, 2, 0]))):
        moved = m.permute_classes({n: v[1, sl] for n, v in free.items()}, perm)
        comp = compiled(m)
        for n, v in moved.items():
            arr = post[n].to_numpy().copy()
            arr[1, sl] = v
            post[n] = post[n].copy(data=arr)
        for i, d in enumerate(range(sl.start, sl.stop)):
            flat = comp.packing.pack({n: v[i] for n, v in moved.items()})
            for n, val in comp.deterministics(flat).items():
                arr = post[n].to_numpy().copy()
                arr[1, d] = val
                post[n] = post[n].copy(data=arr)
    assert not np.allclose(post["tau"].to_numpy(), original["tau"])
    with pytest.warns(bm.LabelSwitchingWarning, match=r"20 of 60 draws"):
        report = relabel(m, dt, res)
    assert report["switched_draws_per_chain"] == [0, 20]
    assert sorted(report["permutations"].values()) == [10, 10]
    for name, val in original.items():
        np.testing.assert_allclose(dt["posterior"][name].to_numpy(), val, atol=1e-6, err_msg=name)


def test_no_switch_no_warning(three_class):
    m, res = three_class
    dt, _ = _fake_posterior(m, res, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.LabelSwitchingWarning)
        report = relabel(m, dt, res)
    assert report["switched_draws_per_chain"] == [0, 0]


@pytest.fixture(scope="module")
def nuts_run():
    tau = np.array([[-1.5, -1.0, -2.0, -0.5], [1.0, 1.5, 0.8, 2.0]])
    df, _ = simulate_lca(tau, [0.2], n_clusters=20, cluster_size=6, seed=8)
    m = bm.lca(df, ["y1", "y2", "y3", "y4"], n_classes=2, cluster="cluster")
    res = bm.fit_ml(m, n_starts=4, n_final=2, progress=False)
    dt = bm.sample(m, ml=res, draws=150, tune=150, chains=2, seed=2, progress=False,
                   posterior_predictive=True, ppc_draws=20)
    return m, res, dt


def test_sample_returns_complete_datatree(nuts_run):
    m, res, dt = nuts_run
    for group in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data"):
        assert group in dt.children, group
    ll = dt["log_likelihood"]["loglik"]
    assert ll.dims == ("chain", "draw", "cluster") and ll.shape == (2, 150, 20)
    # pointwise log-likelihood equals the compiled per-cluster likelihood at a draw
    comp = compiled(m)
    flat = np.concatenate([dt["posterior"][n].to_numpy()[1, 7].ravel() for n in m.free_names])
    np.testing.assert_allclose(ll.to_numpy()[1, 7], comp.unit_loglik(flat))
    assert dt["posterior_predictive"]["y"].shape[-2:] == (120, 4)
    assert set(np.unique(dt["posterior_predictive"]["y"].to_numpy())) <= {0.0, 1.0}
    assert "label_switching" in dt["posterior"].attrs
    json.loads(dt["posterior"].attrs["label_switching"])
    loo = az.loo(dt)
    assert np.isfinite(loo.elpd)


def test_compare_ml_bayes_table(nuts_run):
    m, res, dt = nuts_run
    table = bm.compare_ml_bayes(res, dt)
    assert {"ml_estimate", "ml_se", "post_mean", "post_sd", "r_hat", "ess_bulk", "z_diff"} <= set(table.columns)
    assert len(table) == len(res.params)
    alpha = table[table.parameter == "alpha"].iloc[0]
    assert alpha["post_mean"] == pytest.approx(float(dt["posterior"]["alpha"].mean()))
    assert alpha["ml_estimate"] == pytest.approx(float(res.point["alpha"][0]))
