"""Identification and separation checks at the ML optimum (issue 11, item 3).

Each design below gave finite standard errors without a word before the check
(tau SEs NaN but alpha 1.27 with one item; Var(alpha) SE 28 with one person per
cluster; a slope of 52 with SE 1.7 under separation). The unit tests of the
first block need no compilation; the fits use tiny data.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.exceptions import IdentificationWarning
from bayesmix.fit import identification as ident

# ---------------------------------------------------------------- linear algebra, no model


def test_flat_direction_of_a_rotated_singular_information():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    info = q @ np.diag([3.0, 1.0, 0.5, 0.0]) @ q.T
    v = ident.flat_directions(-info, np.ones(4, bool), np.ones(4))
    assert v.shape == (4, 1)
    assert abs(abs(v[:, 0] @ q[:, 3]) - 1) < 1e-8


def test_small_curvature_from_units_is_not_flat():
    # a slope on a covariate measured in large units: curvature 1e-8 of the others', identified
    info = np.diag([1e-8, 1.0, 4.0])
    info[1, 2] = info[2, 1] = 0.5
    assert ident.flat_directions(-info, np.ones(3, bool), np.ones(3)).shape[1] == 0


def test_parameters_held_at_a_bound_are_left_out():
    info = np.diag([2.0, 0.0, 1.0])
    free = np.array([True, False, True])
    assert ident.flat_directions(-info, free, np.ones(3)).shape[1] == 0
    assert ident.flat_directions(-info, np.ones(3, bool), np.ones(3)).shape[1] == 1


def test_reported_quantities_along_a_flat_direction_lose_their_se():
    # LL = -(a - b)^2: a + b is flat; q1 = a - b is identified, q2 = a is not
    hess = -2 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    jac = np.array([[1.0, -1.0], [1.0, 0.0]])
    rec = ident.check_information(hess, np.ones(2, bool), np.array([1.0, 1.0]), 0.0,
                                  lambda t: -(t[0] - t[1]) ** 2, ["a", "b"], jac)
    assert not rec["identified"]
    assert rec["directions"][0]["parameters"] == ["a", "b"]
    assert rec["directions"][0]["separation"] is False  # flat both ways: collinear, not separated
    assert rec["void_se"].tolist() == [False, True]


def test_a_maximum_at_infinity_is_separation():
    # LL = -log(1 + exp(-a)): rises towards 0 as a grows; the optimizer stops at a = 30
    x = np.array([30.0, 0.5])

    def loglik(t):
        return -np.log1p(np.exp(-t[0])) - (t[1] - 0.5) ** 2

    hess = np.diag([-np.exp(-30.0), -2.0])
    rec = ident.check_information(hess, np.ones(2, bool), x, loglik(x), loglik, ["a", "b"], np.eye(2))
    assert rec["directions"] == [{"parameters": ["a"], "separation": True}]
    assert rec["void_se"].tolist() == [True, False]


def test_a_bounded_ridge_is_not_called_separation():
    # LL = -(a^2 + b^2 - 1)^2: a circle of maxima; the tangent at (1, 0) leaves it
    x = np.array([1.0, 0.0])
    hess = np.array([[-8.0, 0.0], [0.0, 0.0]])
    rec = ident.check_information(hess, np.ones(2, bool), x, 0.0, lambda t: -(t @ t - 1) ** 2, ["a", "b"],
                                  np.eye(2))
    assert rec["directions"] == [{"parameters": ["b"], "separation": False}]


# ---------------------------------------------------------------- fits


def _fit(model, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bm.fit_ml(model, n_starts=3, n_final=2, progress=False, **kw)
    found = [str(w.message) for w in caught if issubclass(w.category, IdentificationWarning)]
    return res, found


@pytest.fixture(scope="module")
def binary4():
    rng = np.random.default_rng(1)
    n = 200
    c = rng.integers(0, 2, n)
    y = (rng.random((n, 4)) < np.where(c[:, None] == 0, 0.8, 0.2)).astype(int)
    df = pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"])
    df["school"] = np.arange(n)  # one person per cluster
    df["copy"] = df["y1"].astype(float)
    return df


def test_identified_lca_gets_no_warning_and_says_so(binary4):
    res, found = _fit(bm.lca(binary4, ["y1", "y2", "y3", "y4"], 2))
    assert found == []
    assert res.identification["identified"]
    assert res.params["se"].notna().all()
    assert "non-singular" in res.summary()


def test_one_item_two_classes_is_not_identified(binary4):
    res, found = _fit(bm.lca(binary4, ["y1"], 2))
    assert len(found) == 1 and "not identified" in found[0] and "alpha[1]" in found[0]
    assert not res.identification["identified"]
    # before the check alpha had SE 1.27 and the class shares 0.32
    assert res.params["se"].isna().all()
    assert "WARNING: the information matrix is singular" in res.summary()


def test_more_parameters_than_response_patterns(binary4):
    # two binary items: 4 patterns (3 free probabilities) but 5 parameters with K = 2
    res, found = _fit(bm.lca(binary4, ["y1", "y2"], 2))
    assert found and res.identification["n_flat"] == 2
    assert res.params["se"].isna().all()


def test_random_intercept_variance_with_one_person_per_cluster(binary4):
    res, found = _fit(bm.lca(binary4, ["y1", "y2", "y3", "y4"], 2, cluster="school"))
    assert found and "chol_log_diag" in found[0]
    rows = res.params.set_index("parameter")
    assert np.isnan(rows.loc["psi", "se"])  # it was 28.2
    assert rows.loc["tau", "se"].notna().all()  # the item thresholds stay identified


def test_class_covariate_that_copies_an_item_is_separation(binary4):
    res, found = _fit(bm.lca(binary4, ["y2", "y3", "y4", "y1"], 2, covariates=["copy"]))
    assert found and "separation" in found[0] and "beta[1, copy]" in found[0]
    assert any(d["separation"] for d in res.identification["directions"])
    assert np.isnan(res.params.set_index("parameter").loc["beta", "se"])


def test_perfectly_predicted_binary_outcome_is_separation():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    df = pd.DataFrame({"y": (x > 0.3).astype(int), "x": x})
    res, found = _fit(bm.mixture_regression(df, "y", ["x"], 1))
    # the threshold runs to its bound; the slope (52, SE 1.7 before) is separated with it
    assert found and "separation" in found[0] and "beta" in found[0]
    assert np.isnan(res.params.set_index("parameter").loc["beta", "se"])
