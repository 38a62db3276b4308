"""LCA factory: argument errors (raised before compilation), registry-wide model
structure, and class-permutation invariance of the likelihood."""

import numpy as np
import pymc as pm
import pytest

import bayesmix as bm
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca


@pytest.fixture(scope="module")
def tiny():
    tau = np.array([[-1.0, -0.5, 0.0, -1.5], [1.0, 1.5, 0.5, 1.0]])
    df, _ = simulate_lca(tau, [0.2], n_clusters=8, cluster_size=6, seed=1)
    df["x"] = np.random.default_rng(2).normal(size=len(df))
    return df


ITEMS = ["y1", "y2", "y3", "y4"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2", None])
def test_n_classes_error(tiny, bad):
    with pytest.raises(SpecificationError, match=r"n_classes: got .*integer >= 1"):
        bm.lca(tiny, ITEMS, n_classes=bad)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"link": "logistic"}, r"link: got 'logistic'; valid choices are 'logit', 'probit'"),
        ({"integration": "simpson"}, r"integration rule: got 'simpson'; valid choices"),
        ({"integration": {"rule": "trapezoid", "points": 3}}, r"unknown field\(s\) \['points'\]"),
        ({"integration": {"n_points": 0}}, r"n_points: got 0"),
        ({"random_intercepts": True}, r"random_intercepts: got True without a cluster"),
        ({"priors": {"tau_x": pm.Normal.dist(0, 1)}}, r"priors: unknown parameter\(s\) \['tau_x'\]"),
        ({"priors": {"tau": pm.HalfNormal.dist(1)}}, r"priors\['tau'\]: got halfnormal with a bounded support"),
        ({"priors": {"tau": 3.0}}, r"priors\['tau'\]: got float"),
    ],
)
def test_specification_errors(tiny, kwargs, pattern):
    with pytest.raises(SpecificationError, match=pattern):
        bm.lca(tiny, ITEMS, n_classes=2, **kwargs)


def test_fit_argument_errors_before_compilation(tiny):
    m = bm.lca(tiny, ITEMS, n_classes=2)
    with pytest.raises(SpecificationError, match=r"se: got 'robust'; valid choices are 'mlr', 'ml'"):
        bm.fit_ml(m, se="robust")
    with pytest.raises(SpecificationError, match=r"n_starts: got -1"):
        bm.fit_ml(m, n_starts=-1)
    with pytest.raises(SpecificationError, match=r"draws: got 0"):
        bm.sample(m, draws=0)
    assert getattr(m, "_compiled", None) is None  # nothing was compiled


def test_data_errors_reach_the_user_from_lca(tiny):
    with pytest.raises(bm.DataError, match="y9"):
        bm.lca(tiny, ITEMS + ["y9"], n_classes=2)


@pytest.mark.parametrize("k, two_level, covariate", [(2, False, True), (3, True, True), (3, True, False)])
def test_likelihood_invariant_under_class_permutation(tiny, k, two_level, covariate):
    kw = {"cluster": "cluster"} if two_level else {}
    if covariate:
        kw["covariates"] = ["x"]
    m = bm.lca(tiny, ITEMS, n_classes=k, **kw)
    comp = compiled(m)
    point = m.start_point(np.random.default_rng(5))
    if "beta" in point:
        point["beta"] = np.random.default_rng(6).normal(size=point["beta"].shape)
    if "chol_offdiag" in point:
        point["chol_offdiag"] = np.array([0.4])
    base = comp.unit_loglik(comp.packing.pack(point))
    rng = np.random.default_rng(0)
    for _ in range(3):
        perm = rng.permutation(k)
        moved = m.permute_classes(point, perm)
        # exact for one level; with random effects the product grid sees a linearly
        # transformed covariance, so equality holds only to quadrature accuracy
        tol = 1e-5 if two_level else 1e-9
        np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), base, rtol=0, atol=tol)
        # class-specific thresholds moved with their class
        np.testing.assert_allclose(moved["tau"], point["tau"][perm])
        back = m.permute_classes(moved, np.argsort(perm))
        for name in point:
            np.testing.assert_allclose(back[name], point[name], atol=1e-9)


def test_all_items_missing_row_is_reported_not_used(tiny):
    df = tiny.copy()
    df.loc[3, ITEMS] = np.nan
    with pytest.warns(bm.DroppedRowsWarning, match="1"):
        m = bm.lca(df, ITEMS, n_classes=2)
    assert m.data.n_persons == len(df) - 1
    assert m.data.n_dropped == 1
