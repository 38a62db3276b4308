"""FMA-GoM (paper section 8, eq. 38-41, 44): the person likelihood against scipy
dblquad and an independent numpy product rule on tiny data, the nestings of section
8 (zero loadings = GoM; Var(alpha_1j) -> infinity = the person-level-class FMA of
eq. 36-37), the Table 6 parameter count, item-class posteriors, relabelling, the
shared registry checks on ``fma_gom.example()`` and argument errors."""

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

F = importlib.import_module("bayesmix.families.fma_gom")
G = importlib.import_module("bayesmix.families.gom")

DENSE_2D = bm.Integration(rule="trapezoid", n_points=(151, 151), bound=8.5)


def tiny_binary():
    """6 persons x 3 binary items, one missing cell (full information)."""
    y = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, np.nan], [1, 1, 0], [0, 0, 1]], float)
    return pd.DataFrame(y, columns=["y1", "y2", "y3"])


# ------------------------------------------------------------------ brute force (numpy / scipy only)
def phi(x):
    """N(0, 1) density (scipy.stats.norm.pdf's per-call overhead dominated dblquad)."""
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def person_lik(y, eta, logits, tau, lam, link):
    """prod_i sum_c P(C_ij = c | logits_i) P(y_ij | c, eta) for one person: logits (P, K-1)
    reference-coded, P(y = 1 | c, eta) = F(lam_ci eta - tau_ci) (project sign: the paper's
    Phi(tau + lambda eta) with tau -> -tau)."""
    cdf = special.expit if link == "logit" else stats.norm.cdf
    out = 1.0
    for i, yi in enumerate(y):
        if np.isnan(yi):
            continue
        pi = special.softmax(np.concatenate([logits[i], [0.0]]))
        p1 = cdf(lam[:, i] * eta - tau[:, i])
        out *= np.sum(pi * (p1 if yi == 1 else 1.0 - p1))
    return out


def gh_nodes(n, dim):
    """Gauss-Hermite product nodes (Q, dim) and weights (Q,) for N(0, I) (numpy)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    idx = np.array(list(itertools.product(range(n), repeat=dim)))
    return z[idx], np.prod((w / w.sum())[idx], axis=1)


def node_person_lik(y, eta, logits, tau, lam, link):
    """person_lik vectorised over nodes: eta (Q,), logits (Q, P, K-1) -> (Q,)."""
    cdf = special.expit if link == "logit" else stats.norm.cdf
    out = np.ones(len(eta))
    for i, yi in enumerate(y):
        if np.isnan(yi):
            continue
        lg = np.concatenate([logits[:, i], np.zeros((len(eta), 1))], axis=1)
        pi = special.softmax(lg, axis=1)  # (Q, K)
        p1 = cdf(lam[None, :, i] * eta[:, None] - tau[None, :, i])
        out *= np.sum(pi * (p1 if yi == 1 else 1.0 - p1), axis=1)
    return out


def gh_loglik(df, tau, lam, mean_logits, chol, link, n=60):
    """Per-person log-likelihood by a numpy Gauss-Hermite product rule over (eta, z):
    class logits mean_logits (P, K-1) + chol z."""
    u, w = gh_nodes(n, 1 + chol.shape[0])
    logits = mean_logits[None] + (u[:, 1:] @ chol.T)[:, None, :]
    return np.array([np.log(np.sum(w * node_person_lik(df.iloc[j].to_numpy(), u[:, 0], logits, tau, lam, link)))
                     for j in range(len(df))])


def dbl_loglik(df, j, tau, lam, mean_logits, sd, link):
    y = df.iloc[j].to_numpy()

    def f(z, eta):
        return person_lik(y, eta, mean_logits + sd * z, tau, lam, link) * phi(eta) * phi(z)

    return np.log(sint.dblquad(f, -8.5, 8.5, -8.5, 8.5, epsabs=1e-10, epsrel=1e-9)[0])


# ------------------------------------------------------------------ fixtures
TAU = np.array([[-1.2, 0.4, -0.6], [1.0, 1.6, 0.9]])
LAM = np.array([1.3, 0.7, -0.9])
SCALE = 0.6  # class 1's items load lambda * 0.6 (factor variance 0.36), class 2 (reference) lambda


@pytest.fixture(scope="module")
def fam_a():
    """logit, invariant loadings, class-specific factor variance, alpha_1j ~ N(alpha, sd^2)."""
    return F.fma_gom(tiny_binary(), n_classes=2, link="logit", factor_variance="class", integration=DENSE_2D)


def point_a(fam, sd=1.7, alpha=0.3):
    return compiled(fam).packing.pack({"tau": TAU, "lambda": LAM, "log_eta_scale": np.log([SCALE]),
                                       "alpha": np.array([alpha]), "chol_log_diag": np.log([sd])})


def test_likelihood_invariant_loadings_class_variance(fam_a):
    theta = point_a(fam_a)
    got = compiled(fam_a).unit_loglik(theta)
    lam = np.vstack([LAM * SCALE, LAM])
    mean = np.full((3, 1), 0.3)
    want = gh_loglik(tiny_binary(), TAU, lam, mean, np.array([[1.7]]), "logit")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert abs(got[3] - dbl_loglik(tiny_binary(), 3, TAU, lam, mean, 1.7, "logit")) < 1e-6  # a missing item
    rep = compiled(fam_a).reported(theta)
    np.testing.assert_allclose(rep["eta_variance"], [SCALE**2, 1.0], atol=1e-12)
    np.testing.assert_allclose(rep["alpha_icc"], 1.7**2 / (1.7**2 + np.pi**2 / 3), atol=1e-12)
    want_share = sint.quad(lambda z: special.expit(0.3 + 1.7 * z) * stats.norm.pdf(z), -12, 12, epsabs=1e-13)[0]
    assert abs(rep["class_share"][0] - want_share) < 1e-6


def test_likelihood_class_loadings_item_logits():
    """probit, class-specific loadings, item intercepts gamma_i in the class logit (eq. 44)."""
    fam = F.fma_gom(tiny_binary(), n_classes=2, link="probit", loadings="class", item_logits=True,
                    integration=DENSE_2D)
    lam = np.array([[0.5, 1.2, -0.4], [1.3, 0.7, -0.9]])
    gamma = np.array([[0.8], [-0.5], [0.2]])
    theta = compiled(fam).packing.pack({"tau": TAU, "lambda": lam, "gamma": gamma, "chol_log_diag": np.log([1.4])})
    got = compiled(fam).unit_loglik(theta)
    want = gh_loglik(tiny_binary(), TAU, lam, gamma, np.array([[1.4]]), "probit")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert abs(got[3] - dbl_loglik(tiny_binary(), 3, TAU, lam, gamma, 1.4, "probit")) < 1e-6


def test_likelihood_k3():
    """K = 3: 1 + 2 dimensions (eta, alpha_1j, alpha_2j), a 41^3 trapezoid rule against
    a numpy 24^3 Gauss-Hermite rule."""
    fam = F.fma_gom(tiny_binary(), n_classes=3, link="logit",
                    integration=bm.Integration(rule="trapezoid", n_points=41, bound=8.0))
    tau = np.vstack([TAU, [0.1, -1.5, 2.0]])
    chol = np.array([[1.2, 0.0], [0.6, 0.9]])
    theta = compiled(fam).packing.pack({"tau": tau, "lambda": LAM, "alpha": np.array([0.3, -0.5]),
                                        "chol_log_diag": np.log(np.diag(chol)), "chol_offdiag": chol[1, :1]})
    got = compiled(fam).unit_loglik(theta)
    want = gh_loglik(tiny_binary(), tau, np.vstack([LAM] * 3), np.tile([0.3, -0.5], (3, 1)), chol, "logit", n=24)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_item_class_posteriors(fam_a):
    """P(C_ij = 1 | y_j) and the membership (its mean over items) against the numpy rule."""
    theta = point_a(fam_a)
    got = fam_a.item_class_probs(theta)
    df, lam = tiny_binary(), np.vstack([LAM * SCALE, LAM])
    u, w = gh_nodes(60, 2)
    eta, al = u[:, 0], 0.3 + 1.7 * u[:, 1]
    pi1 = special.expit(al)
    for j in range(len(df)):
        y = df.iloc[j].to_numpy()
        lik = w * node_person_lik(y, eta, np.broadcast_to(al[:, None, None], (len(al), 3, 1)), TAU, lam, "logit")
        for i in range(3):
            if np.isnan(y[i]):
                post = pi1
            else:
                p1 = special.expit(lam[None, :, i] * eta[:, None] - TAU[None, :, i])
                f = p1 if y[i] == 1 else 1 - p1
                post = pi1 * f[:, 0] / (pi1 * f[:, 0] + (1 - pi1) * f[:, 1])
            assert abs(got[j, i, 0] - np.sum(lik * post) / np.sum(lik)) < 1e-6, (j, i)
    memb = compiled(fam_a).memberships(theta)["C"]
    np.testing.assert_allclose(memb, got.mean(axis=1), atol=1e-12)


def test_simulate_matches_likelihood():
    """``simulate_fma_gom`` against the model: the frequencies of the 8 response patterns of 3
    items in 400000 draws against exp(LL) of each pattern (all within 4.5 binomial SE)."""
    pat = np.array(list(itertools.product([0, 1], repeat=3)), float)
    fam = F.fma_gom(pd.DataFrame(pat, columns=["y1", "y2", "y3"]), n_classes=2, link="probit",
                    factor_variance="class")
    comp = compiled(fam)
    nat = {"tau": TAU, "lambda": LAM, "eta_variance": np.array([SCALE**2, 1.0]), "alpha": np.array([0.4]),
           "psi": np.array([[4.0]])}
    theta = comp.packing.pack({"tau": TAU, "lambda": LAM, "log_eta_scale": np.log([SCALE]), "alpha": nat["alpha"],
                               "chol_log_diag": np.log([2.0])})
    p_model = np.exp(comp.unit_loglik(theta))
    assert abs(p_model.sum() - 1.0) < 1e-6
    y, c_item = F.simulate_fma_gom(nat, 400_000, 3, "probit", np.random.default_rng(0))
    freq = np.array([np.mean(np.all(y == r, axis=1)) for r in pat])
    z = (freq - p_model) / np.sqrt(p_model * (1 - p_model) / 400_000)
    assert np.all(np.abs(z) < 4.5), np.round(z, 2)
    share = sint.quad(lambda u: special.expit(0.4 + 2.0 * u) * stats.norm.pdf(u), -12, 12)[0]
    assert abs(np.mean(c_item == 0) - share) < 4.5 * np.sqrt(share * (1 - share) / 1.2e6)


# ------------------------------------------------------------------ nestings
def test_zero_loadings_equal_gom():
    """lambda = 0: eq. (38) no longer depends on eta_j, and the FMA-GoM is the GoM (eq. 28-30)
    at the same tau, alpha and Var(alpha_1j) (the eta integral of a constant is exact)."""
    rule = dict(rule="trapezoid", bound=8.0)
    fam = F.fma_gom(tiny_binary(), n_classes=2, link="logit", integration=bm.Integration(n_points=(5, 201), **rule))
    gom = G.gom(tiny_binary(), n_classes=2, link="logit", integration=bm.Integration(n_points=201, **rule))
    got = compiled(fam).unit_loglik(compiled(fam).packing.pack(
        {"tau": TAU, "lambda": np.zeros(3), "alpha": np.array([0.3]), "chol_log_diag": np.log([1.7])}))
    want = compiled(gom).unit_loglik(compiled(gom).packing.pack(
        {"tau": TAU, "alpha": np.array([0.3]), "chol_log_diag": np.log([1.7])}))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def fma_loglik(df, tau, lam, pi1, link):
    """The person-level-class FMA of eq. (36)-(37) (numpy + quad, independent of the package):
    L_j = sum_c pi_c ∫ prod_i P(y_ij | c, eta) dN(eta)."""
    cdf = special.expit if link == "logit" else stats.norm.cdf
    out = []
    for j in range(len(df)):
        y = df.iloc[j].to_numpy()
        tot = 0.0
        for c, pc in enumerate((pi1, 1 - pi1)):
            def f(eta, c=c):
                p1 = cdf(lam[c] * eta - tau[c])
                return np.prod(np.where(np.isnan(y), 1.0, np.where(y == 1, p1, 1 - p1))) * phi(eta)
            tot += pc * sint.quad(f, -12, 12, epsabs=1e-14, epsrel=1e-12)[0]
        out.append(np.log(tot))
    return np.array(out)


def test_huge_membership_variance_tends_to_fma():
    """Var(alpha_1j) = s^2 -> infinity with E(alpha_1j) = s Phi^{-1}(pi_1): P(C_ij = 1 | alpha_1j)
    becomes 1[alpha_1j > 0] for all of a person's items at once, i.e. the person-level class of
    the FMA with P(C_j = 1) = pi_1 (the GoM -> LCA limit of section 7; the gap is O(1/s)). The
    alpha rule (8001 points on [-6, 6]) resolves the band |alpha_1j| < ~10 at s = 3200."""
    fam = F.fma_gom(tiny_binary(), n_classes=2, link="logit", factor_variance="class",
                    integration=bm.Integration(rule="trapezoid", n_points=(41, 8001), bound=6.0))
    pi1 = 0.4
    want = fma_loglik(tiny_binary(), TAU, np.vstack([LAM * SCALE, LAM]), pi1, "logit").sum()
    gaps = {}
    for s in (30.0, 3200.0):
        theta = point_a(fam, sd=s, alpha=s * stats.norm.ppf(pi1))
        gaps[s] = float(compiled(fam).unit_loglik(theta).sum() - want)
    assert abs(gaps[3200.0]) < 1e-2 and abs(gaps[3200.0]) < abs(gaps[30.0]), gaps


def test_parameter_count_table6():
    """18 binary items, K = 2, invariant loadings (Table 6): 56 with Var(eta) = 1 in both
    classes, 57 (the paper's FMA-GoM) with the class-specific factor variance."""
    y = (np.random.default_rng(0).random((40, 18)) < 0.5).astype(float)
    df = pd.DataFrame(y, columns=[f"u{i + 1}" for i in range(18)])

    def count(fam):
        return sum(int(np.prod([len(fam.model.coords[d]) for d in p.dims])) for p in fam.free)

    assert count(F.fma_gom(df, n_classes=2)) == 56
    assert count(F.fma_gom(df, n_classes=2, factor_variance="class")) == 57
    assert count(F.fma_gom(df, n_classes=2, loadings="class")) == 74  # 36 + 36 + 1 + 1


# ------------------------------------------------------------------ relabelling, registry, errors
def test_relabelling_k3_leaves_loglik():
    """All 6 permutations of K = 3 with item logits and class-specific factor variances (a
    relabelling maps Psi to A Psi A', so the alpha rule must be fine for the integrals to agree)."""
    fam = F.fma_gom(tiny_binary(), n_classes=3, factor_variance="class", item_logits=True,
                    integration=bm.Integration(n_points=(5, 61, 61), bound=8.0))
    comp = compiled(fam)
    point = rc.spread_point(fam, seed=2)
    base = comp.unit_loglik(comp.packing.pack(point))
    for perm in itertools.permutations(range(3)):
        moved = fam.permute_classes(point, np.array(perm))
        np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), base, atol=1e-8)
        back = fam.permute_classes(moved, np.argsort(perm))
        np.testing.assert_allclose(comp.packing.pack(back), comp.packing.pack(point), atol=1e-8)


@pytest.fixture(scope="module")
def example_fam():
    return bayesmix.families.example("fma_gom")


@pytest.fixture(scope="module")
def example_ml(example_fam):
    return rc.check_fit_and_summary(example_fam)


def test_registry_checks_on_example(example_fam, example_ml, monkeypatch):
    """The shared contract (tests/test_registry.py runs only the plain-model and start checks
    on single-level families: the rest are on two-level examples)."""
    assert bayesmix.families.REGISTRY["fma_gom"] is bm.families.fma_gom
    assert bayesmix.families.example("fma_gom", two_level=True) is None
    rc.check_plain_model(example_fam)
    rc.check_starts_and_bounds(example_fam)
    rc.check_permutation_invariance(example_fam)
    rc.check_membership(example_fam)
    # on 48 persons x 4 items the loadings run to their bound (steps in eta_j), so fit_ml refines
    # the rule and the result belongs to the refined model, which is what bm.sample samples
    rc.check_sample_relabels(example_ml.model, example_ml, monkeypatch)
    y, cls = example_fam.simulate(example_ml.natural, np.random.default_rng(0))
    assert y.shape == (48, 4) and cls.shape == (48,) and set(np.unique(y)) <= {0.0, 1.0}


def test_bad_arguments_raise_before_compiling():
    df = tiny_binary()
    with pytest.raises(bm.SpecificationError, match="n_classes"):
        F.fma_gom(df, n_classes=1)
    with pytest.raises(bm.SpecificationError, match="loadings"):
        F.fma_gom(df, loadings="free")
    with pytest.raises(bm.SpecificationError, match="factor_variance"):
        F.fma_gom(df, factor_variance="free")
    with pytest.raises(bm.SpecificationError, match="factor_variance"):
        F.fma_gom(df, loadings="class", factor_variance="class")
    with pytest.raises(bm.SpecificationError, match="item_logits"):
        F.fma_gom(df, item_logits="yes")
    with pytest.raises(bm.SpecificationError, match="adaptive"):
        F.fma_gom(df, integration="adaptive")
    with pytest.raises(bm.SpecificationError, match="link"):
        F.fma_gom(df, link="cloglog")
    with pytest.raises(bm.SpecificationError, match="n_classes"):
        F.fma_gom(df, n_classes=4)
    with pytest.raises((bm.SpecificationError, bm.DataError), match="binary"):
        F.fma_gom(df.assign(y1=[0, 1, 2, 1, 0, 2]))
    with pytest.raises(bm.SpecificationError, match="priors"):
        F.fma_gom(df, priors={"nope": None})


# ------------------------------------------------------------------ slow: the Table 6 design
@pytest.mark.slow
def test_fit_table6_design_timing():
    """K = 2 on a 425 x 18 design (the paper's ADHD sample size; simulated FMA-GoM data,
    probit, invariant loadings, class-specific factor variance: 57 parameters): compile and
    ML times (printed), LL above the LL at the truth minus a chi-square margin."""
    rng = np.random.default_rng(3)
    tau = np.vstack([np.linspace(-1.5, 0.5, 18), np.linspace(0.5, 2.5, 18)])
    truth = {"tau": tau, "lambda": np.linspace(0.6, 1.4, 18), "eta_variance": np.array([0.5, 1.0]),
             "alpha": np.array([0.4]), "psi": np.array([[9.0]])}
    y, _ = F.simulate_fma_gom(truth, 425, 18, "probit", rng)
    df = pd.DataFrame(y, columns=[f"u{i + 1}" for i in range(18)])
    fam = F.fma_gom(df, n_classes=2, factor_variance="class")
    comp = compiled(fam)
    t0 = time.perf_counter()
    comp.unit_loglik(comp.packing.pack(fam.start_point(rng)))
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=6, n_final=2, seed=1, progress=False)
    t_fit = time.perf_counter() - t0
    raw = {"tau": tau, "lambda": truth["lambda"], "log_eta_scale": np.log([np.sqrt(0.5)]),
           "alpha": truth["alpha"], "chol_log_diag": np.log([3.0])}
    ll_truth = comp.unit_loglik(comp.packing.pack(raw)).sum()
    print(f"\nFMA-GoM 425 x 18, K = 2: first LL call (compile) {t_compile:.1f} s, fit_ml (6/2 starts) "
          f"{t_fit:.1f} s, LL {res.loglik:.3f} vs {ll_truth:.3f} at the truth, {res.n_params} parameters")
    assert res.n_params == 57
    assert res.loglik > ll_truth - 1e-6
