"""mixture_regression and within_between: every likelihood path against brute
force (multivariate normal densities, class enumeration, scipy quad/dblquad) on
tiny data, the paper's special-case identities, set_data, and input errors."""


import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesmix as bm
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.compiled import compiled


def tiny_frame(n_clusters=5, size=3, seed=0, binary=False, ordinal=False):
    rng = np.random.default_rng(seed)
    n = n_clusters * size
    g = np.repeat(np.arange(n_clusters), size)
    x = rng.standard_normal(n)
    df = pd.DataFrame({"g": [f"s{j}" for j in g], "x": x, "w": rng.standard_normal(n_clusters)[g],
                       "xc": rng.standard_normal(n)})
    eta = 0.5 * x + rng.standard_normal(n_clusters)[g]
    df["y"] = eta + rng.standard_normal(n)
    if binary:
        df["b"] = (rng.random(n) < special.expit(eta)).astype(int)
    if ordinal:
        df["o"] = np.digitize(eta + rng.logistic(size=n), [-0.5, 0.7])
    return df


def ll_at(model, point):
    comp = compiled(model)
    theta = comp.packing.pack(point)
    return comp.unit_loglik(theta), comp.reported(theta)


def random_point(model, seed=1, **over):
    point = model.start_point(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    for name in ("beta_class", "gamma", "gamma_cd", "v_offdiag", "beta_between", "mu_between"):
        if name in point:
            point[name] = rng.normal(0, 0.5, size=np.shape(point[name]))
    if "alpha" in point:
        point["alpha"] = rng.normal(0, 0.7, size=point["alpha"].shape)
    point.update(over)
    return point


# --------------------------------------------------------------------------- analytic path
@pytest.fixture(scope="module")
def between_model():
    """Between class, random intercept and slope (full V, class-specific, eq. 18),
    a cluster covariate on the random effects (eq. 5) and on the class (eq. 17)."""
    df = tiny_frame(seed=1)
    return df, bm.mixture_regression(df, "y", ["x"], 2, cluster="g", class_level="between",
                                     random=["intercept", "x"], cluster_covariates=["w"], class_covariates=["w"],
                                     class_specific_variance=True)


def test_between_analytic_matches_multivariate_normal(between_model):
    df, m = between_model
    assert m.path == "analytic"
    ll, nat = ll_at(m, random_point(m))
    y, x, w = df.y.to_numpy(), df.x.to_numpy(), df.w.to_numpy()
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()
        wj = w[s][0]
        log_prior = special.log_softmax(np.append(nat["alpha"] + nat["beta_class"][:, 0] * wj, 0.0))
        z = np.column_stack([np.ones(s.sum()), x[s]])
        terms = []
        for c in range(2):
            shift = nat["gamma"][:, 0] * wj  # means of intercept and slope from w_j (eq. 5)
            mean = nat["mu"][c, 0] + shift[0] + (nat["beta"][c, 0, 0] + shift[1]) * x[s]
            cov = nat["theta"][0] * np.eye(s.sum()) + z @ nat["v"][c] @ z.T
            terms.append(log_prior[c] + stats.multivariate_normal.logpdf(y[s], mean, cov))
        expected.append(special.logsumexp(terms))
    np.testing.assert_allclose(ll, expected, rtol=0, atol=1e-8)


def test_between_analytic_with_zero_variance_is_finite(between_model):
    """V at 0 (the Table 2, v = 0 design): the Woodbury form stays exact."""
    df, m = between_model
    point = random_point(m, v_log_sd=np.full((2, 2), -30.0), v_offdiag=np.zeros((2, 1)))
    ll, nat = ll_at(m, point)
    y, x, w = df.y.to_numpy(), df.x.to_numpy(), df.w.to_numpy()
    g = pd.factorize(df.g)[0]
    log_prior = special.log_softmax(np.column_stack([nat["alpha"] + nat["beta_class"][:, 0] * w, np.zeros(len(w))]), 1)
    shift = np.outer(w, nat["gamma"][:, 0])
    lf = np.column_stack([stats.norm.logpdf(y, nat["mu"][c, 0] + shift[:, 0] + (nat["beta"][c, 0, 0] + shift[:, 1]) * x,
                                            np.sqrt(nat["theta"][0])) for c in range(2)])
    per_cluster = np.stack([lf[g == j].sum(0) + log_prior[g == j][0] for j in range(g.max() + 1)])
    np.testing.assert_allclose(ll, special.logsumexp(per_cluster, axis=1), atol=1e-8)


def test_between_membership_per_cluster(between_model):
    df, m = between_model
    point = random_point(m)
    comp = compiled(m)
    theta = comp.packing.pack(point)
    post = comp.cluster_membership(theta)
    assert post.shape == (5, 2)
    np.testing.assert_allclose(post.sum(1), 1.0)
    person = comp.membership(theta)
    np.testing.assert_allclose(person, post[pd.factorize(df.g)[0]])


# --------------------------------------------------------------------------- quadrature paths
@pytest.fixture(scope="module")
def within_between_frame():
    return tiny_frame(n_clusters=4, size=3, seed=2)


@pytest.fixture(scope="module")
def model6(within_between_frame):
    """Model 6: within class, random class-logit intercept, random outcome intercept (2-D)."""
    return bm.mixture_regression(within_between_frame, "y", ["x"], 2, cluster="g", class_level="within-between",
                                 random=["intercept"], integration=bm.Integration("trapezoid", n_points=41, bound=7))


def test_within_between_matches_dblquad(within_between_frame, model6):
    df = within_between_frame
    assert model6.path == "quadrature"
    ll, nat = ll_at(model6, random_point(model6, chol_log_diag=np.array([0.4])))
    y, x = df.y.to_numpy(), df.x.to_numpy()
    v, psi, th = nat["v"][0, 0], nat["psi"][0, 0], nat["theta"][0]
    mu, b, a = nat["mu"][:, 0], nat["beta"][:, 0, 0], nat["alpha"][0]
    # a dense Gauss-Legendre product rule on +-9 sd in both dimensions (300 x 300 points;
    # it equals scipy's dblquad at epsrel 1e-11 to 2e-14 per cluster, 10 times faster)
    nodes, weights = np.polynomial.legendre.leggauss(300)
    ua, uy = 9 * np.sqrt(psi) * nodes, 9 * np.sqrt(v) * nodes
    w2 = np.outer(weights * 9 * np.sqrt(psi) * stats.norm.pdf(ua, 0, np.sqrt(psi)),
                  weights * 9 * np.sqrt(v) * stats.norm.pdf(uy, 0, np.sqrt(v)))
    p1 = special.expit(a + ua)[:, None, None]
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()
        d1 = stats.norm.pdf(y[s][None, :], mu[0] + uy[:, None] + b[0] * x[s][None, :], np.sqrt(th))  # (Ny, n)
        d2 = stats.norm.pdf(y[s][None, :], mu[1] + uy[:, None] + b[1] * x[s][None, :], np.sqrt(th))
        log_lik = np.log(p1 * d1[None] + (1 - p1) * d2[None]).sum(axis=-1)  # (Na, Ny)
        expected.append(np.log(np.sum(w2 * np.exp(log_lik))))
    np.testing.assert_allclose(ll, expected, atol=1e-6)


def test_within_between_with_zero_variance_equals_within(within_between_frame, model6):
    """Table 4: Var(alpha_cj) = 0 is the within class; same LL as the within model."""
    within = bm.mixture_regression(within_between_frame, "y", ["x"], 2, cluster="g", class_level="within",
                                   random=["intercept"], integration=bm.Integration("trapezoid", n_points=41, bound=7))
    point = random_point(within)
    ll_w, _ = ll_at(within, point)
    ll_wb, _ = ll_at(model6, {**point, "chol_log_diag": np.array([-30.0])})
    np.testing.assert_allclose(ll_wb, ll_w, atol=1e-10)
    # and the within model itself against 1-D quadrature
    _, nat = ll_at(within, point)
    df = within_between_frame
    y, x = df.y.to_numpy(), df.x.to_numpy()
    p1 = special.expit(nat["alpha"][0])
    sd = np.sqrt(nat["v"][0, 0])
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()

        def f(u):
            dens = sum(p * stats.norm.pdf(y[s], nat["mu"][c, 0] + u + nat["beta"][c, 0, 0] * x[s],
                                          np.sqrt(nat["theta"][0])) for c, p in enumerate((p1, 1 - p1)))
            return np.prod(dens) * stats.norm.pdf(u, 0, sd)

        expected.append(np.log(integrate.quad(f, -10 * sd, 10 * sd, epsabs=1e-14, epsrel=1e-12)[0]))
    np.testing.assert_allclose(ll_at(within, point)[0], expected, atol=1e-6)


def test_random_intercept_logistic_glmm_matches_adaptive_quadrature():
    """n_classes = 1, binary outcome, random intercept: a random-intercept logistic
    GLMM, against scipy's adaptive quadrature (the paper's special case)."""
    df = tiny_frame(n_clusters=5, size=4, seed=3, binary=True)
    m = bm.mixture_regression(df, "b", ["x"], 1, cluster="g", random=["intercept"], integration="adaptive")
    assert m.path == "quadrature" and m.free_names == ["tau", "beta", "v_log_sd"]
    tau, slope, sd = -0.3, 0.8, np.exp(0.2)
    ll, _ = ll_at(m, {"tau": np.array([[tau]]), "beta": np.array([[[slope]]]), "v_log_sd": np.array([0.2])})
    b, x = df.b.to_numpy(), df.x.to_numpy()
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()

        def f(u):  # P(y = 1) = 1 - F(tau - eta) = expit(eta - tau)
            p = special.expit(slope * x[s] + u - tau)
            return np.prod(np.where(b[s] == 1, p, 1 - p)) * stats.norm.pdf(u, 0, sd)

        expected.append(np.log(integrate.quad(f, -12 * sd, 12 * sd, epsabs=1e-15, epsrel=1e-12)[0]))
    np.testing.assert_allclose(ll, expected, atol=1e-6)


def test_ordinal_within_and_between_direct_paths_match_enumeration():
    """Ordinal outcome, no random effects: within (per person) and between (per
    cluster) class sums enumerated in numpy; K = 1 between equals K = 1 within."""
    df = tiny_frame(seed=4, ordinal=True)
    mw = bm.mixture_regression(df, "o", ["x"], 2, cluster="g", class_level="within", class_covariates=["xc"])
    mb = bm.mixture_regression(df, "o", ["x"], 2, cluster="g", class_level="between")
    o, x, xc = df.o.to_numpy(), df.x.to_numpy(), df.xc.to_numpy()
    g = pd.factorize(df.g)[0]

    def log_f(tau, slope):  # (N,) log P(o | class) with P(o <= k) = F(tau_k - eta)
        cdf = np.column_stack([np.zeros(len(o)), special.expit(tau[None, :] - slope * x[:, None]), np.ones(len(o))])
        return np.log(cdf[np.arange(len(o)), o + 1] - cdf[np.arange(len(o)), o])

    for m in (mw, mb):
        assert m.path == "direct"
        ll, nat = ll_at(m, random_point(m))
        lf = np.column_stack([log_f(nat["tau"][c], nat["beta"][c, 0, 0]) for c in range(2)])
        if m is mw:
            lp = special.log_softmax(np.column_stack([nat["alpha"][0] + nat["beta_class"][0, 0] * xc,
                                                      np.zeros(len(o))]), axis=1)
            expected = np.bincount(g, special.logsumexp(lf + lp, axis=1))
        else:
            lp = special.log_softmax(np.append(nat["alpha"], 0.0))
            expected = special.logsumexp(np.stack([np.bincount(g, lf[:, c]) for c in range(2)], 1) + lp, axis=1)
        np.testing.assert_allclose(ll, expected, atol=1e-10)


def test_between_binary_with_random_intercept_matches_quad():
    """Between class with a categorical outcome: quadrature per class."""
    df = tiny_frame(n_clusters=4, size=3, seed=5, binary=True)
    m = bm.mixture_regression(df, "b", None, 2, cluster="g", class_level="between", random=["intercept"],
                              class_specific_variance=True, integration=bm.Integration("trapezoid", n_points=61, bound=8))
    assert m.path == "quadrature"
    ll, nat = ll_at(m, random_point(m, v_log_sd=np.array([[0.3], [-0.2]])))
    b = df.b.to_numpy()
    lp = special.log_softmax(np.append(nat["alpha"], 0.0))
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()
        terms = []
        for c in range(2):
            sd = np.sqrt(nat["v"][c, 0, 0])

            def f(u, c=c, sd=sd):
                p = special.expit(u - nat["tau"][c, 0])
                return np.prod(np.where(b[s] == 1, p, 1 - p)) * stats.norm.pdf(u, 0, sd)

            terms.append(lp[c] + np.log(integrate.quad(f, -12 * sd, 12 * sd, epsabs=1e-15)[0]))
        expected.append(special.logsumexp(terms))
    np.testing.assert_allclose(ll, expected, atol=1e-6)


# --------------------------------------------------------------------------- section 6
def test_within_between_classes_direct_matches_enumeration():
    """C_ij and D_j (eq. 22-26) without random effects: enumerate D per cluster and
    C per person."""
    df = tiny_frame(seed=6)
    m = bm.within_between(df, "y", ["x"], 2, 2, cluster="g", between_covariates=["w"])
    assert m.path == "direct" and m.family == "within_between"
    ll, nat = ll_at(m, random_point(m))
    y, x, w = df.y.to_numpy(), df.x.to_numpy(), df.w.to_numpy()
    g = pd.factorize(df.g)[0]
    lf = np.column_stack([stats.norm.logpdf(y, nat["mu"][c, 0] + nat["beta"][c, 0, 0] * x, np.sqrt(nat["theta"][0]))
                          for c in range(2)])
    expected = []
    for j in range(g.max() + 1):
        s = g == j
        log_pd = special.log_softmax([nat["alpha_between"][0] + nat["beta_between"][0, 0] * w[s][0], 0.0])
        per_d = []
        for d in range(2):
            gam = nat["gamma_cd"][0, 0] if d == 0 else 0.0
            log_pc = special.log_softmax([nat["alpha"][0] + gam, 0.0])
            per_d.append(log_pd[d] + special.logsumexp(lf[s] + log_pc, axis=1).sum())
        expected.append(special.logsumexp(per_d))
    np.testing.assert_allclose(ll, expected, atol=1e-10)
    post = compiled(m).cluster_membership(compiled(m).packing.pack(random_point(m)))
    assert post.shape == (5, 2)


# --------------------------------------------------------------------------- set_data, errors
def test_set_data_reuses_compiled_functions(between_model):
    df, m = between_model
    new = tiny_frame(seed=11)
    new["w"] = df["w"].to_numpy()
    fresh = bm.mixture_regression(new, "y", ["x"], 2, cluster="g", class_level="between", random=["intercept", "x"],
                                  cluster_covariates=["w"], class_covariates=["w"], class_specific_variance=True)
    point = random_point(m)
    comp = compiled(m)
    before = comp.unit_loglik(comp.packing.pack(point))
    m.set_data(new)
    try:
        after = comp.unit_loglik(comp.packing.pack(point))
        np.testing.assert_allclose(after, ll_at(fresh, point)[0], atol=1e-10)
        assert not np.allclose(after, before)
        with pytest.raises(SpecificationError, match="differ in structure"):
            m.set_data(tiny_frame(n_clusters=6, seed=1))
    finally:
        m.set_data(df)


@pytest.mark.parametrize("kwargs, match", [
    (dict(class_level="between", class_covariates=["xc"]), "class_covariates: column 'xc' varies within cluster"),
    (dict(class_level="sideways"), "class_level: got 'sideways'; valid choices"),
    (dict(random=["z"]), "random: got 'z'; valid terms are 'intercept'"),
    (dict(random=["intercept"], cluster=None), "random: needs a two-level model"),
    (dict(class_specific_variance=True, random=["intercept"]),
     "class_specific_variance: got True with class_level='within'"),
    (dict(cluster_covariates=["w"]), "cluster_covariates: they predict the random effects"),
    (dict(random=["intercept"], cluster_covariates=["xc"]), "cluster_covariates: column 'xc' varies"),
    (dict(re_cov="banded"), "re_cov: got 'banded'"),
])
def test_specification_errors(kwargs, match):
    df = tiny_frame()
    kw = {"cluster": "g", **kwargs}
    with pytest.raises(SpecificationError, match=match):
        bm.mixture_regression(df, "y", ["x"], 2, **kw)


def test_within_between_needs_two_between_classes():
    with pytest.raises(SpecificationError, match="n_between: got 1"):
        bm.within_between(tiny_frame(), "y", ["x"], 2, 1, cluster="g")


# --------------------------------------------------------------------------- more paths and identities
def test_two_normal_outcomes_with_correlated_random_intercepts():
    """Several outcomes: one covariance V across the outcomes' random intercepts
    (eq. 5), analytic path with K = 1 against the multivariate normal."""
    df = tiny_frame(seed=7)
    df["y2"] = 0.3 * df["y"] + np.random.default_rng(8).standard_normal(len(df))
    df.loc[2, "y2"] = np.nan  # a missing outcome: full-information likelihood
    m = bm.mixture_regression(df, ["y", "y2"], ["x"], 1, cluster="g", random=["intercept"])
    assert m.path == "analytic"
    ll, nat = ll_at(m, random_point(m))
    y = df[["y", "y2"]].to_numpy()
    x = df.x.to_numpy()
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()
        obs = ~np.isnan(y[s])
        mean = nat["mu"][0][None, :] + x[s][:, None] * nat["beta"][0, :, 0][None, :]
        # stacked (person, outcome) vector; z picks the outcome's random intercept
        z = np.kron(np.ones((s.sum(), 1)), np.eye(2))
        cov = np.diag(np.tile(nat["theta"], s.sum())) + z @ nat["v"] @ z.T
        keep = obs.reshape(-1)
        expected.append(stats.multivariate_normal.logpdf(y[s].reshape(-1)[keep], mean.reshape(-1)[keep],
                                                         cov[np.ix_(keep, keep)]))
    np.testing.assert_allclose(ll, expected, atol=1e-8)


def test_within_between_classes_with_random_intercept_match_quad():
    """Section 6 with a random intercept whose mean and variance depend on D
    (eq. 25): quadrature per D class against scipy quad."""
    df = tiny_frame(n_clusters=3, size=3, seed=9)
    m = bm.within_between(df, "y", None, 2, 2, cluster="g", random=["intercept"], class_specific_variance=True,
                          integration=bm.Integration("trapezoid", n_points=61, bound=8))
    assert m.path == "quadrature"
    ll, nat = ll_at(m, random_point(m, v_log_sd=np.array([[0.2], [-0.3]])))
    y = df.y.to_numpy()
    expected = []
    for j in pd.unique(df.g):
        s = (df.g == j).to_numpy()
        log_pd = special.log_softmax([nat["alpha_between"][0], 0.0])
        per_d = []
        for d in range(2):
            sd = np.sqrt(nat["v"][d, 0, 0])
            kappa = nat["mu_between"][0, 0] if d == 0 else 0.0
            pc = special.softmax([nat["alpha"][0] + (nat["gamma_cd"][0, 0] if d == 0 else 0.0), 0.0])

            def f(u, pc=pc, kappa=kappa, sd=sd):
                dens = sum(pc[c] * stats.norm.pdf(y[s], nat["mu"][c, 0] + u, np.sqrt(nat["theta"][0])) for c in range(2))
                return np.prod(dens) * stats.norm.pdf(u, kappa, sd)

            per_d.append(log_pd[d] + np.log(integrate.quad(f, kappa - 12 * sd, kappa + 12 * sd, epsabs=1e-15)[0]))
        expected.append(special.logsumexp(per_d))
    np.testing.assert_allclose(ll, expected, atol=1e-6)


def test_model6_with_huge_alpha_variance_equals_model5():
    """Eq. (21) / Table 4: Model 6 (within-between) tends to Model 5 (between) as
    Var(alpha_1) -> infinity. At sd 2000, with the class share matched through
    alpha = sd * Phi^-1(P(C = 1)), the LLs agree to 1e-2 (the gap shrinks like
    1/sd); the alpha dimension needs a grid fine enough to resolve 1/sd."""
    df = tiny_frame(n_clusters=4, size=3, seed=12)
    m5 = bm.mixture_regression(df, "y", ["x"], 2, cluster="g", class_level="between", random=["intercept"])
    m6 = bm.mixture_regression(df, "y", ["x"], 2, cluster="g", class_level="within-between", random=["intercept"],
                               integration=bm.Integration("trapezoid", n_points=(21, 20001), bound=6))
    point = random_point(m5)
    ll5, _ = ll_at(m5, point)
    gaps = []
    for sd in (200.0, 2000.0):
        alpha6 = sd * stats.norm.ppf(special.expit(point["alpha"][0]))
        ll6, _ = ll_at(m6, {**point, "alpha": np.array([alpha6]), "chol_log_diag": np.array([np.log(sd)])})
        gaps.append(abs(ll6.sum() - ll5.sum()))
    assert gaps[1] < 1e-2
    assert gaps[1] < gaps[0] / 5  # converging like 1/sd


def test_between_with_one_class_equals_the_one_class_model():
    """Table 4 / eq. (16): a between class with K = 1 is the 1-class model, and a
    2-class between model with equal classes has the same likelihood."""
    df = tiny_frame(seed=13)
    one = bm.mixture_regression(df, "y", ["x"], 1, cluster="g", class_level="between", random=["intercept", "x"])
    one_w = bm.mixture_regression(df, "y", ["x"], 1, cluster="g", random=["intercept", "x"])
    two = bm.mixture_regression(df, "y", ["x"], 2, cluster="g", class_level="between", random=["intercept", "x"])
    p1 = random_point(one)
    ll1, _ = ll_at(one, p1)
    np.testing.assert_allclose(ll_at(one_w, p1)[0], ll1, atol=1e-12)
    p2 = {**p1, "mu": np.repeat(p1["mu"], 2, axis=0), "beta": np.repeat(p1["beta"], 2, axis=0),
          "alpha": np.array([0.7])}
    np.testing.assert_allclose(ll_at(two, p2)[0], ll1, atol=1e-10)


@pytest.mark.filterwarnings("ignore::bayesmix.StartsWarning")
def test_check_integration_reevaluates_under_other_rules(within_between_frame):
    """bm.check_integration: the LL at the fitted values under another rule is the
    LL of the model built with that rule; exact paths are refused."""
    df = within_between_frame
    coarse = bm.mixture_regression(df, "y", ["x"], 2, cluster="g", random=["intercept"],
                                   integration=bm.Integration("trapezoid", n_points=5))
    res = bm.fit_ml(coarse, n_starts=2, n_final=1, seed=0, progress=False)
    fine = bm.Integration("trapezoid", n_points=41, bound=7)
    table = bm.check_integration(res, [fine])
    assert len(table) == 2 and table["difference"].iloc[0] == 0.0
    direct = bm.mixture_regression(df, "y", ["x"], 2, cluster="g", random=["intercept"], integration=fine)
    expected = compiled(direct).ll_and_grad(res.theta)[0]
    assert table["loglik"].iloc[1] == pytest.approx(expected, abs=1e-10)
    assert table["difference"].iloc[1] == pytest.approx(expected - res.loglik, abs=1e-10)
    assert abs(table["difference"].iloc[1]) > 1e-6  # 5 points are visibly coarse
    text = res.summary()  # the Mplus-style summary names the outcomes and the integration used
    assert "Number of outcomes" in text and "trapezoid (5 points per dimension, 1 dimension(s)" in text
    assert "Random-coefficient (co)variances V (eq. 5)" in text and "y:intercept  " in text
    exact = bm.mixture_regression(df, "y", ["x"], 1, cluster="g", random=["intercept"])
    with pytest.raises(SpecificationError, match="integrates nothing numerically"):
        bm.check_integration(bm.fit_ml(exact, n_starts=1, n_final=1, progress=False), ["adaptive"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(covariates=["x", "x"]), "covariates: got 'x' more than once"),
    (dict(random=["intercept"], cluster_covariates=["x"]), "cluster_covariates: column 'x' is also in `covariates`"),
    (dict(n_classes=1, class_covariates=["xc"]), "class_covariates: got \\['xc'\\] with n_classes=1"),
    (dict(class_level="between", class_specific_variance=True), "class_specific_variance: got True without random"),
])
def test_more_specification_errors(kwargs, match):
    kw = {"covariates": ["x"], "n_classes": 2, "cluster": "g", **kwargs}
    with pytest.raises(SpecificationError, match=match):
        bm.mixture_regression(tiny_frame(), "y", **kw)


def test_constant_covariate_is_refused():
    df = tiny_frame()
    df["c0"] = 1.0
    with pytest.raises(bm.DataError, match="c0: the column is constant"):
        bm.mixture_regression(df, "y", ["c0"], 1)
    with pytest.raises(SpecificationError, match="n_between: a between class D with n_classes=1"):
        bm.within_between(df, "y", ["x"], 1, 2, cluster="g")


def test_data_errors_name_the_outcomes_argument():
    df = tiny_frame()
    with pytest.raises(bm.DataError, match="also listed in `outcomes`"):
        bm.mixture_regression(df, "y", ["y"], 1)
    with pytest.raises(bm.DataError, match="^outcomes: column 'nope'"):
        bm.mixture_regression(df, "nope", ["x"], 1)


def test_bound_warning_explains_a_variance_at_its_bound():
    from bayesmix import families
    from bayesmix.fit.ml import bound_reasons

    lca_two = families.example("lca", True)
    assert "deterministic responses" in bound_reasons(lca_two, ["tau"])
    assert "class_level='between'" in bound_reasons(lca_two, ["chol_log_diag"])
    reg = families.example("mixture_regression", True)
    assert reg.free_info("v_log_sd").bounds == (-8.0, 6.0)
    assert "variance at 0" in bound_reasons(reg, ["v_log_sd", "v_log_sd"])
    assert bound_reasons(reg, ["alpha"]) == ""  # unbounded: nothing to explain
