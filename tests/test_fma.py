"""Factor mixture analysis (paper section 8, eq. 36-37): the likelihood, class
posteriors and marginal item probabilities against scipy quadrature over eta with
an explicit class sum (both loadings options, a free factor variance, ordinal items,
a covariate, missing items), the nestings (all loadings 0 = the LCA; K = 1 = a 2PL
written here), Table 6's parameter counts, relabelling and the sign of eta, argument
errors, and the registry checks on ``fma.example()`` (test_registry.py runs the deep
ones on the two-level example only)."""

from __future__ import annotations

import importlib
import itertools
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate as sint
from scipy import special, stats

import bayesmix as bm
import bayesmix.families
import registry_checks as rc
from bayesmix.fit.compiled import compiled

F = importlib.import_module("bayesmix.families.fma")  # the module (bayesmix.families.fma is the factory)

DENSE = bm.Integration(rule="trapezoid", n_points=801, bound=9.0)


# ------------------------------------------------------------------ tiny data and brute force
def tiny_data(ordinal: bool = False, seed: int = 3):
    """30 persons x 5 items (item 5 ordinal with 3 categories when ``ordinal``),
    six missing cells, a covariate x."""
    rng = np.random.default_rng(seed)
    eta = rng.standard_normal(30)
    cls = rng.uniform(size=30) < 0.4
    y = (rng.logistic(size=(30, 5)) < 0.9 * eta[:, None] + np.where(cls, 1.0, -0.5)[:, None]).astype(float)
    if ordinal:
        y[:, 4] = np.digitize(eta + rng.normal(0, 0.7, 30), [-0.5, 0.6])
    for r, c in [(0, 1), (3, 4), (7, 0), (7, 2), (12, 3), (20, 4)]:
        y[r, c] = np.nan
    df = pd.DataFrame(y, columns=[f"y{i + 1}" for i in range(5)])
    df["x"] = rng.normal(size=30)
    return df


ITEMS = [f"y{i + 1}" for i in range(5)]


def cat_prob(tau_item, y, shift, link):
    """P(y = k | c, eta) = F(tau_(k+1) - lambda eta) - F(tau_k - lambda eta), tau_0 = -inf,
    tau_m = +inf (y* = lambda eta + e, y = k iff tau_k < y* < tau_(k+1)), ``shift`` = lambda eta."""
    cdf = special.expit if link == "logit" else stats.norm.cdf
    t = np.concatenate([[-np.inf], np.asarray(tau_item, float), [np.inf]])
    k = int(y)
    return cdf(t[k + 1] - shift) - cdf(t[k] - shift)


def class_liks(y, tau, lam, sd, link, n_thr, moment=0):
    """(N, K) ∫ eta^moment prod_i P(y_ji | c, eta) dN(eta; 0, sd_c^2) for every person and
    class, by adaptive quadrature over eta (scipy ``quad_vec``, one vector-valued integrand)."""
    k = tau.shape[0]
    lam = np.broadcast_to(lam, (k, y.shape[1]))

    def integrand(eta):
        out = np.tile(eta**moment * stats.norm.pdf(eta, 0.0, np.asarray(sd, float)), (len(y), 1))  # (N, K)
        start = 0
        for i in range(y.shape[1]):
            sl = slice(start, start + n_thr[i])
            start += n_thr[i]
            # (K, m) P(y_i = k | c, eta); a missing response multiplies by 1
            probs = np.array([[cat_prob(tau[c, sl], m, lam[c, i] * eta, link) for m in range(n_thr[i] + 1)]
                              for c in range(k)])
            seen = ~np.isnan(y[:, i])
            out[seen] *= probs[:, y[seen, i].astype(int)].T
        return out

    bound = 12 * max(sd)
    val, _ = sint.quad_vec(integrand, -bound, bound, epsabs=1e-14, epsrel=1e-12, limit=400)
    return val


def brute_force(df, tau, lam, sd, logits, link, n_thr):
    """(N,) log L_j and (N, K) P(C_j = c | y_j): explicit sum over the classes of the
    class prior (softmax of ``logits`` (N, K-1) with the last class 0) times the quad integral."""
    y = df[ITEMS].to_numpy()
    k = tau.shape[0]
    lik = class_liks(y, tau, lam, sd, link, n_thr)
    prior = special.softmax(np.concatenate([np.broadcast_to(logits, (len(y), k - 1)), np.zeros((len(y), 1))],
                                           axis=1), axis=1)
    joint = prior * lik
    return np.log(joint.sum(axis=1)), joint / joint.sum(axis=1, keepdims=True)


def raw_point(fam, tau, lam, alpha=None, beta=None, eta_log_sd=None):
    point = {"lambda": np.asarray(lam, float)}
    if fam.thresholds.ordinal:
        raw = np.asarray(tau, float).copy()
        later = fam.thresholds.thr_k > 0
        raw[:, later] = np.log(np.diff(tau, axis=1)[:, later[1:]])
        point["tau_raw"] = raw
    else:
        point["tau"] = np.asarray(tau, float)
    for name, v in (("alpha", alpha), ("beta", beta), ("eta_log_sd", eta_log_sd)):
        if v is not None:
            point[name] = np.asarray(v, float)
    return compiled(fam).packing.pack(point)


TAU2 = np.array([[-1.2, 0.4, -0.6, 0.3, -0.9], [1.0, 1.6, 0.9, 0.2, 1.4]])
LAM = np.array([1.3, 0.7, 1.8, -0.4, 1.1])
TAU3 = np.vstack([TAU2, [0.2, -0.5, 1.1, -1.3, 0.0]])
# ordinal item 5: two ordered thresholds per class
TAU_ORD = np.array([[-1.2, 0.4, -0.6, 0.3, -0.9, 0.5], [1.0, 1.6, 0.9, 0.2, -0.2, 1.7]])
LAM_CLASS = np.array([[1.3, 0.7, 1.8, -0.4, 1.1], [0.4, 1.5, 0.2, 0.9, 2.0]])


@pytest.fixture(scope="module")
def fam_inv():
    return F.fma(tiny_data(), ITEMS, 2, integration=DENSE)


@pytest.fixture(scope="module")
def fam_class_ordinal():
    return F.fma(tiny_data(ordinal=True), ITEMS, 2, link="probit", loadings="class", integration=DENSE)


@pytest.fixture(scope="module")
def fam_var():
    """K = 3, invariant loadings, free factor variance, a covariate on the class logits."""
    return F.fma(tiny_data(), ITEMS, 3, covariates=["x"], factor_variance="class", integration=DENSE)


def test_likelihood_invariant_loadings_quad(fam_inv):
    comp = compiled(fam_inv)
    theta = raw_point(fam_inv, TAU2, LAM, alpha=[0.4])
    want, post = brute_force(tiny_data(), TAU2, LAM, [1.0, 1.0], [0.4], "logit", [1] * 5)
    np.testing.assert_allclose(comp.unit_loglik(theta), want, rtol=0, atol=1e-9)  # measured <= 1e-15
    np.testing.assert_allclose(comp.memberships(theta)["C"], post, rtol=0, atol=1e-9)  # measured <= 1e-15


def test_likelihood_class_loadings_ordinal_probit_quad(fam_class_ordinal):
    fam = fam_class_ordinal
    assert fam.thresholds.ordinal and fam.free_names == ["tau_raw", "lambda", "alpha"]
    comp = compiled(fam)
    theta = raw_point(fam, TAU_ORD, LAM_CLASS, alpha=[-0.3])
    want, post = brute_force(tiny_data(ordinal=True), TAU_ORD, LAM_CLASS, [1.0, 1.0], [-0.3], "probit",
                             [1, 1, 1, 1, 2])
    np.testing.assert_allclose(comp.unit_loglik(theta), want, rtol=0, atol=1e-9)  # measured <= 1e-15
    np.testing.assert_allclose(comp.memberships(theta)["C"], post, rtol=0, atol=1e-9)  # measured <= 1e-15
    # item_prob: P(y = m | c) averaged over eta ~ N(0, 1), against quad per category
    got = comp.reported(theta) | comp.deterministics(theta)
    want_p = []
    for c in range(2):
        row = []
        for i, (sl, m) in enumerate([(slice(0, 1), 2), (slice(1, 2), 2), (slice(2, 3), 2), (slice(3, 4), 2),
                                     (slice(4, 6), 3)]):
            for k in range(m):
                val, _ = sint.quad(lambda e: cat_prob(TAU_ORD[c, sl], k, LAM_CLASS[c, i] * e, "probit")
                                   * stats.norm.pdf(e), -12, 12, epsabs=1e-14)
                row.append(val)
        want_p.append(row)
    np.testing.assert_allclose(got["item_prob"], np.array(want_p), rtol=0, atol=1e-8)


def test_likelihood_free_factor_variance_k3_covariate_quad(fam_var):
    comp = compiled(fam_var)
    alpha, beta, log_sd = np.array([0.4, -0.2]), np.array([[0.8], [-0.5]]), np.array([np.log(1.7), np.log(0.5)])
    theta = raw_point(fam_var, TAU3, LAM, alpha=alpha, beta=beta, eta_log_sd=log_sd)
    logits = alpha[None, :] + tiny_data()[["x"]].to_numpy() @ beta.T
    want, post = brute_force(tiny_data(), TAU3, LAM, [1.7, 0.5, 1.0], logits, "logit", [1] * 5)
    np.testing.assert_allclose(comp.unit_loglik(theta), want, rtol=0, atol=1e-9)  # measured <= 1e-15
    np.testing.assert_allclose(comp.memberships(theta)["C"], post, rtol=0, atol=1e-9)  # measured <= 1e-15
    np.testing.assert_allclose(comp.reported(theta)["eta_variance"], [1.7**2, 0.25, 1.0], rtol=1e-12)
    # EAP factor scores: E[eta^m | y] = sum_c pi_c ∫ eta^m f dN(eta; 0, sd_c^2) / L
    y = tiny_data()[ITEMS].to_numpy()
    prior = special.softmax(np.concatenate([logits, np.zeros((30, 1))], axis=1), axis=1)
    m0, m1, m2 = (np.sum(prior * class_liks(y, TAU3, LAM, [1.7, 0.5, 1.0], "logit", [1] * 5, moment=m), axis=1)
                  for m in range(3))
    scores = fam_var.factor_scores(theta)
    np.testing.assert_allclose(scores["eta"], m1 / m0, rtol=0, atol=1e-9)  # measured <= 1e-15
    np.testing.assert_allclose(scores["eta_sd"], np.sqrt(m2 / m0 - (m1 / m0) ** 2), rtol=0, atol=1e-9)


def test_adaptive_rule_matches_dense(fam_inv):
    """Adaptive Gauss-Hermite (classes summed inside the node) against the dense grid."""
    fam = F.fma(tiny_data(), ITEMS, 2, integration="adaptive")
    theta = raw_point(fam, TAU2, LAM, alpha=[0.4])
    diff = compiled(fam).unit_loglik_only(theta) - compiled(fam_inv).unit_loglik(theta)
    assert np.max(np.abs(diff)) < 1e-5, np.max(np.abs(diff))  # measured 9.4e-7


def test_default_rule_accuracy(fam_var):
    """The default rule (61 trapezoid points on [-5, 5]) against the dense one, with effective
    loadings lambda_i sd_c up to 1.8 x 1.7 = 3.1."""
    fam = F.fma(tiny_data(), ITEMS, 3, covariates=["x"], factor_variance="class")
    theta = raw_point(fam, TAU3, LAM, alpha=[0.4, -0.2], beta=[[0.8], [-0.5]], eta_log_sd=[np.log(1.7), np.log(0.5)])
    diff = compiled(fam).unit_loglik_only(theta) - compiled(fam_var).unit_loglik(theta)
    assert np.max(np.abs(diff)) < 1e-5, np.max(np.abs(diff))  # measured 9.0e-7


# ------------------------------------------------------------------ nestings
def test_zero_loadings_is_the_lca(fam_inv, fam_var):
    """lambda = 0: the integrand is constant in eta and the FMA is the LCA (eq. 4) on the
    same thresholds and class logits (covariates included)."""
    df = tiny_data()
    for fam, tau, extra in ((fam_inv, TAU2, {"alpha": [0.4]}),
                            (fam_var, TAU3, {"alpha": [0.4, -0.2], "beta": [[0.8], [-0.5]],
                                             "eta_log_sd": [0.5, -0.7]})):
        k = tau.shape[0]
        lca = bm.lca(df, ITEMS, k, covariates=["x"] if "beta" in extra else None)
        lca_point = {n: np.asarray(v, float) for n, v in extra.items() if n != "eta_log_sd"} | {"tau": tau}
        want = compiled(lca).unit_loglik_only(compiled(lca).packing.pack(lca_point))
        got = compiled(fam).unit_loglik(raw_point(fam, tau, np.zeros(5), **extra))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def two_pl_loglik(df, a, b):
    """Per-person 2PL log-likelihood, P(y_i = 1 | eta) = expit(a_i eta - b_i), eta ~ N(0, 1),
    written from the textbook formula (Gauss-Hermite with 200 nodes, no package code)."""
    x, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    y = df[ITEMS].to_numpy()
    p = special.expit(a[None, :] * x[:, None] - b[None, :])  # (Q, P)
    out = []
    for row in y:
        seen = ~np.isnan(row)
        lik = np.prod(np.where(row[seen][None, :] == 1, p[:, seen], 1 - p[:, seen]), axis=1)
        out.append(np.log(np.sum(w * lik)))
    return np.array(out)


def test_one_class_is_the_2pl():
    fam = F.fma(tiny_data(), ITEMS, 1, integration=DENSE)
    assert fam.free_names == ["tau", "lambda"] and fam.n_classes == 1
    theta = raw_point(fam, TAU2[:1], LAM)
    got = compiled(fam).unit_loglik_only(theta)
    np.testing.assert_allclose(got, two_pl_loglik(tiny_data(), LAM, TAU2[0]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(compiled(fam).memberships(theta)["C"], 1.0)


# ------------------------------------------------------------------ parameter counts
def n_free(fam) -> int:
    return int(sum(np.size(v) for v in fam.model.initial_point().values()))


def test_table6_parameter_counts():
    """18 binary items, K = 2: LCA 37, restricted FMA with the free factor variance 56 (Table 6)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame((rng.uniform(size=(60, 18)) < 0.5).astype(float), columns=[f"u{i}" for i in range(18)])
    assert n_free(bm.lca(df, n_classes=2)) == 37
    assert n_free(F.fma(df, n_classes=2, factor_variance="class")) == 56
    assert n_free(F.fma(df, n_classes=2)) == 55
    assert n_free(F.fma(df, n_classes=2, loadings="class")) == 36 + 36 + 1
    assert n_free(F.fma(df, n_classes=1)) == 36  # the 2PL


# ------------------------------------------------------------------ relabelling and sign
def test_relabelling_leaves_loglik(fam_var, fam_class_ordinal):
    """All 6 permutations of K = 3 with a free factor variance (the reference class moves:
    eta is rescaled) and the swap of the class-loadings model; the signature moves along."""
    for fam, perms in ((fam_var, list(itertools.permutations(range(3)))), (fam_class_ordinal, [(1, 0)])):
        comp = compiled(fam)
        point = rc.spread_point(fam, seed=2)
        theta = comp.packing.pack(point)
        base = comp.unit_loglik(theta)
        sig = fam.class_signature(comp.reported(theta))["C"]
        for perm in perms:
            moved = fam.permute_classes(point, np.array(perm))
            theta_m = comp.packing.pack(moved)
            np.testing.assert_allclose(comp.unit_loglik(theta_m), base, rtol=0, atol=1e-9)
            np.testing.assert_allclose(fam.class_signature(comp.reported(theta_m))["C"], sig[list(perm)], atol=1e-9)
            if perm != tuple(range(len(perm))):
                assert not np.allclose(theta_m, theta)


def test_sign_of_eta_is_not_identified(fam_var, fam_class_ordinal):
    """lambda -> -lambda (globally; per class with class loadings) leaves the LL and the
    class signature unchanged."""
    for fam, flips in ((fam_var, [np.array(-1.0)]), (fam_class_ordinal, [np.array([[-1.0], [1.0]]),
                                                                          np.array([[1.0], [-1.0]])])):
        comp = compiled(fam)
        point = rc.spread_point(fam, seed=4)
        theta = comp.packing.pack(point)
        sig = fam.class_signature(comp.reported(theta))["C"]
        for flip in flips:
            theta_f = comp.packing.pack(point | {"lambda": point["lambda"] * flip})
            np.testing.assert_allclose(comp.unit_loglik(theta_f), comp.unit_loglik(theta), rtol=0, atol=1e-9)
            np.testing.assert_allclose(fam.class_signature(comp.reported(theta_f))["C"], sig, atol=1e-12)


# ------------------------------------------------------------------ errors
def test_bad_arguments_raise_before_compiling():
    df = tiny_data()
    cases = [
        (dict(n_classes=0), "n_classes"),
        (dict(loadings="free"), "loadings"),
        (dict(factor_variance="free"), "factor_variance"),
        (dict(loadings="class", factor_variance="class"), "factor_variance"),
        (dict(n_classes=1, factor_variance="class"), "factor_variance"),
        (dict(link="cloglog"), "link"),
        (dict(priors={"nope": None}), "priors"),
        (dict(n_classes=1, covariates=["x"]), "covariates"),
        (dict(integration="simpson"), "integration"),
    ]
    for kwargs, match in cases:
        with pytest.raises(bm.SpecificationError, match=match):
            F.fma(df, ITEMS, **({"n_classes": 2} | kwargs))
    with pytest.raises(bm.SpecificationError, match="continuous"):
        F.fma(df, ["y1", "x"], item_types={"x": "continuous"})
    with pytest.raises(bm.SpecificationError, match="n_classes=3"):  # two-level data: K = 2 only
        F.fma(bm.data.prepare_wide(df.assign(g=np.repeat([1, 2, 3], 10)), ITEMS, cluster="g"), n_classes=3)
    with pytest.raises(bm.DataError, match="constant"):
        F.fma(df.assign(z=1.0), ITEMS, covariates=["z"])


# ------------------------------------------------------------------ registry checks and fitting
@pytest.fixture(scope="module")
def example_fam():
    return bayesmix.families.example("fma")


@pytest.fixture(scope="module")
def example_ml(example_fam):
    return rc.check_fit_and_summary(example_fam)


def test_registered_with_a_two_level_variant():
    assert bayesmix.families.REGISTRY["fma"] is F.fma
    assert bayesmix.families.example("fma", two_level=True).is_two_level  # tests/test_fma_two_level.py


def test_registry_checks_single_level(example_fam, example_ml, monkeypatch):
    """The checks test_registry.py runs only on two-level examples, on the single-level one."""
    rc.check_plain_model(example_fam)
    rc.check_starts_and_bounds(example_fam)
    rc.check_permutation_invariance(example_fam)
    rc.check_membership(example_fam)
    rc.check_sample_relabels(example_fam, example_ml, monkeypatch)
    text = example_ml.summary()
    assert "Loadings lambda on eta_j" in text and "Factor variance" in text


def test_start_from_lca_and_simulate(example_fam, example_ml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res_lca = bm.fit_ml(bm.lca(bayesmix.families.examples.example_data(), ["y1", "y2", "y3", "y4"], 2),
                            n_starts=3, n_final=2, seed=0, progress=False)
    start = example_fam.start_from_lca(res_lca.natural)
    comp = compiled(example_fam)
    theta = comp.packing.pack(start)
    np.testing.assert_allclose(start["lambda"], 0.2)
    # a start at the LCA solution with small loadings: LL within O(lambda^2) of the LCA's
    assert abs(comp.unit_loglik(theta).sum() - res_lca.loglik) < 1.0
    y, cls = example_fam.simulate(example_ml.natural, np.random.default_rng(0))
    assert y.shape == (48, 4) and cls.shape == (48,) and set(np.unique(y[~np.isnan(y)])) <= {0.0, 1.0}


def test_simulator_moments():
    """simulate_fma against the model's own marginal: P(y_i = 1) per class at 40 000 draws
    (the brute-force quad marginal), so the simulator and the likelihood agree on signs."""
    tau = np.array([[-1.0, 0.5], [1.0, -0.3]])
    truth = {"tau": tau, "lambda": np.array([1.5, -0.8]), "eta_variance": np.array([2.0, 1.0]),
             "alpha": np.array([0.3])}
    y, cls, _ = F.simulate_fma(truth, np.arange(2), 40_000, "logit", np.random.default_rng(1))
    assert abs(np.mean(cls == 0) - special.expit(0.3)) < 0.01
    for c in range(2):
        for i in range(2):
            want = 1.0 - class_liks(np.zeros((1, 1)), tau[c:c + 1, i:i + 1], truth["lambda"][i:i + 1],
                                    np.sqrt(truth["eta_variance"][c:c + 1]), "logit", [1])[0, 0]
            assert abs(y[cls == c, i].mean() - want) < 0.015, (c, i)


# ------------------------------------------------------------------ recovery (slow)
@pytest.mark.slow
def test_recovery_k2():
    """FMA K = 2, invariant loadings, free factor variance, 1000 persons x 10 binary items:
    estimates within 2 SE of the truth for most of the 32 parameters (at most 3 beyond 2 SE,
    none beyond 3.5)."""
    rng = np.random.default_rng(7)
    shift = np.linspace(-0.8, 0.8, 10)
    tau = np.vstack([-1.0 + shift, 1.2 - shift])
    lam = np.linspace(0.8, 1.8, 10)
    truth = {"tau": tau, "lambda": lam, "eta_variance": np.array([0.5, 1.0]), "alpha": np.array([0.4])}
    y, _, _ = F.simulate_fma(truth, np.arange(10), 1000, "logit", rng)
    df = pd.DataFrame(y, columns=[f"u{i + 1}" for i in range(10)])
    fam = F.fma(df, n_classes=2, factor_variance="class")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res_lca = bm.fit_ml(bm.lca(df, n_classes=2), n_starts=4, n_final=2, seed=1, progress=False)
        t0 = time.perf_counter()
        res = bm.fit_ml(fam, n_starts=8, n_final=3, seed=2, progress=False, start=fam.start_from_lca(res_lca.natural))
        elapsed = time.perf_counter() - t0
    assert res.loglik > res_lca.loglik + 10
    raw_truth = {"tau": tau, "lambda": lam, "eta_log_sd": np.log(np.sqrt([0.5])), "alpha": np.array([0.4])}
    est_tau = res.natural["tau"]
    if np.abs(est_tau - tau).sum() > np.abs(est_tau - tau[::-1]).sum():  # other labelling: move the truth
        raw_truth = fam.permute_classes(raw_truth, np.array([1, 0]))
    if res.natural["lambda"].sum() < 0:  # the other sign of eta
        raw_truth["lambda"] = -raw_truth["lambda"]
    want = compiled(fam).reported(compiled(fam).packing.pack(raw_truth))
    p = res.params
    z = []
    for name in ("tau", "lambda", "eta_variance", "alpha"):
        rows = p[p.parameter == name]
        w = np.ravel(want[name])
        keep = rows["se"].to_numpy() > 0  # the reference class's variance is fixed at 1
        z.append(((rows["estimate"].to_numpy() - w) / rows["se"].to_numpy())[keep])
    z = np.concatenate(z)
    print(f"recovery: {z.size} parameters, {np.sum(np.abs(z) <= 2)} within 2 SE, max |z| {np.abs(z).max():.2f}, "
          f"LL {res.loglik:.2f} (LCA {res_lca.loglik:.2f}), fit {elapsed:.1f} s")
    assert z.size == 32 and np.isfinite(z).all(), z
    assert np.sum(np.abs(z) > 2) <= 3 and np.all(np.abs(z) < 3.5), np.round(z, 2)
