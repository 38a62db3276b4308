"""Two-level FMA (K = 2; issue 9, part 5): persons i in clusters j, a cluster random
intercept b_j in the class logit, alpha_1 + beta x_ij + b_j, and the person factor
eta_ij (free factor variance). The nested integral (person inside cluster), the
persons' class posteriors given their cluster and the factor scores against a brute
force written here (Gauss-Legendre in both levels, itself checked against scipy's
adaptive quad), the zero-variance limit against the single-level FMA, the class
shares, the simulator, and argument errors."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import integrate as sint
from scipy import special, stats

import bayesmix as bm
from bayesmix.fit.compiled import compiled

F = importlib.import_module("bayesmix.families.fma")  # the module (bayesmix.families.fma is the factory)

ITEMS = ["a", "b", "c"]
DENSE = bm.Integration("trapezoid", n_points=(81, 81), bound=8.0)
TAU = np.array([[-1.2, 0.4, -0.6], [1.1, -0.3, 0.9]])  # (K, items)
LAM = np.array([1.3, 0.8, -0.6])
SD_ETA = np.array([1.6, 1.0])  # sd of eta in class 1 (free) and class 2 (the reference, 1)
ALPHA, BETA, SD_B = 0.3, -0.7, 0.9


def tiny():
    """5 clusters of 3 persons x 3 binary items, two missing cells, a covariate x."""
    rng = np.random.default_rng(8)
    y = (rng.random((15, 3)) < 0.5).astype(float)
    y[2, 1] = y[9, 0] = np.nan
    df = pd.DataFrame(y, columns=ITEMS)
    df["school"] = np.repeat(["s1", "s2", "s3", "s4", "s5"], 3)
    df["x"] = rng.normal(size=15)
    return df


# ------------------------------------------------------------------ brute force (written here)
def class_lik(y, c, eta):
    """prod_items P(y | C = c, eta) = F(lambda eta - tau) for y = 1 (y* = lambda eta + e > tau),
    at an array of eta; a missing item multiplies by 1."""
    out = np.ones_like(eta)
    for p, v in enumerate(y):
        if not np.isnan(v):
            p1 = special.expit(LAM[p] * eta - TAU[c, p])
            out = out * (p1 if v == 1 else 1 - p1)
    return out


X, W = np.polynomial.legendre.leggauss(200)
Z, WZ = 10 * X, 10 * W * stats.norm.pdf(10 * X)  # Gauss-Legendre on [-10, 10] against N(0, 1)


def person_terms(y, x):
    """(K, Q_b) P(C = c | x, b) ∫ f(y | c, eta) dN(eta; 0, sd_c^2) and (K, Q_b) the same with
    eta in the integrand, (K, Q_b) with eta^2, at the Gauss-Legendre nodes b = SD_B z."""
    pi1 = special.expit(ALPHA + BETA * x + SD_B * Z)
    prior = np.stack([pi1, 1 - pi1])
    out = []
    for m in range(3):
        f = np.array([np.sum(WZ * (SD_ETA[c] * Z) ** m * class_lik(y, c, SD_ETA[c] * Z)) for c in range(2)])
        out.append(prior * f[:, None])
    return out


def brute_force(df):
    """Per cluster log L_j; per person P(C_ij = c | Y_j) (N, K) and E[eta_ij | Y_j], sd."""
    ll, post, mean, sd = [], [], [], []
    for _, grp in df.groupby("school", sort=True):
        terms = [person_terms(y, x) for y, x in zip(grp[ITEMS].to_numpy(), grp["x"].to_numpy())]
        lik_b = np.array([t[0].sum(axis=0) for t in terms])  # (n_j, Q_b) L_i(b)
        l_j = np.sum(WZ * np.prod(lik_b, axis=0))
        ll.append(np.log(l_j))
        for i, t in enumerate(terms):
            rest = WZ * np.prod(np.delete(lik_b, i, axis=0), axis=0)  # the other persons, times the weight of b
            post.append(t[0] @ rest / l_j)
            m1, m2 = np.sum(t[1] @ rest) / l_j, np.sum(t[2] @ rest) / l_j
            mean.append(m1)
            sd.append(np.sqrt(m2 - m1**2))
    return np.array(ll), np.array(post), np.array(mean), np.array(sd)


def test_brute_force_rule_against_scipy_quad():
    """The Gauss-Legendre rule of the brute force against scipy's adaptive (nested) quad:
    one person's integral over eta, and one cluster's whole likelihood (quad over b of the
    product of the persons' quad integrals over eta)."""
    df = tiny()
    y, x = df[ITEMS].to_numpy(), df["x"].to_numpy()
    c = 0
    gl = np.sum(WZ * class_lik(y[2], c, SD_ETA[c] * Z))
    quad = sint.quad(lambda z: stats.norm.pdf(z) * class_lik(y[2], c, SD_ETA[c] * np.array([z]))[0], -10, 10,
                     epsabs=1e-14, epsrel=1e-13)[0]
    assert gl == pytest.approx(quad, rel=1e-11)

    # the class integrals over eta do not depend on b: quad once per person and class
    f = np.array([[sint.quad(lambda z: stats.norm.pdf(z) * class_lik(y[i], k, SD_ETA[k] * np.array([z]))[0],
                             -10, 10, epsabs=1e-14, epsrel=1e-12)[0] for k in range(2)] for i in range(3)])

    def person(i, b):
        pi1 = special.expit(ALPHA + BETA * x[i] + b)
        return pi1 * f[i, 0] + (1 - pi1) * f[i, 1]

    cluster = sint.quad(lambda z: stats.norm.pdf(z) * np.prod([person(i, SD_B * z) for i in range(3)]), -10, 10,
                        epsabs=1e-14, epsrel=1e-12)[0]
    assert brute_force(df)[0][0] == pytest.approx(np.log(cluster), abs=1e-11)


def _theta(fam, log_sd_b=np.log(SD_B)):
    point = {"tau": TAU, "lambda": LAM, "eta_log_sd": np.log(SD_ETA[:1]), "alpha": np.array([ALPHA]),
             "beta": np.array([[BETA]]), "log_sd_between": np.array(log_sd_b)}
    return compiled(fam).packing.pack({k: v for k, v in point.items() if k in fam.free_names})


@pytest.fixture(scope="module")
def dense():
    return F.fma(tiny(), ITEMS, 2, covariates=["x"], cluster="school", factor_variance="class", integration=DENSE)


@pytest.fixture(scope="module")
def want():
    return brute_force(tiny())


def test_nested_integral_matches_brute_force(dense, want):
    assert dense.unit_dim == "cluster" and dense.integration_dim == 2 and dense.spec.two_level
    assert dense.free_names == ["tau", "lambda", "eta_log_sd", "alpha", "beta", "log_sd_between"]
    ll = compiled(dense).unit_loglik(_theta(dense))
    assert ll.shape == (5,)
    np.testing.assert_allclose(ll, want[0], atol=1e-10, rtol=0)  # measured 2.5e-14


def test_memberships_and_factor_scores_given_the_cluster(dense, want):
    """P(C_ij = c | Y_j) and the EAP factor scores use the cluster's whole data (the other
    persons move b_j's posterior) against the brute force."""
    theta = _theta(dense)
    post = compiled(dense).memberships(theta)["C"]
    np.testing.assert_allclose(post, want[1], atol=1e-10, rtol=0)  # measured 6.7e-16
    scores = dense.factor_scores(theta)
    np.testing.assert_allclose(scores["eta"], want[2], atol=1e-10, rtol=0)  # measured 4.3e-14
    np.testing.assert_allclose(scores["eta_sd"], want[3], atol=1e-10, rtol=0)  # measured 1.9e-13


def test_reported_between_variance_and_shares(dense):
    """psi_between = sd_b^2; class shares = mean over persons of E_b P(C = 1 | x, b) (quad)."""
    nat = compiled(dense).reported(_theta(dense))
    assert nat["psi_between"].shape == (1, 1) and float(nat["psi_between"][0, 0]) == pytest.approx(SD_B**2, rel=1e-12)
    np.testing.assert_allclose(nat["eta_variance"], SD_ETA**2, rtol=1e-12)
    x = tiny()["x"].to_numpy()
    share1 = np.mean([sint.quad(lambda z: stats.norm.pdf(z) * special.expit(ALPHA + BETA * xi + SD_B * z), -12, 12,
                                epsabs=1e-14)[0] for xi in x])
    np.testing.assert_allclose(nat["class_share"], [share1, 1 - share1], atol=1e-9, rtol=0)
    assert dense.class_variables[0].logit_variance == "psi_between"


def test_zero_between_variance_is_the_single_level_fma(dense):
    """sd(b_j) -> 0 (e^-25): every cluster LL is the sum of its persons' single-level FMA LLs
    on the same person rule (81 trapezoid points on [-8, 8])."""
    df = tiny()
    one = F.fma(df.drop(columns="school"), ITEMS, 2, covariates=["x"], factor_variance="class",
                integration=bm.Integration("trapezoid", n_points=81, bound=8.0))
    ll_one = compiled(one).unit_loglik_only(_theta(one))
    ll_two = compiled(dense).unit_loglik(_theta(dense, log_sd_b=-25.0))
    np.testing.assert_allclose(ll_two, ll_one.reshape(5, 3).sum(axis=1), atol=1e-12, rtol=0)  # measured 1.8e-15


def test_default_and_gauss_hermite_rules(want):
    """The default rule (31 x 31 trapezoid points) and Gauss-Hermite 40 x 40 against the brute force."""
    for integration, tol in ((None, 1e-5), (bm.Integration("gauss_hermite", n_points=(40, 40)), 1e-6)):
        kwargs = {} if integration is None else {"integration": integration}
        fam = F.fma(tiny(), ITEMS, 2, covariates=["x"], cluster="school", factor_variance="class", **kwargs)
        err = np.max(np.abs(compiled(fam).unit_loglik_only(_theta(fam)) - want[0]))
        assert err < tol, (fam.describe_integration(), err)  # measured 2.3e-6 (default), 6.1e-8 (GH)


# ------------------------------------------------------------------ simulation
def test_simulator_shares_b_within_clusters():
    """simulate_fma with cluster_idx: the class share is E_b expit(alpha + b) and the variance
    of the clusters' class-1 proportions is Var_b(p) + E_b[p (1 - p)] / n (b shared by the
    cluster's persons), both by quad; 4000 clusters of 10."""
    truth = {"tau": TAU, "lambda": LAM, "alpha": np.array([ALPHA]), "psi_between": np.array([[2.0]])}
    cidx = np.repeat(np.arange(4000), 10)
    y, cls, _ = F.simulate_fma(truth, np.arange(3), cidx.size, "logit", np.random.default_rng(3), cluster_idx=cidx)
    assert y.shape == (40_000, 3)

    def moment(fn):
        return sint.quad(lambda z: stats.norm.pdf(z) * fn(special.expit(ALPHA + np.sqrt(2.0) * z)), -12, 12)[0]

    p1 = moment(lambda p: p)
    var = moment(lambda p: p**2) - p1**2 + moment(lambda p: p * (1 - p)) / 10
    props = np.bincount(cidx, weights=(cls == 0)) / 10
    assert abs(props.mean() - p1) < 4 * np.sqrt(var / 4000)
    # sd of a sample variance of 4000 near-normal values: var sqrt(2 / 4000) (generous factor 5)
    assert abs(props.var() - var) < 5 * var * np.sqrt(2 / 4000), (props.var(), var)
    # without cluster_idx the classes are independent: the cluster variance drops to p (1 - p) / 10
    _, cls0, _ = F.simulate_fma(truth, np.arange(3), cidx.size, "logit", np.random.default_rng(3))
    assert np.bincount(cidx, weights=(cls0 == 0)).var() / 100 < 0.6 * var


def test_family_simulate_keeps_missing_cells(dense):
    nat = compiled(dense).reported(_theta(dense))
    y, cls = dense.simulate(nat, np.random.default_rng(0))
    assert y.shape == (15, 3) and np.isnan(y).sum() == 2 and set(cls) <= {0, 1}


# ------------------------------------------------------------------ errors
def test_two_level_arguments():
    df = tiny()
    cases = [
        (dict(n_classes=3), "n_classes=3"),
        (dict(n_classes=1), "n_classes=1"),
        (dict(integration="adaptive"), "adaptive"),
        (dict(integration="qmc"), "qmc"),
        (dict(integration=bm.Integration("monte_carlo")), "monte_carlo"),
        (dict(integration=bm.Integration("trapezoid", n_points=(15, 15, 15))), "n_points"),
    ]
    for kwargs, match in cases:
        with pytest.raises(bm.SpecificationError, match=match):
            F.fma(df, ITEMS, **({"n_classes": 2, "cluster": "school"} | kwargs))
    prepared = bm.data.prepare_wide(df, ITEMS, cluster="school")
    with pytest.raises(bm.SpecificationError, match="n_classes=3"):
        F.fma(prepared, n_classes=3)
    two = F.fma(prepared, n_classes=2, integration=bm.Integration("gauss_hermite", n_points=(9, 7)))
    assert two.is_two_level and two.describe_integration().startswith("gauss_hermite (9x7 points")


# ------------------------------------------------------------------ recovery (slow)
@pytest.mark.slow
def test_recovery_two_level():
    """100 clusters x 10 persons x 10 binary items, K = 2, invariant loadings, free factor
    variance, psi_between = 1.5: the 33 estimates within 2 SE of the truth for most (at most
    3 beyond 2 SE, none beyond 3.5), and the two-level LL above the single-level FMA's."""
    import time
    import warnings

    rng = np.random.default_rng(11)
    shift = np.linspace(-0.8, 0.8, 10)
    tau, lam = np.vstack([-1.0 + shift, 1.2 - shift]), np.linspace(0.8, 1.8, 10)
    truth = {"tau": tau, "lambda": lam, "eta_variance": np.array([0.5, 1.0]), "alpha": np.array([0.3]),
             "psi_between": np.array([[1.5]])}
    cidx = np.repeat(np.arange(100), 10)
    y, _, _ = F.simulate_fma(truth, np.arange(10), 1000, "logit", rng, cluster_idx=cidx)
    df = pd.DataFrame(y, columns=[f"u{i + 1}" for i in range(10)]).assign(school=cidx)
    items = [f"u{i + 1}" for i in range(10)]
    fam = F.fma(df, items, 2, cluster="school", factor_variance="class")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res_one = bm.fit_ml(F.fma(df[items], items, 2, factor_variance="class"), n_starts=6, n_final=2, seed=1,
                            progress=False)
        t0 = time.perf_counter()
        res = bm.fit_ml(fam, n_starts=8, n_final=3, seed=2, progress=False)
        elapsed = time.perf_counter() - t0
    raw_truth = {"tau": tau, "lambda": lam, "eta_log_sd": np.log(np.sqrt([0.5])), "alpha": np.array([0.3]),
                 "log_sd_between": np.array(np.log(np.sqrt(1.5)))}
    est_tau = res.natural["tau"]
    if np.abs(est_tau - tau).sum() > np.abs(est_tau - tau[::-1]).sum():  # the other labelling: move the truth
        raw_truth = fam.permute_classes(raw_truth, np.array([1, 0]))
    if res.natural["lambda"].sum() < 0:  # the other sign of eta
        raw_truth["lambda"] = -raw_truth["lambda"]
    want = compiled(fam).reported(compiled(fam).packing.pack(raw_truth))
    p = res.params
    z = []
    for name in ("tau", "lambda", "eta_variance", "alpha", "psi_between"):
        rows = p[p.parameter == name]
        w = np.ravel(want[name])
        keep = rows["se"].to_numpy() > 0  # the reference class's variance is fixed at 1
        z.append(((rows["estimate"].to_numpy() - w) / rows["se"].to_numpy())[keep])
    z = np.concatenate(z)
    print(f"recovery: {z.size} parameters, {np.sum(np.abs(z) <= 2)} within 2 SE, max |z| {np.abs(z).max():.2f}, "
          f"psi_between {float(res.natural['psi_between'][0, 0]):.3f} (truth 1.5), LL {res.loglik:.2f} "
          f"(single level {res_one.loglik:.2f}), fit {elapsed:.1f} s")
    assert res.loglik > res_one.loglik
    assert z.size == 33 and np.isfinite(z).all(), z
    assert np.sum(np.abs(z) > 2) <= 3 and np.all(np.abs(z) < 3.5), np.round(z, 2)
