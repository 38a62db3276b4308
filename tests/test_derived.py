"""ICC of the class-logit random intercept (eq. 20) and the conditional class
probability curve (Figures 2-3)."""

import matplotlib

matplotlib.use("Agg")

import json

import numpy as np
import pytest
import xarray as xr
from scipy import special

import bayesmix as bm
from bayesmix.plots import class_probability_curve
from bayesmix.simulate import simulate_lca

C = np.pi**2 / 3


@pytest.fixture(scope="module")
def fit():
    tau = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2], [1.0, 1.5, 0.8, 2.0, 1.2]])
    df, _ = simulate_lca(tau, [0.3], n_clusters=60, cluster_size=8, psi=[[2.0]], seed=7)
    m = bm.lca(df, [f"y{j}" for j in range(1, 6)], n_classes=2, cluster="cluster")
    return bm.fit_ml(m, n_starts=4, n_final=2, seed=0, progress=False)


def test_icc_ml_estimate_and_delta_se(fit):
    table = bm.icc(fit)
    var = float(np.asarray(fit.natural["psi"]).ravel()[0])
    assert table["icc"].iloc[0] == pytest.approx(var / (var + C), rel=1e-12)
    # delta method from the raw log-sd l: icc = e^{2l} / (e^{2l} + c)
    i = fit.model.free_names.index("chol_log_diag")
    idx = sum(int(np.prod(np.shape(fit.point[n]))) for n in fit.model.free_names[:i])
    lsd = fit.point["chol_log_diag"][0]
    deriv = 2 * np.exp(2 * lsd) * C / (np.exp(2 * lsd) + C) ** 2
    assert table["se"].iloc[0] == pytest.approx(deriv * np.sqrt(fit.cov[idx, idx]), rel=1e-4)
    assert 0 <= table["lower"].iloc[0] < table["icc"].iloc[0] < table["upper"].iloc[0] <= 1


def test_icc_from_posterior_draws():
    psi = np.array([[[[1.0]], [[3.0]]], [[[2.0]], [[4.0]]]])  # (chain, draw, re, re_bis)
    post = xr.Dataset({"psi": (("chain", "draw", "re", "re_bis"), psi)},
                      coords={"re": ["alpha_1"], "re_bis": ["alpha_1"]})
    dt = xr.DataTree.from_dict({"posterior": post})
    with pytest.raises(bm.SpecificationError, match="no random class-logit intercepts"):
        bm.icc(dt)  # no class variables stamped by bayesmix.sample: nothing says psi is Var(alpha)
    cv = {"name": "C", "logit_variance": "psi"}
    dt["posterior"].attrs["bayesmix_class_variables"] = json.dumps([cv])
    table = bm.icc(dt)
    vals = np.array([1.0, 3.0, 2.0, 4.0])
    assert table["icc"].iloc[0] == pytest.approx(np.mean(vals / (vals + C)))
    assert table["sd"].iloc[0] == pytest.approx(np.std(vals / (vals + C)))


def test_icc_needs_random_intercepts():
    df, _ = simulate_lca(np.array([[-1.0, -1.0], [1.0, 1.0]]), [0.0], n_persons=50, seed=1)
    res = bm.fit_ml(bm.lca(df, ["y1", "y2"], 2), n_starts=2, n_final=2, progress=False)
    with pytest.raises(bm.SpecificationError, match="no random class-logit intercepts"):
        bm.icc(res)
    with pytest.raises(bm.SpecificationError, match="icc: got dict"):
        bm.icc({})


@pytest.mark.parametrize("variance", [100.0, 10000.0])
def test_class_probability_curve_figures_2_3(variance):
    fig, ax = class_probability_curve(variance)
    x, y = ax.get_lines()[0].get_data()
    np.testing.assert_allclose(y, special.expit(np.sqrt(variance) * x))
    # the paper's point: with a huge variance the probability is almost always 0 or 1
    share_extreme = np.mean((y < 0.01) | (y > 0.99))
    assert share_extreme > (0.8 if variance == 100 else 0.98)


def test_class_probability_curve_from_fit(fit):
    fig, ax = class_probability_curve(result=fit)
    x, y = ax.get_lines()[0].get_data()
    var = float(np.asarray(fit.natural["psi"]).ravel()[0])
    alpha = float(fit.natural["alpha"][0])
    np.testing.assert_allclose(y, special.expit(alpha + np.sqrt(var) * x))
    with pytest.raises(bm.SpecificationError, match="variance got -1"):
        class_probability_curve(-1)
