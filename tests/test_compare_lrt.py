"""Likelihood-ratio test of nested models (bayesmix.lr_test), checked against
hand computation: the K = 1 LCA log-likelihood in closed form, chi-square tail
areas from scipy, and the Satorra-Bentler MLR difference written out here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmix
from bayesmix.simulate import simulate_lca

pytestmark = pytest.mark.filterwarnings("ignore:The same einsum subscript:UserWarning")


@pytest.fixture(scope="module")
def fits():
    tau = np.array([[-1.5, -1.2, -1.8, -1.0], [1.4, 1.6, 1.1, 1.3]])
    df, _ = simulate_lca(tau, [0.2], n_persons=120, seed=4)
    items = [f"y{p}" for p in range(1, 5)]
    r1 = bayesmix.fit_ml(bayesmix.lca(df, items, 1), n_starts=1, n_final=1, progress=False)
    r2 = bayesmix.fit_ml(bayesmix.lca(df, items, 2), n_starts=6, n_final=3, progress=False)
    return df, items, r1, r2


def test_k1_loglik_is_the_closed_form(fits):
    df, items, r1, _ = fits
    # K = 1: items independent, ML = observed proportions
    ll = 0.0
    for it in items:
        counts = df[it].value_counts().to_numpy(dtype=float)
        ll += np.sum(counts * np.log(counts / counts.sum()))
    assert r1.loglik == pytest.approx(ll, abs=1e-8)


def test_lr_test_against_hand_computation(fits):
    _, _, r1, r2 = fits
    t = bayesmix.lr_test(r1, r2)
    assert isinstance(t, bayesmix.LRTest)
    lr = 2 * (r2.loglik - r1.loglik)
    assert t.df == 9 - 4 == r2.n_params - r1.n_params
    assert t.lr == pytest.approx(lr, rel=1e-12)
    assert t.p == pytest.approx(stats.chi2.sf(lr, 5), rel=1e-10)
    # Satorra-Bentler scaled difference (Mplus, MLR), written out
    p0, c0, l0 = 4, r1.scaling_correction, r1.loglik
    p1, c1, l1 = 9, r2.scaling_correction, r2.loglik
    cd = (p0 * c0 - p1 * c1) / (p0 - p1)
    trd = -2 * (l0 - l1) / cd
    assert r1.se_type == r2.se_type == "mlr"
    assert t.cd == pytest.approx(cd, rel=1e-12)
    assert t.scaled_lr == pytest.approx(trd, rel=1e-12)
    assert t.scaled_p == pytest.approx(stats.chi2.sf(trd, 5), rel=1e-10)
    # K = 1 vs K = 2: a test of the number of classes is not chi-square
    assert "1 and 2 classes" in t.caveat and "BIC" in t.caveat and "boundary" not in t.caveat.split(":")[0]
    text = str(t)
    assert "Likelihood-ratio test" in text and "MLR scaled" in text and f"{lr:.3f}" in text
    assert list(t.to_frame()["df"]) == [5, 5]


def test_scaled_formula_on_given_numbers(fits):
    """The scaled difference on made-up numbers (Mplus' web note example style)."""
    _, _, r1, r2 = fits
    a = dataclasses.replace(r1, loglik=-2606.0, n_params=25, scaling_correction=1.450)
    b = dataclasses.replace(r2, loglik=-2583.0, n_params=31, scaling_correction=1.150)
    t = bayesmix.lr_test(a, b)
    cd = (25 * 1.450 - 31 * 1.150) / (25 - 31)
    assert cd == pytest.approx(-0.1, rel=1e-9) and cd < 0
    assert np.isnan(t.scaled_lr) and "not positive" in t.note
    b = dataclasses.replace(r2, loglik=-2583.0, n_params=31, scaling_correction=1.6)
    t = bayesmix.lr_test(a, b)
    cd = (25 * 1.450 - 31 * 1.6) / (25 - 31)
    assert t.cd == pytest.approx(2.225, rel=1e-12)
    assert t.scaled_lr == pytest.approx(46.0 / 2.225, rel=1e-12)
    assert t.scaled_p == pytest.approx(stats.chi2.sf(46.0 / 2.225, 6), rel=1e-10)
    assert t.lr == pytest.approx(46.0) and t.p == pytest.approx(stats.chi2.sf(46.0, 6))


def test_no_scaled_test_without_mlr(fits):
    _, _, r1, r2 = fits
    t = bayesmix.lr_test(dataclasses.replace(r1, se_type="ml"), r2)
    assert np.isnan(t.scaled_lr) and not t.scaled and "se='mlr'" in t.note
    assert t.lr == pytest.approx(2 * (r2.loglik - r1.loglik))
    assert "MLR scaled" not in str(t)


def test_errors(fits):
    _, _, r1, r2 = fits
    with pytest.raises(bayesmix.SpecificationError, match="full: got 4 free parameters against 9"):
        bayesmix.lr_test(r2, r1)
    with pytest.raises(bayesmix.SpecificationError, match="n_obs = 119 against 120"):
        bayesmix.lr_test(r1, dataclasses.replace(r2, n_obs=119))
    with pytest.raises(bayesmix.SpecificationError, match="not nested, or the full fit is not at its maximum"):
        bayesmix.lr_test(r1, dataclasses.replace(r2, loglik=r1.loglik - 1e-3))
    # within the tolerance: accepted, LR 0
    t = bayesmix.lr_test(r1, dataclasses.replace(r2, loglik=r1.loglik - 1e-8))
    assert t.lr == 0.0 and t.p == 1.0
    with pytest.raises(bayesmix.SpecificationError, match="restricted: got dict"):
        bayesmix.lr_test({}, r2)


def _with_psi(res, variance, model):
    """A copy of ``res`` carrying a random class-logit intercept variance, with
    ``model`` (a two-level LCA) declaring it (the caveats read the declarations)."""
    row = pd.DataFrame([{"label": "psi[alpha_1, alpha_1]", "parameter": "psi", "class": pd.NA,
                         "term": "alpha_1, alpha_1", "estimate": variance, "se": 0.1 * variance,
                         "z": 10.0, "p": 0.0}])
    return dataclasses.replace(res, model=model, natural={**res.natural, "psi": np.array([[variance]])},
                               params=pd.concat([res.params, row], ignore_index=True), n_params=res.n_params + 1)


def test_boundary_caveats(fits):
    df, items, r1, r2 = fits
    two_level = bayesmix.lca(df.assign(cluster=np.arange(len(df)) // 10), items, 2, cluster="cluster")
    assert two_level.class_variables[0].logit_variance == "psi"
    # the difference is a variance (restricted has none): boundary at 0
    t = bayesmix.lr_test(r2, _with_psi(r2, 0.5, two_level))
    assert "boundary" in t.caveat and "chi-square" in t.caveat and "approximate" in t.caveat
    assert "between-level" not in t.caveat
    assert t.caveat in str(t)
    # Model 5 vs Model 6 of the paper: ICC = 609 / (609 + pi^2/3) = 0.995 > 0.8
    t = bayesmix.lr_test(r2, _with_psi(r2, 609.0, two_level))
    assert "ICC is 0.995 > 0.8" in t.caveat and "class_level='between'" in t.caveat
    assert "boundary" in t.caveat
    # same classes, both with random intercepts, small ICC: no caveat
    t = bayesmix.lr_test(dataclasses.replace(_with_psi(r2, 0.5, two_level), n_params=r2.n_params - 1), _with_psi(r2, 0.5, two_level))
    assert t.caveat == ""
