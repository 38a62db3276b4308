"""Integration accuracy by default (issue "Right by default", part 1): the
number of points comes from the number of integrated dimensions, a one-point
rule is refused, and fit_ml checks its LL under a finer rule, records the check
and refits when the LL moves by more than 0.01."""

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.core.quadrature import Integration
from bayesmix.simulate import simulate_lca

ITEMS = [f"y{j}" for j in range(1, 7)]
TAU = np.array([[-1.5, -1.2, -1.0, -1.4, -0.8, -1.1], [1.2, 1.5, 0.9, 1.3, 1.0, 1.4]])
DENSE = Integration("trapezoid", n_points=801, bound=8.0)


def test_default_points_by_dimension():
    rule = Integration()
    assert [rule.counts(d) for d in range(1, 7)] == [(61,), (31,) * 2, (15,) * 3, (9,) * 4, (7,) * 5, (5,) * 6]
    assert Integration("adaptive").counts(2) == (15, 15)
    assert Integration("qmc").counts(3) == (2000,)
    assert Integration(n_points=(15, 201)).counts(2) == (15, 201)
    assert rule.finer(1).counts(1) == (121,) and rule.finer(2).counts(2) == (61, 61)
    assert int(np.prod(rule.finer(5).counts(5))) <= 40_000
    assert "61 points per dimension, 1 dimension(s), 61 nodes" in rule.describe(1)


@pytest.mark.parametrize("points", [1, (15, 1), 0])
def test_one_point_rule_is_refused(points):
    with pytest.raises(bm.SpecificationError, match=r"integration n_points: got .*integer >= 2"):
        Integration(n_points=points)


def _fit(df, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.StartsWarning)
        return bm.fit_ml(bm.lca(df, ITEMS, 2, cluster="cluster", **kwargs), n_starts=2, n_final=1, seed=0,
                         progress=False)


@pytest.fixture(scope="module")
def two_level_default():
    """The design of the issue: 100 clusters x 15 persons, 6 binary items, K = 2,
    Var(alpha) = 2.6; the old default (15 trapezoid points) was 0.107 off."""
    df, _ = simulate_lca(TAU, [0.3], n_clusters=100, cluster_size=15, psi=[[2.6]], seed=11)
    return _fit(df)


def test_default_rule_is_within_001_of_a_dense_integral(two_level_default):
    res = two_level_default
    assert res.model.spec.integration.counts(1) == (61,)
    table = bm.check_integration(res, [DENSE, Integration("trapezoid", n_points=15)])
    dense, old = table["difference"].iloc[1], table["difference"].iloc[2]
    assert abs(dense) < 0.01, table
    assert abs(old) > 0.03, table  # what the old default reported: the check can fail
    check = res.integration
    assert check["ok"] and abs(check["difference"]) < 0.01 and check["refined_from"] is None
    assert "121 points" in check["checked_with"]
    assert "Integration checked: LL changes by" in res.summary()


def test_large_clusters_refine_the_rule():
    """Clusters of 400 persons: the posterior of alpha_j is narrow and 61 points
    are too few; fit_ml refits with a finer rule and says so."""
    df, _ = simulate_lca(TAU, [0.3], n_clusters=8, cluster_size=400, psi=[[2.6]], seed=12)
    with pytest.warns(bm.IntegrationWarning, match="refined from the optimum"):
        res = _fit(df)
    check = res.integration
    assert check["refined_from"].startswith("trapezoid (61 points")
    assert res.model.spec.integration.counts(1)[0] > 61
    assert res.model.cache["refined_from"] is not res.model
    assert "Integration refined from" in res.summary()
    dense = bm.check_integration(res, [DENSE])["difference"].iloc[1]
    assert abs(dense) < 0.01 or not check["ok"]


# ---------------------------------------------------------------- issue 11, item 3 (first pieces)
def test_constant_lca_covariate_is_refused_before_compiling():
    df, _ = simulate_lca(TAU, [0.3], n_persons=60, seed=3)
    df["x"] = 2.0
    with pytest.raises(bm.DataError, match=r"x: the column is constant \(2\) over all persons.*alpha"):
        bm.lca(df, ITEMS, 2, covariates=["x"])
    clustered = df.assign(cluster=np.arange(60) // 6, w=1.5)
    with pytest.raises(bm.DataError, match=r"w: the column is constant \(1.5\) over all clusters"):
        bm.lca(clustered, ITEMS, 2, cluster="cluster", covariates=["w"], class_level="between")
    bm.lca(df, ITEMS, 1, covariates=["x"])  # one class: no class logits, nothing to confound


def test_stopping_at_the_iteration_limit_is_reported():
    df, _ = simulate_lca(TAU, [0.3], n_persons=80, seed=4)
    model = bm.lca(df, ITEMS, 2)
    with pytest.warns(bm.ConvergenceWarning, match=r"iteration limit \(max_iter=2\)"):
        res = bm.fit_ml(model, n_starts=1, n_final=1, max_iter=2, newton_steps=0, progress=False)
    assert res.convergence["hit_iteration_limit"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bm.fit_ml(model, n_starts=1, n_final=1, progress=False)
    assert not res.convergence["hit_iteration_limit"]
    assert not any("iteration limit" in str(w.message) for w in caught)


class _Quadratic:
    """LL = -(x - 20)^2 per element: its maximum lies outside a +-15 box."""

    def value_and_grad(self, x):  # the objective interface of fit/ml.py (LogLikelihood)
        return float(-np.sum((x - 20.0) ** 2)), -2.0 * (x - 20.0)

    def second_order(self, x):
        return {"hessian": -2.0 * np.eye(x.size)}


def test_newton_polish_stays_inside_the_bounds():
    from bayesmix.fit.ml import _newton_polish

    box = (np.full(2, -15.0), np.full(2, 15.0))
    x, ll, g, _ = _newton_polish(_Quadratic(), np.array([14.0, 0.0]), 5, np.array([True, True]), box)
    assert np.all(x <= 15.0) and np.all(x >= -15.0), x  # the old polish went to 20
    assert x[0] > 14.9 and ll > -((14.0 - 20) ** 2 + 400)
