"""Two-level GoM (K = 2; issue 9, part 5): persons i in clusters j with
alpha_1ij = alpha_1 + w_ij + b_j. The nested integral (person inside cluster)
against scipy's nested adaptive quadrature on tiny data, the zero-variance
limit against the single-level GoM, and argument errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate as sint
from scipy import special, stats

import bayesmix as bm
from bayesmix.fit.compiled import compiled

DENSE = bm.Integration("trapezoid", n_points=(81, 81), bound=8.0)
TAU = np.array([[-1.2, 0.4, -0.6], [1.1, -0.3, 0.9]])  # (K, items): P(y = 1 | c) = expit(-tau)
ALPHA, SD_W, SD_B = 0.3, 1.4, 0.8


def tiny():
    """5 clusters of 3 persons x 3 binary items, two missing cells."""
    rng = np.random.default_rng(8)
    y = (rng.random((15, 3)) < 0.5).astype(float)
    y[2, 1] = y[9, 0] = np.nan
    df = pd.DataFrame(y, columns=["a", "b", "c"])
    df["school"] = np.repeat(["s1", "s2", "s3", "s4", "s5"], 3)
    return df


def person_lik(y, a):
    """prod_items sum_c P(C = c | a) P(y | c) at class-1 logit a (written here)."""
    pi1 = special.expit(a)
    out = 1.0
    for p, v in enumerate(y):
        if np.isnan(v):
            continue
        f = special.expit(-TAU[:, p]) if v == 1 else special.expit(TAU[:, p])
        out *= pi1 * f[0] + (1 - pi1) * f[1]
    return out


def test_brute_force_rule_against_scipy_quad():
    """The Gauss-Legendre rule of the brute force against scipy's adaptive quad on
    one person's integral over w at a fixed cluster intercept."""
    x, w = np.polynomial.legendre.leggauss(200)
    y = tiny()[["a", "b", "c"]].to_numpy()[2]
    gl = np.sum(10 * w * stats.norm.pdf(10 * x) * person_lik(y, ALPHA + SD_W * 10 * x + SD_B * 0.7))
    quad = sint.quad(lambda v: stats.norm.pdf(v) * person_lik(y, ALPHA + SD_W * v + SD_B * 0.7), -10, 10,
                     epsabs=1e-14, epsrel=1e-13)[0]
    assert gl == pytest.approx(quad, rel=1e-11)


def brute_cluster_loglik(df, n=200):
    """Gauss-Legendre on [-10, 10] in both levels (another rule than the model's
    trapezoid; 200 nodes make it exact to ~1e-13 for these smooth integrands)."""
    x, w = np.polynomial.legendre.leggauss(n)
    z, wz = 10 * x, 10 * w * stats.norm.pdf(10 * x)
    out = []
    for _, grp in df.groupby("school", sort=True):
        ys = grp[["a", "b", "c"]].to_numpy()
        per_b = np.ones(n)
        for y in ys:
            lik = person_lik(y, ALPHA + SD_W * z[None, :] + SD_B * z[:, None])  # (b, w)
            per_b *= lik @ wz
        out.append(np.log(per_b @ wz))
    return np.array(out)


def _theta(fam, log_sd_b=np.log(SD_B)):
    point = {"tau": TAU, "alpha": np.array([ALPHA]), "chol_log_diag": np.array([np.log(SD_W)]),
             "log_sd_between": np.array(log_sd_b)}
    return compiled(fam).packing.pack({k: v for k, v in point.items() if k in fam.free_names})


def test_nested_integral_matches_scipy():
    df = tiny()
    fam = bm.gom(df, ["a", "b", "c"], 2, cluster="school", integration=DENSE)
    assert fam.unit_dim == "cluster" and fam.integration_dim == 2
    ll = compiled(fam).unit_loglik(_theta(fam))
    np.testing.assert_allclose(ll, brute_cluster_loglik(df), atol=1e-6, rtol=0)


def test_zero_between_variance_is_the_single_level_gom():
    df = tiny()
    two = bm.gom(df, ["a", "b", "c"], 2, cluster="school", integration=bm.Integration("trapezoid", n_points=(161, 5)))
    one = bm.gom(df[["a", "b", "c"]], ["a", "b", "c"], 2, integration=bm.Integration("trapezoid", n_points=161))
    ll_two = compiled(two).unit_loglik(_theta(two, log_sd_b=-25.0)).sum()
    ll_one = compiled(one).unit_loglik(_theta(one)).sum()
    assert ll_two == pytest.approx(ll_one, abs=1e-9)


def test_memberships_and_simulation():
    df = tiny()
    fam = bm.gom(df, ["a", "b", "c"], 2, cluster="school", integration=bm.Integration("trapezoid", n_points=21))
    theta = _theta(fam)
    scores = compiled(fam).memberships(theta)["C"]
    assert scores.shape == (15, 2)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-12)
    item_post = fam.item_class_probs(theta)
    assert item_post.shape == (15, 3, 2)
    # the GoM score is the person's item-class posterior averaged with the prior's share
    # only for an item the person did not answer: there P(C_ij | y) = E[pi | y] = the score
    np.testing.assert_allclose(item_post[2, 1], scores[2], atol=1e-10)
    nat = compiled(fam).reported(theta)
    assert float(nat["psi_between"][0, 0]) == pytest.approx(SD_B**2)
    y, cls = fam.simulate(nat, np.random.default_rng(0))
    assert y.shape == (15, 3) and np.isnan(y).sum() == 2 and set(cls) <= {0, 1}


def test_two_level_arguments():
    df = tiny()
    with pytest.raises(bm.SpecificationError, match="n_classes=3"):
        bm.gom(df, ["a", "b", "c"], 3, cluster="school")
    with pytest.raises(bm.SpecificationError, match="adaptive"):
        bm.gom(df, ["a", "b", "c"], 2, cluster="school", integration="adaptive")
