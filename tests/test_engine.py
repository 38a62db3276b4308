"""Tests of the likelihood engine: quadrature rules, cluster integration, item
category probabilities.

Every expected value is computed independently in the test with numpy/scipy
(closed-form Gaussian moments, scipy.integrate.quad/dblquad, scipy.stats cdfs),
never with bayesmix itself.
"""

from __future__ import annotations

import math
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, special, stats

from bayesmix.core.items import category_log_probs, log_cdf
from bayesmix.core.marginal import integrate_clusters
from bayesmix.core.quadrature import Integration
from bayesmix.exceptions import SpecificationError

pytestmark = pytest.mark.filterwarnings("ignore:The same einsum subscript:UserWarning")

# These graphs are checked for their numbers, not their speed: Python thunks and the
# fast_compile rewrites, so no gcc even when a compiler is configured (the default mode
# spent ~1 min compiling them; the package compiles with its own backend)
MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")
PRODUCT_RULES = ("trapezoid", "gauss_hermite", "adaptive")
RANDOM_RULES = ("monte_carlo", "qmc")
# The adaptive rule's graph takes 35-50 s to compile with JAX on 2 cores in these two
# brute-force tests; in the default run adaptive quadrature is checked against dblquad by
# tests/test_lca_likelihood.py (two-level K = 3, 6 s), these run with -m slow.
CLUSTER_RULES = ("trapezoid", "gauss_hermite", pytest.param("adaptive", marks=pytest.mark.slow))


# ============================================================================ 1. quadrature rules


def _accurate(rule: str) -> Integration:
    if rule == "trapezoid":
        return Integration("trapezoid", n_points=41, bound=8.0)
    if rule in ("gauss_hermite", "adaptive"):
        return Integration(rule, n_points=24)
    return Integration(rule, n_points=2048 if rule == "qmc" else 2000)


def _expect(integ: Integration, dim: int, fn) -> float:
    z, logw = integ.nodes(dim)
    return float(np.sum(np.exp(logw) * fn(z)))


@pytest.mark.parametrize("rule", PRODUCT_RULES + RANDOM_RULES)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_weights_sum_to_one_and_shapes(rule, dim):
    integ = Integration(rule, n_points=7 if rule in PRODUCT_RULES else 64)
    z, logw = integ.nodes(dim)
    q = 7**dim if rule in PRODUCT_RULES else 64
    assert z.shape == (q, dim)
    assert logw.shape == (q,)
    assert np.all(np.isfinite(z)) and np.all(np.isfinite(logw))
    assert np.exp(special.logsumexp(logw)) == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("rule", PRODUCT_RULES)
def test_product_rules_moments(rule):
    integ = _accurate(rule)
    assert _expect(integ, 1, lambda z: z[:, 0]) == pytest.approx(0.0, abs=1e-12)
    assert _expect(integ, 1, lambda z: z[:, 0] ** 2) == pytest.approx(1.0, abs=1e-8)
    assert _expect(integ, 1, lambda z: z[:, 0] ** 4) == pytest.approx(3.0, abs=1e-8)
    for a in (0.5, 1.0, -1.5):
        assert _expect(integ, 1, lambda z: np.exp(a * z[:, 0])) == pytest.approx(np.exp(a**2 / 2), rel=1e-8)


@pytest.mark.parametrize("rule", PRODUCT_RULES)
def test_product_rules_two_dimensions(rule):
    integ = Integration(rule, n_points=25, bound=8.0)
    assert _expect(integ, 2, lambda z: z[:, 0] ** 2 * z[:, 1] ** 2) == pytest.approx(1.0, abs=1e-8)
    assert _expect(integ, 2, lambda z: z[:, 0] * z[:, 1]) == pytest.approx(0.0, abs=1e-12)
    assert _expect(integ, 2, lambda z: z[:, 0] ** 2) == pytest.approx(1.0, abs=1e-8)
    # E exp(a'z) = exp(|a|^2 / 2)
    a = np.array([0.7, -0.4])
    assert _expect(integ, 2, lambda z: np.exp(z @ a)) == pytest.approx(np.exp(a @ a / 2), rel=1e-8)


@pytest.mark.filterwarnings("ignore:The balance properties of Sobol:UserWarning")
@pytest.mark.parametrize("rule", RANDOM_RULES)
def test_random_rules_moments(rule):
    integ = _accurate(rule)
    assert _expect(integ, 1, lambda z: z[:, 0] ** 2) == pytest.approx(1.0, abs=0.1)
    for a in (0.5, 1.0):
        assert _expect(integ, 1, lambda z: np.exp(a * z[:, 0])) == pytest.approx(np.exp(a**2 / 2), rel=0.1)
    assert _expect(integ, 2, lambda z: z[:, 0] ** 2 * z[:, 1] ** 2) == pytest.approx(1.0, abs=0.15)
    assert _expect(integ, 2, lambda z: z[:, 0] * z[:, 1]) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("rule", RANDOM_RULES)
def test_random_rules_are_deterministic_given_seed(rule):
    z1, w1 = Integration(rule, n_points=64, seed=3).nodes(2)
    z2, w2 = Integration(rule, n_points=64, seed=3).nodes(2)
    z3, _ = Integration(rule, n_points=64, seed=4).nodes(2)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(w1, w2)
    assert not np.allclose(z1, z3)


def test_trapezoid_grid_and_weights():
    """Equally spaced nodes on [-bound, bound], weights ∝ phi(z) with halved end points."""
    z, logw = Integration("trapezoid", n_points=9, bound=4.0).nodes(1)
    np.testing.assert_allclose(z[:, 0], np.linspace(-4, 4, 9), atol=1e-15)
    w = stats.norm.pdf(z[:, 0])
    w[[0, -1]] /= 2
    np.testing.assert_allclose(np.exp(logw), w / w.sum(), rtol=1e-12)


def test_gauss_hermite_exact_for_polynomials():
    """Q-point Gauss-Hermite integrates z^k exactly for k <= 2Q-1: E z^(2m) = (2m-1)!!."""
    integ = Integration("gauss_hermite", n_points=5)
    for m in range(5):  # degrees 0..8 <= 9
        expected = float(np.prod(np.arange(2 * m - 1, 0, -2))) if m else 1.0
        assert _expect(integ, 1, lambda z: z[:, 0] ** (2 * m)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kwargs", [{"rule": "simpson"}, {"n_points": 0}, {"n_points": 2.5}, {"bound": -1.0},
                                    {"n_adapt": 0}])
def test_integration_validation(kwargs):
    with pytest.raises(SpecificationError):
        Integration(**kwargs)


# ============================================================================ 2. integrate_clusters


class _RandomLogistic:
    """y_ij ~ Bernoulli(expit(b0 + u0_j + (b1 + u1_j) x_ij)), u_j ~ N(0, L L').

    D = 1: random intercept only. D = 2: random intercept and slope.
    """

    def __init__(self, n_clusters, n_per, dim, seed, b0=-0.3, b1=0.8):
        rng = np.random.default_rng(seed)
        self.j, self.dim, self.b0, self.b1 = n_clusters, dim, b0, b1
        self.cl = np.repeat(np.arange(n_clusters), n_per)
        self.x = rng.normal(size=self.cl.size)
        self.y = rng.integers(0, 2, self.cl.size).astype(float)

    def person_loglik(self, u):
        eta = self.b0 + self.b1 * self.x[:, None] + u[..., 0]
        if self.dim == 2:
            eta = eta + u[..., 1] * self.x[:, None]
        return self.y[:, None] * eta - pt.softplus(eta)

    def compile(self, integ: Integration):
        chol = pt.tensor("chol", shape=(self.dim, self.dim), dtype="float64")
        res = integrate_clusters(self.person_loglik, integ, chol, self.cl, self.j)
        total = pt.sum(res.loglik)
        return pytensor.function([chol], [res.loglik, res.log_post, total, pytensor.grad(total, chol)], mode=MODE)

    # ---- independent reference with scipy
    def reference(self, chol: np.ndarray) -> np.ndarray:
        out = np.empty(self.j)
        c = np.zeros((2, 2))
        c[: self.dim, : self.dim] = chol
        c00, c01, c10, c11 = c.ravel().tolist()
        for j in range(self.j):
            s = self.cl == j
            obs = list(zip(self.x[s].tolist(), self.y[s].tolist()))

            def lik(u0, u1, obs=obs):
                tot = 0.0
                for x, y in obs:
                    eta = self.b0 + u0 + (self.b1 + u1) * x
                    tot += y * eta - (eta + math.log1p(math.exp(-eta)) if eta > 0 else math.log1p(math.exp(eta)))
                return math.exp(tot)

            if self.dim == 1:
                def f(z):  # u = sd z, z ~ N(0, 1)
                    return lik(c00 * z, 0.0) * math.exp(-0.5 * z * z) / SQRT_2PI

                val, _ = integrate.quad(f, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-12, limit=200)
            else:
                # u = L z, z ~ N(0, I): integrate over z on [-9, 9]^2 (mass outside < 1e-18)
                def g(z2, z1):
                    return (lik(c00 * z1 + c01 * z2, c10 * z1 + c11 * z2)
                            * math.exp(-0.5 * (z1 * z1 + z2 * z2)) / (2 * math.pi))

                val, _ = integrate.dblquad(g, -9.0, 9.0, -9.0, 9.0, epsabs=1e-13, epsrel=1e-10)
            out[j] = math.log(val)
        return out


SQRT_2PI = math.sqrt(2 * math.pi)
CHOL_1D = np.array([[1.3]])
PSI_2D = np.array([[1.0, 0.5], [0.5, 0.8]])
CHOL_2D = np.linalg.cholesky(PSI_2D)

RULES_1D = {
    "trapezoid": Integration("trapezoid", n_points=41, bound=8.0),
    "gauss_hermite": Integration("gauss_hermite", n_points=30),
    "adaptive": Integration("adaptive", n_points=10),
    "monte_carlo": Integration("monte_carlo", n_points=2000),
    "qmc": Integration("qmc", n_points=2048),
}
RULES_2D = {
    "trapezoid": Integration("trapezoid", n_points=41, bound=8.0),
    "gauss_hermite": Integration("gauss_hermite", n_points=30),
    "adaptive": Integration("adaptive", n_points=10),
    "monte_carlo": Integration("monte_carlo", n_points=4000),
    "qmc": Integration("qmc", n_points=4096),
}


@pytest.fixture(scope="module")
def model_1d():
    return _RandomLogistic(6, 4, 1, seed=3)


@pytest.fixture(scope="module")
def model_2d():
    return _RandomLogistic(6, 4, 2, seed=5)


@pytest.fixture(scope="module")
def ref_1d(model_1d):
    return model_1d.reference(CHOL_1D)


@pytest.fixture(scope="module")
def ref_2d(model_2d):
    return model_2d.reference(CHOL_2D)


class _Compiled(dict):
    """Rule name -> compiled function, compiled on first use (the adaptive rule's
    graph is slow to compile and its tests are behind the slow marker)."""

    def __init__(self, model, rules):
        super().__init__()
        self.model, self.rules = model, rules

    def __missing__(self, name):
        self[name] = self.model.compile(self.rules[name])
        return self[name]


@pytest.fixture(scope="module")
def fns_1d(model_1d):
    return _Compiled(model_1d, RULES_1D)


@pytest.fixture(scope="module")
def fns_2d(model_2d):
    return _Compiled(model_2d, RULES_2D)


def test_reference_is_sane(ref_1d, ref_2d):
    # each cluster has 4 binary observations: 0 > log-likelihood > 4 log(tiny)
    assert np.all(ref_1d < 0) and np.all(ref_1d > -15)
    assert np.all(ref_2d < 0) and np.all(ref_2d > -15)


@pytest.mark.parametrize("rule", CLUSTER_RULES)
def test_integrate_clusters_1d_vs_quad(fns_1d, ref_1d, rule):
    ll, log_post, total, _ = fns_1d[rule](CHOL_1D)
    assert ll.shape == (6,)
    assert total == pytest.approx(ref_1d.sum(), abs=1e-6)
    np.testing.assert_allclose(ll, ref_1d, atol=2e-6)
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("rule", CLUSTER_RULES)
def test_integrate_clusters_2d_vs_dblquad(fns_2d, ref_2d, rule):
    ll, log_post, total, _ = fns_2d[rule](CHOL_2D)
    assert total == pytest.approx(ref_2d.sum(), abs=1e-5)
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:The balance properties of Sobol:UserWarning")
@pytest.mark.parametrize("rule", RANDOM_RULES)
def test_integrate_clusters_random_rules(fns_1d, fns_2d, ref_1d, ref_2d, rule):
    assert fns_1d[rule](CHOL_1D)[2] == pytest.approx(ref_1d.sum(), rel=1e-2)
    assert fns_2d[rule](CHOL_2D)[2] == pytest.approx(ref_2d.sum(), rel=1e-2)


# adaptive: 78 s of JAX compilation of the 2-D adaptive graph on 2 cores; slow (its
# likelihood stays in the default run through test_lca_likelihood's two-level K = 3)
@pytest.mark.parametrize("rule", ["trapezoid", pytest.param("adaptive", marks=pytest.mark.slow)])
def test_integrate_clusters_gradient_matches_finite_differences(fns_2d, rule):
    """The gradient w.r.t. the Cholesky factor is that of the evaluated objective."""
    fn = fns_2d[rule]
    _, _, _, grad = fn(CHOL_2D)
    h = 1e-6
    for r, c in [(0, 0), (1, 0), (1, 1), (0, 1)]:
        e = np.zeros((2, 2))
        e[r, c] = h
        fd = (fn(CHOL_2D + e)[2] - fn(CHOL_2D - e)[2]) / (2 * h)
        assert grad[r, c] == pytest.approx(fd, rel=1e-5, abs=1e-7)


# ============================================================================ 3. rules agree


@pytest.fixture(scope="module")
def agreement():
    """A larger random-intercept model (12 clusters x 10 observations)."""
    model = _RandomLogistic(12, 10, 1, seed=11, b0=0.4, b1=-0.6)
    rules = {
        "trapezoid": Integration("trapezoid", n_points=61, bound=8.0),
        "gauss_hermite": Integration("gauss_hermite", n_points=40),
        "adaptive": Integration("adaptive", n_points=15, n_adapt=4),
    }
    return model, {name: model.compile(integ) for name, integ in rules.items()}


@pytest.mark.parametrize("sd", [0.4, 1.0, 1.8])
def test_rules_agree_with_each_other(agreement, sd):
    """Trapezoid (61 points, bound 8) and adaptive GH (15 points) agree to 1e-6 per
    cluster; non-adaptive GH (40 points) as well while the random-effect sd is
    moderate (see the next test for large sd)."""
    _, fns = agreement
    chol = np.array([[sd]])
    out = {name: fn(chol) for name, fn in fns.items()}
    names = ("gauss_hermite", "adaptive") if sd <= 1.0 else ("adaptive",)
    for name in names:
        np.testing.assert_allclose(out[name][0], out["trapezoid"][0], atol=1e-6, err_msg=name)
        assert out[name][2] == pytest.approx(out["trapezoid"][2], abs=1e-6), name
        assert out[name][3][0, 0] == pytest.approx(out["trapezoid"][3][0, 0], abs=1e-5), name


def test_adaptive_beats_plain_gauss_hermite_for_large_variance(agreement):
    """Paper section 10: non-adaptive Gauss-Hermite degrades when the cluster
    posterior is narrow relative to the prior; adaptation fixes it."""
    _, fns = agreement
    chol = np.array([[1.8]])
    trap = fns["trapezoid"](chol)[0]
    err_gh = np.max(np.abs(fns["gauss_hermite"](chol)[0] - trap))
    err_ad = np.max(np.abs(fns["adaptive"](chol)[0] - trap))
    assert err_ad < 1e-6
    assert err_ad < err_gh / 100


def test_agreement_model_vs_quad(agreement):
    model, fns = agreement
    chol = np.array([[1.0]])
    np.testing.assert_allclose(fns["trapezoid"](chol)[0], model.reference(chol), atol=1e-8)


# ============================================================================ 4. category probabilities

N_CATS = np.array([2, 3, 4, 5])  # binary, 3-, 4- and 5-category items
M_MAX = int(N_CATS.max())


@pytest.fixture(scope="module")
def cat_fns():
    tau = pt.tensor3("tau", dtype="float64")
    out = {}
    valid = np.arange(M_MAX)[None, :] < N_CATS[:, None]
    for link in ("logit", "probit"):
        lp = category_log_probs(tau, N_CATS, link)
        total = pt.sum(pt.where(valid[None], lp, 0.0))
        out[link] = pytensor.function([tau], [lp, pytensor.grad(total, tau)], mode=MODE)
    return out


def _random_tau(rng, k=3, scale=1.5):
    tau = np.full((k, len(N_CATS), M_MAX - 1), 123.0)  # padding: must be ignored
    for c in range(k):
        for p, m in enumerate(N_CATS):
            tau[c, p, : m - 1] = np.sort(rng.normal(0.0, scale, m - 1))
    return tau


def _reference_log_probs(tau, link):
    """log P(y = k) = log(F(tau_k) - F(tau_{k-1})), tau_0 = -inf, tau_m = +inf,
    evaluated in whichever form has no cancellation: 1 - F(lo) - S(hi) (log1p)
    when the category holds most of the mass, else F(hi) - F(lo) below the
    median and S(lo) - S(hi) above it."""
    dist = stats.logistic if link == "logit" else stats.norm
    k_, p_, _ = tau.shape
    out = np.zeros((k_, p_, M_MAX))
    for c in range(k_):
        for p, m in enumerate(N_CATS):
            t = np.concatenate([[-np.inf], tau[c, p, : m - 1], [np.inf]])
            lo, hi = t[:-1], t[1:]
            outside = dist.cdf(lo) + dist.sf(hi)
            prob = np.where(lo > 0, dist.sf(lo) - dist.sf(hi), dist.cdf(hi) - dist.cdf(lo))
            with np.errstate(divide="ignore"):
                out[c, p, :m] = np.where(outside < 0.5, np.log1p(-outside), np.log(prob))
    return out


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_category_log_probs_vs_scipy(cat_fns, link):
    rng = np.random.default_rng(0)
    valid = np.arange(M_MAX)[None, :] < N_CATS[:, None]
    for _ in range(5):
        tau = _random_tau(rng)
        lp, _ = cat_fns[link](tau)
        assert lp.shape == (3, len(N_CATS), M_MAX)
        np.testing.assert_allclose(np.where(valid, np.exp(lp), 0.0).sum(axis=-1), 1.0, atol=1e-13)
        assert np.all(lp[:, ~valid] == 0.0)  # padding
        np.testing.assert_allclose(lp[:, valid], _reference_log_probs(tau, link)[:, valid], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_binary_convention(cat_fns, link):
    """P(y = 1 | c) = 1 - F(tau_c) (Mplus threshold convention)."""
    tau = np.zeros((1, len(N_CATS), M_MAX - 1))
    tau[0, :, 0] = 0.7
    tau[0, 1:, 1:] = np.array([1.0, 2.0, 3.0])[: M_MAX - 2]
    lp, _ = cat_fns[link](tau)
    cdf = special.expit if link == "logit" else special.ndtr
    assert np.exp(lp[0, 0, 1]) == pytest.approx(1 - cdf(0.7), rel=1e-12)
    assert np.exp(lp[0, 0, 0]) == pytest.approx(cdf(0.7), rel=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_category_log_probs_moderately_extreme_thresholds(cat_fns, link):
    """Thresholds at +-30: the tail categories stay accurate on the log scale."""
    used = [  # per class, per item (2, 3, 4, 5 categories): ordered thresholds
        [[30.0], [-30.0, 30.0], [-30.0, -29.0, 29.0], [-30.0, -29.0, 29.0, 30.0]],
        [[-30.0], [29.0, 30.0], [-1.0, 1.0, 30.0], [-30.0, -1.0, 1.0, 30.0]],
    ]
    tau = np.zeros((2, len(N_CATS), M_MAX - 1))
    for c, per_item in enumerate(used):
        for p, t in enumerate(per_item):
            tau[c, p, : len(t)] = t
    lp, grad = cat_fns[link](tau)
    valid = np.arange(M_MAX)[None, :] < N_CATS[:, None]
    np.testing.assert_allclose(lp[:, valid], _reference_log_probs(tau, link)[:, valid], rtol=1e-9)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("extreme", [40.0, 200.0])
def test_category_log_probs_gradient_finite_at_extreme_thresholds(cat_fns, link, extreme):
    tau = np.zeros((3, len(N_CATS), M_MAX - 1))
    tau[0] = extreme  # all thresholds equal and far in the upper tail
    tau[1] = -extreme
    tau[2] = np.linspace(-extreme, extreme, M_MAX - 1)[None, :]
    lp, grad = cat_fns[link](tau)
    assert np.all(np.isfinite(grad)), grad
    assert not np.any(np.isnan(lp))
    valid = np.arange(M_MAX)[None, :] < N_CATS[:, None]
    assert np.all(lp[:, valid] <= 0.0)
    # each distribution still sums to one (the mass sits in one category)
    np.testing.assert_allclose(np.where(valid, np.exp(lp), 0.0).sum(axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_category_log_probs_gradient_vs_finite_differences(cat_fns, link):
    rng = np.random.default_rng(7)
    tau = _random_tau(rng, k=2, scale=1.0)
    valid = np.arange(M_MAX)[None, :] < N_CATS[:, None]

    def total(t):
        return _reference_log_probs(t, link)[:, valid].sum()

    _, grad = cat_fns[link](tau)
    h = 1e-6
    for c in range(2):
        for p, m in enumerate(N_CATS):
            for k in range(M_MAX - 1):
                e = np.zeros_like(tau)
                e[c, p, k] = h
                fd = (total(tau + e) - total(tau - e)) / (2 * h) if k < m - 1 else 0.0
                assert grad[c, p, k] == pytest.approx(fd, abs=1e-6), (c, p, k)


@pytest.fixture(scope="module")
def log_cdf_fns():
    x = pt.vector("x", dtype="float64")
    return {link: pytensor.function([x], [log_cdf(x, link), pytensor.grad(pt.sum(log_cdf(x, link)), x)], mode=MODE)
            for link in ("logit", "probit")}


def test_probit_log_cdf_accuracy(log_cdf_fns):
    x = np.concatenate([np.linspace(-30, 30, 6001), [-5.0, -5.0 + 1e-12, -5.0 - 1e-12, 0.0]])
    val, grad = log_cdf_fns["probit"](x)
    np.testing.assert_allclose(val, special.log_ndtr(x), rtol=1e-10, atol=0)
    # d/dx log Phi(x) = phi(x) / Phi(x) = exp(log phi - log Phi)
    expected = np.exp(stats.norm.logpdf(x) - special.log_ndtr(x))
    np.testing.assert_allclose(grad, expected, rtol=1e-8, atol=1e-300)


def test_logit_log_cdf_accuracy(log_cdf_fns):
    x = np.linspace(-60, 60, 6001)
    val, grad = log_cdf_fns["logit"](x)
    np.testing.assert_allclose(val, special.log_expit(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(grad, special.expit(-x), rtol=1e-10, atol=1e-300)
