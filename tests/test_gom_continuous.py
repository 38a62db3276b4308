"""GoM with continuous items (issue 9, part 1): y_ij | C_ij = c ~ N(nu_ci, theta_i)
beside binary items, the class sum in log space. The likelihood against scipy
quad on tiny data with missing cells, item-class posteriors, relabelling, the
simulator's moments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate as sint
from scipy import special, stats

import bayesmix as bm
from bayesmix.fit.compiled import compiled

TAU = np.array([[-1.0, 0.8], [1.2, -0.5]])  # binary b1, b2: P(y = 1 | c) = expit(-tau)
NU = np.array([[2.0], [-1.0]])  # continuous x per class
THETA = np.array([0.6])
ALPHA, SD = 0.4, 1.3


def tiny():
    df = pd.DataFrame({"b1": [1, 0, 1, np.nan, 0, 1, 1], "x": [2.4, -0.7, np.nan, 1.1, -2.2, 30.0, 0.3],
                       "b2": [0, 1, 1, 0, np.nan, 1, 0]}, dtype=float)
    return df  # person 6 has x = 30: a density of ~e^-400 in both classes (log space needed)


def person_lik(row, a):
    pi1 = special.expit(a)
    out = 0.0
    for col, p in (("b1", 0), ("b2", 1)):
        v = row[col]
        if np.isnan(v):
            continue
        f = special.expit(-TAU[:, p]) if v == 1 else special.expit(TAU[:, p])
        out += np.log(pi1 * f[0] + (1 - pi1) * f[1])
    v = row["x"]
    if not np.isnan(v):
        lf = stats.norm.logpdf(v, NU[:, 0], np.sqrt(THETA[0]))
        out += np.logaddexp(np.log(pi1) + lf[0], np.log1p(-pi1) + lf[1])
    return out


def brute(df):
    out = []
    for _, row in df.iterrows():
        c = person_lik(row, ALPHA)  # scale for the quadrature (x = 30 underflows otherwise)
        val = sint.quad(lambda z: stats.norm.pdf(z) * np.exp(person_lik(row, ALPHA + SD * z) - c), -12, 12,
                        epsabs=1e-13, epsrel=1e-12)[0]
        out.append(np.log(val) + c)
    return np.array(out)


@pytest.fixture(scope="module")
def fam():
    return bm.gom(tiny(), ["b1", "x", "b2"], 2, item_types={"x": "continuous", "b1": "binary", "b2": "binary"},
                  integration=bm.Integration("trapezoid", n_points=401, bound=9.0))


def _theta(fam):
    return compiled(fam).packing.pack({"tau": TAU, "nu": NU, "log_theta": np.log(THETA), "alpha": np.array([ALPHA]),
                                       "chol_log_diag": np.array([np.log(SD)])})


def test_likelihood_matches_scipy_quad(fam):
    assert fam.free_names == ["tau", "nu", "log_theta", "alpha", "chol_log_diag"]
    ll = compiled(fam).unit_loglik(_theta(fam))
    assert np.all(np.isfinite(ll))
    np.testing.assert_allclose(ll, brute(tiny()), atol=1e-8, rtol=0)


def test_item_class_posteriors_and_relabelling(fam):
    theta = _theta(fam)
    post = fam.item_class_probs(theta)
    assert post.shape == (7, 3, 2) and np.all(np.isfinite(post))
    np.testing.assert_allclose(post.sum(axis=-1), 1.0, atol=1e-12)
    # a missing cell's item class is the person's GoM score
    scores = compiled(fam).memberships(theta)["C"]
    np.testing.assert_allclose(post[2, 1], scores[2], atol=1e-10)
    comp = compiled(fam)
    swapped = comp.packing.pack(fam.permute_classes(comp.packing.unpack(theta), np.array([1, 0])))
    np.testing.assert_allclose(comp.unit_loglik(swapped), comp.unit_loglik(theta), atol=1e-9)


def test_simulated_class_means(fam):
    nat = compiled(fam).reported(_theta(fam))
    big = bm.gom(pd.DataFrame({"b1": [0.0, 1.0] * 2000, "x": np.linspace(-1, 1, 4000), "b2": [1.0, 0.0] * 2000}),
                 ["b1", "x", "b2"], 2, item_types={"x": "continuous"})
    y, _ = big.simulate(nat, np.random.default_rng(5))
    # E x = E_alpha [pi_1] nu_1 + (1 - E pi_1) nu_2, with E pi_1 the model's class share
    share = float(nat["class_share"][0])
    expected = share * NU[0, 0] + (1 - share) * NU[1, 0]
    sd = np.sqrt(THETA[0] + share * (1 - share) * (NU[0, 0] - NU[1, 0]) ** 2)
    assert abs(y[:, 1].mean() - expected) < 4 * sd / np.sqrt(4000)
    assert set(np.unique(y[:, [0, 2]])) <= {0.0, 1.0}


# ------------------------------------------------------------------ item-specific class logits (eq. 44)
GAMMA = np.array([[0.9, -0.6, 0.2]])  # (K-1, items b1, x, b2)


def person_lik_items(row, z):
    out = 0.0
    for col, p, g in (("b1", 0, GAMMA[0, 0]), ("b2", 1, GAMMA[0, 2])):
        v = row[col]
        if np.isnan(v):
            continue
        pi1 = special.expit(g + SD * z)
        f = special.expit(-TAU[:, p]) if v == 1 else special.expit(TAU[:, p])
        out += np.log(pi1 * f[0] + (1 - pi1) * f[1])
    v = row["x"]
    if not np.isnan(v):
        pi1 = special.expit(GAMMA[0, 1] + SD * z)
        lf = stats.norm.logpdf(v, NU[:, 0], np.sqrt(THETA[0]))
        out += np.logaddexp(np.log(pi1) + lf[0], np.log1p(-pi1) + lf[1])
    return out


def test_item_logits_match_scipy_quad():
    df = tiny()
    fam = bm.gom(df, ["b1", "x", "b2"], 2, item_types={"x": "continuous"}, item_logits=True,
                 integration=bm.Integration("trapezoid", n_points=401, bound=9.0))
    assert "alpha" not in fam.free_names and "gamma" in fam.free_names
    comp = compiled(fam)
    theta = comp.packing.pack({"tau": TAU, "nu": NU, "log_theta": np.log(THETA), "gamma": GAMMA,
                               "chol_log_diag": np.array([np.log(SD)])})
    brute_ll = []
    for _, row in df.iterrows():
        c = person_lik_items(row, 0.0)
        val = sint.quad(lambda z: stats.norm.pdf(z) * np.exp(person_lik_items(row, z) - c), -12, 12,
                        epsabs=1e-13, epsrel=1e-12)[0]
        brute_ll.append(np.log(val) + c)
    np.testing.assert_allclose(comp.unit_loglik(theta), brute_ll, atol=1e-8, rtol=0)
    swapped = comp.packing.pack(fam.permute_classes(comp.packing.unpack(theta), np.array([1, 0])))
    np.testing.assert_allclose(comp.unit_loglik(swapped), comp.unit_loglik(theta), atol=1e-9)
    # equal gammas are the model without item logits (alpha = the common value)
    same = comp.packing.pack({"tau": TAU, "nu": NU, "log_theta": np.log(THETA), "gamma": np.full((1, 3), ALPHA),
                              "chol_log_diag": np.array([np.log(SD)])})
    plain = bm.gom(df, ["b1", "x", "b2"], 2, item_types={"x": "continuous"},
                   integration=bm.Integration("trapezoid", n_points=401, bound=9.0))
    np.testing.assert_allclose(comp.unit_loglik(same), compiled(plain).unit_loglik(_theta(plain)), atol=1e-12)
    nat = comp.reported(theta)
    y, _ = fam.simulate(nat, np.random.default_rng(1))
    assert y.shape == (7, 3)
    with pytest.raises(bm.SpecificationError, match="item_logits"):
        bm.gom(df, ["b1", "b2"], 2, item_logits="yes")


def test_item_logit_classes_are_drawn_per_item():
    import importlib

    G = importlib.import_module("bayesmix.families.gom")
    gamma = np.array([[2.0, -1.5, 0.0]])
    c = G.draw_item_classes({"gamma": gamma, "psi": np.array([[SD**2]])}, 20000, 3, np.random.default_rng(2))
    z = np.linspace(-9, 9, 4001)
    w = stats.norm.pdf(z) * (z[1] - z[0])
    expected = [np.sum(w * special.expit(g + SD * z)) for g in gamma[0]]  # P(C_ij = 1), class 1 = code 0
    share = (c == 0).mean(axis=0)
    np.testing.assert_allclose(share, expected, atol=4 * 0.5 / np.sqrt(20000))
