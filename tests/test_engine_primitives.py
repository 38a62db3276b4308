"""Tests of the engine primitives of the next model families: ``core.integrate``
(general integration with kept axes and nesting, covariance factors),
``core.items`` (per-item densities with batch axes, item-level classes,
guessing) and ``core.chains`` (latent Markov chains, class patterns).

Every expected value is computed independently with numpy/scipy on tiny data:
explicit loops over persons, items and classes, enumeration of all K^T class
paths, scipy.integrate.quad / dblquad. The quadrature comparisons use rules with
enough points that the rule error is below the 1e-8 tolerance. Graphs are
compiled in FAST_COMPILE mode (tiny data: compilation dominates the run time).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate as sci_integrate
from scipy import special, stats

from bayesmix.core import chains, marginal
from bayesmix.core import integrate as core_integrate
from bayesmix.core.integrate import block_diag, integrate, integrate_clusters, structural_chol
from bayesmix.core.items import (
    categorical_loglik,
    categorical_loglik_batch,
    category_log_probs,
    guessing_log_prob,
    indicator_matrix,
    item_logliks,
    item_mixture_loglik,
    log_cdf,
    normal_item_logliks,
    normal_loglik,
)
from bayesmix.core.quadrature import Integration
from bayesmix.exceptions import SpecificationError

MODE = "FAST_COMPILE"
TOL = 1e-8
SQRT_2PI = math.sqrt(2 * math.pi)


def _function(inputs, outputs):
    return pytensor.function(inputs, outputs, mode=MODE, on_unused_input="ignore")


def _log_logistic_lik(y: float, eta: float) -> float:
    """log P(y | eta) for a binary logit item, P(y = 1) = expit(eta)."""
    return y * eta - (eta + math.log1p(math.exp(-eta)) if eta > 0 else math.log1p(math.exp(eta)))


def _quad_normal(f, sd: float) -> float:
    """∫ f(u) dN(u; 0, sd^2) by adaptive quadrature over z = u / sd."""
    val, _ = sci_integrate.quad(lambda z: f(sd * z) * math.exp(-0.5 * z * z) / SQRT_2PI,
                                -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)
    return val


# ============================================================================ 1. module layout, covariance factors


def test_marginal_reexports_integrate_names():
    for name in ("integrate_clusters", "ClusterIntegral", "segment_sum", "chol_from_unconstrained",
                 "_batched_chol", "_diag"):
        assert getattr(marginal, name) is getattr(core_integrate, name), name
    for name in ("mixture_logsumexp", "class_log_prior", "class_proportions"):
        assert getattr(marginal, name).__module__ == "bayesmix.core.marginal"


def test_block_diag_and_structural_chol():
    rng = np.random.default_rng(0)
    a = pt.tensor("a", shape=(1, 1), dtype="float64")
    b = pt.tensor("b", shape=(2, 2), dtype="float64")
    c = pt.tensor("c", shape=(3, 3), dtype="float64")
    log_sd = {d: pt.tensor(f"log_sd{d}", shape=(d,), dtype="float64") for d in (1, 2, 3, 4)}
    b_low = {d: pt.tensor(f"b{d}", shape=(d * (d - 1) // 2,), dtype="float64") for d in (2, 3, 4)}
    outs = [block_diag(a, b, c), block_diag(b)] + [structural_chol(log_sd[d], b_low.get(d)) for d in (1, 2, 3, 4)]
    fn = _function([a, b, c, *log_sd.values(), *b_low.values()], outs)
    av, bv, cv = (np.tril(rng.normal(size=(d, d))) for d in (1, 2, 3))
    sd_vals = {d: rng.normal(0.0, 0.5, d) for d in (1, 2, 3, 4)}
    b_vals = {d: rng.normal(0.0, 0.8, d * (d - 1) // 2) for d in (2, 3, 4)}
    res = fn(av, bv, cv, *sd_vals.values(), *b_vals.values())

    expected = np.zeros((6, 6))
    expected[:1, :1], expected[1:3, 1:3], expected[3:, 3:] = av, bv, cv
    np.testing.assert_array_equal(res[0], expected)
    np.testing.assert_array_equal(res[1], bv)

    for d, chol in zip((1, 2, 3, 4), res[2:]):
        # u = B u + e  =>  Cov(u) = (I - B)^{-1} diag(sd^2) (I - B)^{-T}
        bmat = np.zeros((d, d))
        if d > 1:
            bmat[np.tril_indices(d, -1)] = b_vals[d]
        inv = np.linalg.inv(np.eye(d) - bmat)
        cov = inv @ np.diag(np.exp(2 * sd_vals[d])) @ inv.T
        assert np.all(np.triu(chol, 1) == 0.0)
        np.testing.assert_allclose(chol @ chol.T, cov, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(chol, np.linalg.cholesky(cov), rtol=1e-12, atol=1e-14)


# ============================================================================ 2. integrate: rows as units


class _PersonFactor:
    """y_ip ~ Bernoulli(expit(b_p + lam_p eta_i)), eta_i ~ N(0, sd^2): a 1-D
    random-intercept logistic model, each person its own unit."""

    def __init__(self, n=4, p=3, seed=1):
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, 2, (n, p)).astype(float)
        self.b = rng.normal(0.0, 0.8, p)
        self.lam = rng.uniform(0.6, 1.4, p)

    def loglik_at(self, u):  # u (B, Q, 1) -> (N, Q)
        lin = self.b + self.lam * u[..., 0][..., None]  # (B, Q, P)
        return pt.sum(self.y[:, None, :] * lin - pt.softplus(lin), axis=-1)

    def reference(self, sd):
        return np.array([math.log(_quad_normal(
            lambda e, y=y: math.exp(sum(_log_logistic_lik(yp, bp + lp * e) for yp, bp, lp in zip(y, self.b, self.lam))),
            sd)) for y in self.y])


@pytest.fixture(scope="module")
def person_factor():
    model = _PersonFactor()
    chol = pt.tensor("chol", shape=(1, 1), dtype="float64")
    rules = {"gauss_hermite": Integration("gauss_hermite", n_points=60),
             "adaptive": Integration("adaptive", n_points=20, n_adapt=4)}
    outs = []
    for integ in rules.values():
        outs.extend(integrate(model.loglik_at, integ, chol))
    # one adaptive pass is the plain rule at the prior nodes
    outs.append(integrate(model.loglik_at, Integration("adaptive", n_points=20, n_adapt=1), chol).loglik)
    outs.append(integrate(model.loglik_at, Integration("gauss_hermite", n_points=20), chol).loglik)
    return model, _function([chol], outs)


def test_integrate_rows_as_units_vs_quad(person_factor):
    model, fn = person_factor
    sd = 1.2
    ll_gh, post_gh, nodes_gh, ll_ad, post_ad, nodes_ad, ll_ad1, ll_gh20 = fn(np.array([[sd]]))
    np.testing.assert_array_equal(ll_ad1, ll_gh20)
    ref = model.reference(sd)
    n, q_gh = model.y.shape[0], 60
    assert ll_gh.shape == (n,) and post_gh.shape == (n, q_gh) and nodes_gh.shape == (1, q_gh, 1)
    assert ll_ad.shape == (n,) and post_ad.shape == (n, 20) and nodes_ad.shape == (n, 20, 1)
    np.testing.assert_allclose(ll_gh, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(ll_ad, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(np.exp(post_gh).sum(axis=1), 1.0, atol=1e-13)
    np.testing.assert_allclose(np.exp(post_ad).sum(axis=1), 1.0, atol=1e-13)


# ============================================================================ 3. integrate: rows summed into clusters


class _ClusterSlope:
    """y_ijp ~ Bernoulli(expit(b_p + u0_j + u1_j x_ij)), (u0, u1)_j ~ N(0, L L')."""

    def __init__(self, n_clusters=3, n_per=3, p=2, seed=2):
        rng = np.random.default_rng(seed)
        self.cl = np.repeat(np.arange(n_clusters), n_per)
        self.x = rng.normal(size=self.cl.size)
        self.y = rng.integers(0, 2, (self.cl.size, p)).astype(float)
        self.b = rng.normal(0.0, 0.5, p)
        self.n_clusters = n_clusters

    def loglik_at(self, u):  # u (B, Q, 2) -> (N, Q)
        lin = self.b + (u[..., 0] + u[..., 1] * self.x[:, None])[..., None]  # (N, Q, P)
        return pt.sum(self.y[:, None, :] * lin - pt.softplus(lin), axis=-1)

    def reference(self, chol):
        c00, c10, c11 = chol[0, 0], chol[1, 0], chol[1, 1]
        out = []
        for j in range(self.n_clusters):
            rows = [(x, y) for x, y, c in zip(self.x, self.y, self.cl) if c == j]

            def g(z2, z1, rows=rows):
                u0, u1 = c00 * z1, c10 * z1 + c11 * z2
                tot = sum(_log_logistic_lik(yp, bp + u0 + u1 * x) for x, y in rows for yp, bp in zip(y, self.b))
                return math.exp(tot - 0.5 * (z1 * z1 + z2 * z2)) / (2 * math.pi)

            # u = L z, z ~ N(0, I) on [-9, 9]^2 (normal mass outside < 1e-18)
            val, _ = sci_integrate.dblquad(g, -9.0, 9.0, -9.0, 9.0, epsabs=1e-14, epsrel=1e-11)
            out.append(math.log(val))
        return np.array(out)


CLUSTER_RULES = {
    "trapezoid": Integration("trapezoid", n_points=41, bound=8.0),
    "gauss_hermite": Integration("gauss_hermite", n_points=60),
    "adaptive": Integration("adaptive", n_points=20, n_adapt=5),
}


@pytest.fixture(scope="module")
def cluster_slope():
    model = _ClusterSlope()
    chol = pt.tensor("chol", shape=(2, 2), dtype="float64")
    outs = []
    for integ in CLUSTER_RULES.values():
        new = integrate(model.loglik_at, integ, chol, model.cl, model.n_clusters)
        old = integrate_clusters(model.loglik_at, integ, chol, model.cl, model.n_clusters)
        outs.extend([*new, *old])
    return model, _function([chol], outs)


def test_integrate_units_identical_to_integrate_clusters_and_vs_dblquad(cluster_slope):
    model, fn = cluster_slope
    chol = np.linalg.cholesky(np.array([[0.9, 0.35], [0.35, 0.6]]))
    res = fn(chol)
    ref = model.reference(chol)
    for r, name in enumerate(CLUSTER_RULES):
        new, old = res[6 * r: 6 * r + 3], res[6 * r + 3: 6 * r + 6]
        for a, b in zip(new, old):
            np.testing.assert_array_equal(a, b, err_msg=name)  # same graph, same numbers
        assert new[0].shape == (model.n_clusters,)
        np.testing.assert_allclose(new[0], ref, rtol=0, atol=TOL, err_msg=name)
        np.testing.assert_allclose(np.exp(new[1]).sum(axis=1), 1.0, atol=1e-13)


# ============================================================================ 4. a kept class axis


class _ClassFactor:
    """Person class C with class-specific intercepts and loadings:
    y_ip | c, eta ~ Bernoulli(expit(b_cp + lam_cp eta)), eta ~ N(0, sd^2)."""

    def __init__(self, n=4, p=3, k=2, seed=3):
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, 2, (n, p)).astype(float)
        self.b = rng.normal(0.0, 1.0, (k, p))
        self.lam = rng.uniform(0.3, 1.5, (k, p))
        self.log_pi = np.log(np.array([0.35, 0.65]))
        self.cl = np.array([0, 0, 1, 1])  # two clusters of two persons (cluster-level class)

    def loglik_at(self, u):  # u (B, Q, 1) -> (N, Q, K)
        lin = self.b + self.lam * u[..., 0][..., None, None]  # (B, Q, K, P)
        return pt.sum(self.y[:, None, None, :] * lin - pt.softplus(lin), axis=-1)

    def lik(self, rows, c, e):
        return math.exp(sum(_log_logistic_lik(yp, bp + lp * e)
                            for y in rows for yp, bp, lp in zip(y, self.b[c], self.lam[c])))


def test_kept_class_axis_vs_quad():
    model = _ClassFactor()
    sd = 1.1
    chol = pt.tensor("chol", shape=(1, 1), dtype="float64")
    integ = Integration("gauss_hermite", n_points=60)
    per_person = integrate(model.loglik_at, integ, chol)
    per_cluster = integrate(model.loglik_at, integ, chol, model.cl, 2)
    mix = pt.logsumexp(per_person.loglik + model.log_pi, axis=-1)
    ll, log_post, _, ll_cl, _, _, ll_mix = _function([chol], [*per_person, *per_cluster, mix])(np.array([[sd]]))
    n, k = ll.shape
    assert (n, k) == (4, 2) and log_post.shape == (4, 60, 2) and ll_cl.shape == (2, 2)
    np.testing.assert_allclose(np.exp(log_post).sum(axis=1), 1.0, atol=1e-13)
    ref = np.array([[math.log(_quad_normal(lambda e, i=i, c=c: model.lik([model.y[i]], c, e), sd))
                     for c in range(k)] for i in range(n)])
    np.testing.assert_allclose(ll, ref, rtol=0, atol=TOL)
    # a cluster-level class: the cluster's persons share C and the random effect
    ref_cl = np.array([[math.log(_quad_normal(lambda e, j=j, c=c: model.lik(model.y[model.cl == j], c, e), sd))
                        for c in range(k)] for j in range(2)])
    np.testing.assert_allclose(ll_cl, ref_cl, rtol=0, atol=TOL)
    # the class mixture, integrated by brute force: ∫ sum_c pi_c prod_p f(y_p | c, eta) dN(eta)
    pi = np.exp(model.log_pi)
    ref_mix = np.array([math.log(_quad_normal(
        lambda e, i=i: sum(pi[c] * model.lik([model.y[i]], c, e) for c in range(k)), sd)) for i in range(n)])
    np.testing.assert_allclose(ll_mix, ref_mix, rtol=0, atol=TOL)


def test_adaptive_with_kept_axis_raises():
    model = _ClassFactor()
    chol = pt.tensor("chol", shape=(1, 1), dtype="float64")
    for unit_idx, n_units in ((None, None), (model.cl, 2)):
        with pytest.raises(SpecificationError, match="adaptive"):
            integrate(model.loglik_at, Integration("adaptive", n_points=5), chol, unit_idx, n_units)
    with pytest.raises(SpecificationError, match="rank"):
        integrate(lambda u: pt.sum(u), Integration("gauss_hermite", n_points=5), chol)


# ============================================================================ 5. nested integrals


class _TwoLevel:
    """y_ijp ~ Bernoulli(expit(tau_p + eta_ij + v_j)), eta_ij ~ N(0, sd_eta^2),
    v_j ~ N(0, sd_v^2): a person factor nested in a cluster random effect."""

    def __init__(self, sizes=(2, 3, 2), p=3, seed=4):
        rng = np.random.default_rng(seed)
        self.cl = np.repeat(np.arange(len(sizes)), sizes)
        self.y = rng.integers(0, 2, (self.cl.size, p)).astype(float)
        self.tau = rng.normal(0.0, 0.8, p)
        self.n_clusters = len(sizes)

    def cluster_loglik(self, chol_eta, chol_v, inner_rule, outer_rule):
        def outer_cb(v):  # (Bv, Qo, 1) -> (N, Qo)
            def inner_cb(eta):  # (Be, Qi, 1) -> (N, Qi, Qo): the outer node axis is kept
                lin = self.tau + eta[:, :, None, :] + v[:, None, :, :]  # (B, Qi, Qo, P)
                return pt.sum(self.y[:, None, None, :] * lin - pt.softplus(lin), axis=-1)

            return integrate(inner_cb, inner_rule, chol_eta).loglik

        return integrate(outer_cb, outer_rule, chol_v, self.cl, self.n_clusters).loglik

    def reference(self, sd_eta, sd_v):
        def inner(y, v):
            def f(z):
                return math.exp(sum(_log_logistic_lik(yp, tp + sd_eta * z + v) for yp, tp in zip(y, self.tau))
                                - 0.5 * z * z) / SQRT_2PI
            # finite range in z: the normal mass beyond |z| = 10 is 1.5e-23
            return sci_integrate.quad(f, -10.0, 10.0, epsabs=1e-15, epsrel=1e-13, limit=200)[0]

        out = []
        for j in range(self.n_clusters):
            rows = self.y[self.cl == j]

            def g(w, rows=rows):
                return math.prod(inner(y, sd_v * w) for y in rows) * math.exp(-0.5 * w * w) / SQRT_2PI

            out.append(math.log(sci_integrate.quad(g, -10.0, 10.0, epsabs=1e-15, epsrel=1e-13, limit=200)[0]))
        return np.array(out)


def test_nested_integrals_vs_nested_quad():
    model = _TwoLevel()
    sd_eta, sd_v = 1.0, 0.7
    chol_eta = pt.tensor("chol_eta", shape=(1, 1), dtype="float64")
    chol_v = pt.tensor("chol_v", shape=(1, 1), dtype="float64")
    inner = Integration("gauss_hermite", n_points=50)
    outs = [model.cluster_loglik(chol_eta, chol_v, inner, Integration("gauss_hermite", n_points=50)),
            model.cluster_loglik(chol_eta, chol_v, inner, Integration("adaptive", n_points=20, n_adapt=3))]
    ll_gh, ll_ad = _function([chol_eta, chol_v], outs)(np.array([[sd_eta]]), np.array([[sd_v]]))
    ref = model.reference(sd_eta, sd_v)
    assert ll_gh.shape == (model.n_clusters,)
    np.testing.assert_allclose(ll_gh, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(ll_ad, ref, rtol=0, atol=TOL)


def test_gradients_vs_finite_differences():
    """The new graphs (nested integral with a kept outer-node axis, adaptive
    nodes with rows as units, the forward recursion) differentiate exactly:
    their gradients match central differences of the compiled objective."""
    two_level, factor = _TwoLevel(), _PersonFactor()
    chol_eta = pt.tensor("chol_eta", shape=(1, 1), dtype="float64")
    chol_v = pt.tensor("chol_v", shape=(1, 1), dtype="float64")
    chol = pt.tensor("chol", shape=(1, 1), dtype="float64")
    k, n_t = 3, 3
    li = pt.tensor("li", shape=(2, k), dtype="float64")
    lt = pt.tensor("lt", shape=(2, n_t - 1, k, k), dtype="float64")
    le = pt.tensor("le", shape=(2, n_t, k), dtype="float64")
    objectives = [
        (pt.sum(two_level.cluster_loglik(chol_eta, chol_v, Integration("gauss_hermite", n_points=10),
                                         Integration("gauss_hermite", n_points=10))), [chol_eta, chol_v]),
        (pt.sum(integrate(factor.loglik_at, Integration("adaptive", n_points=8, n_adapt=3), chol).loglik), [chol]),
        (pt.sum(chains.markov_loglik(li, lt, le) * np.array([1.0, 0.7])), [li, lt, le]),
    ]
    inputs = [chol_eta, chol_v, chol, li, lt, le]
    fn = _function(inputs, [o for o, _ in objectives] + [g for o, wrt in objectives for g in pytensor.grad(o, wrt)])
    rng = np.random.default_rng(11)
    point = [np.array([[0.9]]), np.array([[0.6]]), np.array([[1.1]]), rng.normal(size=(2, k)),
             rng.normal(size=(2, n_t - 1, k, k)), rng.normal(-1.0, 1.0, (2, n_t, k))]
    out = fn(*point)
    grads = iter(out[len(objectives):])
    h = 1e-6
    for which, (_, wrt) in enumerate(objectives):
        for var in wrt:
            g = next(grads)
            pos = inputs.index(var)
            for idx in list(np.ndindex(*point[pos].shape))[:6]:
                up, down = [x.copy() for x in point], [x.copy() for x in point]
                up[pos][idx] += h
                down[pos][idx] -= h
                fd = (fn(*up)[which] - fn(*down)[which]) / (2 * h)
                assert g[idx] == pytest.approx(fd, rel=1e-6, abs=1e-8), (which, var.name, idx)


# ============================================================================ 6. items with batch axes

N_CATS = np.array([2, 3, 4, 2])  # binary, 3- and 4-category ordinal, binary
M_MAX = int(N_CATS.max())
N_PERSONS, N_CLASSES, N_BATCH = 6, 3, 2


def _tau(rng, shape):
    tau = np.full(shape + (len(N_CATS), M_MAX - 1), 77.0)  # padding: must be ignored
    for idx in np.ndindex(*shape):
        for p, m in enumerate(N_CATS):
            tau[idx + (p, slice(0, m - 1))] = np.sort(rng.normal(0.0, 1.2, m - 1))
    return tau


def _ref_log_prob(tau_p, m, k, link):
    """log P(y = k) from the item's m - 1 thresholds: F(tau_k) - F(tau_{k-1})."""
    dist = stats.logistic if link == "logit" else stats.norm
    t = np.concatenate([[-np.inf], tau_p[: m - 1], [np.inf]])
    return math.log(dist.cdf(t[k + 1]) - dist.cdf(t[k]))


@pytest.fixture(scope="module")
def item_data():
    rng = np.random.default_rng(5)
    codes = np.column_stack([rng.integers(0, m, N_PERSONS) for m in N_CATS])
    observed = rng.random((N_PERSONS, len(N_CATS))) > 0.25
    observed[0] = False  # a person with every item missing
    observed[1] = True
    return codes, observed


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_item_logliks_and_batch_sums_vs_loops(item_data, link):
    codes, observed = item_data
    rng = np.random.default_rng(6 if link == "logit" else 7)
    ind = indicator_matrix(codes, observed, M_MAX)
    ind3 = ind.reshape(N_PERSONS, len(N_CATS), M_MAX)
    tau_k = pt.tensor("tau_k", shape=(None, None, None), dtype="float64")
    tau_b = pt.tensor("tau_b", shape=(None,) * 4, dtype="float64")
    tau_n = pt.tensor("tau_n", shape=(None,) * 4, dtype="float64")
    lp_k, lp_b, lp_n = (category_log_probs(t, N_CATS, link) for t in (tau_k, tau_b, tau_n))
    fn = _function([tau_k, tau_b, tau_n], [
        item_logliks(ind3, lp_k), categorical_loglik(ind, lp_k), categorical_loglik_batch(ind, lp_k),
        item_logliks(ind3, lp_b), categorical_loglik_batch(ind, lp_b), item_logliks(ind3, lp_n, person_axis=True),
    ])
    tk, tb, tn = _tau(rng, (N_CLASSES,)), _tau(rng, (N_BATCH, N_CLASSES)), _tau(rng, (N_PERSONS, N_BATCH))
    il_k, cl_k, clb_k, il_b, clb_b, il_n = fn(tk, tb, tn)

    def ref_items(tau_of):  # tau_of(i) -> thresholds (*batch, P, M-1) used for person i
        shape = tau_of(0).shape[:-2]
        out = np.zeros((N_PERSONS, *shape, len(N_CATS)))
        for i in range(N_PERSONS):
            for idx in np.ndindex(*shape):
                for p, m in enumerate(N_CATS):
                    if observed[i, p]:
                        out[(i, *idx, p)] = _ref_log_prob(tau_of(i)[idx + (p,)], m, codes[i, p], link)
        return out

    ref_k, ref_b, ref_n = ref_items(lambda i: tk), ref_items(lambda i: tb), ref_items(lambda i: tn[i])
    assert il_k.shape == (N_PERSONS, N_CLASSES, len(N_CATS)) and il_b.shape == (N_PERSONS, N_BATCH, N_CLASSES, 4)
    assert il_n.shape == (N_PERSONS, N_BATCH, len(N_CATS))
    for got, ref in ((il_k, ref_k), (il_b, ref_b), (il_n, ref_n)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        assert np.all(np.moveaxis(got, -1, 1)[~observed] == 0.0)
    np.testing.assert_allclose(cl_k, ref_k.sum(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clb_b, ref_b.sum(-1), rtol=1e-12, atol=1e-12)
    # the per-item terms sum to today's categorical_loglik
    np.testing.assert_allclose(il_k.sum(-1), cl_k, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(clb_k, cl_k, rtol=1e-14, atol=1e-14)


def test_normal_item_logliks_vs_loops():
    rng = np.random.default_rng(8)
    n, pc = 5, 3
    observed = rng.random((n, pc)) > 0.3
    y = np.where(observed, rng.normal(size=(n, pc)), np.nan)  # NaN in missing cells must be ignored
    y_zero = np.where(observed, y, 0.0)
    nu_k = pt.tensor("nu_k", shape=(None, None), dtype="float64")
    nu_b = pt.tensor("nu_b", shape=(None, None, None), dtype="float64")
    theta = pt.tensor("theta", shape=(None,), dtype="float64")
    nu_n = pt.tensor("nu_n", shape=(None, None, None), dtype="float64")
    theta_k = pt.tensor("theta_k", shape=(None, None), dtype="float64")
    fn = _function([nu_k, nu_b, nu_n, theta, theta_k], [
        normal_item_logliks(y, observed, nu_k, theta), normal_loglik(y_zero, observed, nu_k, theta),
        normal_item_logliks(y, observed, nu_b, theta_k),
        normal_item_logliks(y, observed, nu_n, theta, person_axis=True),
    ])
    nk, nb = rng.normal(size=(N_CLASSES, pc)), rng.normal(size=(N_BATCH, N_CLASSES, pc))
    nn = rng.normal(size=(n, 2, pc))
    th, thk = rng.uniform(0.3, 2.0, pc), rng.uniform(0.3, 2.0, (N_CLASSES, pc))
    got_k, sum_k, got_b, got_n = fn(nk, nb, nn, th, thk)

    ref_k, ref_b, ref_n = np.zeros((n, N_CLASSES, pc)), np.zeros((n, N_BATCH, N_CLASSES, pc)), np.zeros((n, 2, pc))
    for i, p in itertools.product(range(n), range(pc)):
        if not observed[i, p]:
            continue
        for c in range(N_CLASSES):
            ref_k[i, c, p] = stats.norm.logpdf(y[i, p], nk[c, p], math.sqrt(th[p]))
            for b in range(N_BATCH):
                ref_b[i, b, c, p] = stats.norm.logpdf(y[i, p], nb[b, c, p], math.sqrt(thk[c, p]))
        for q in range(2):
            ref_n[i, q, p] = stats.norm.logpdf(y[i, p], nn[i, q, p], math.sqrt(th[p]))
    for got, ref in ((got_k, ref_k), (got_b, ref_b), (got_n, ref_n)):
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(sum_k, ref_k.sum(-1), rtol=1e-13, atol=1e-13)


def test_item_mixture_loglik_vs_loops(item_data):
    """Grade of membership: sum_p log sum_k P(C_ip = k) f(y_ip | k), missing items skipped."""
    codes, observed = item_data
    rng = np.random.default_rng(9)
    n, p, k = N_PERSONS, len(N_CATS), N_CLASSES
    log_f = np.where(observed[:, :, None], rng.normal(-1.0, 0.7, (n, p, k)), 0.0)  # (N, P, K), 0 if missing
    prior = special.log_softmax(rng.normal(size=(n, k)), axis=-1)
    prior_items = special.log_softmax(rng.normal(size=(n, p, k)), axis=-1)
    lp = pt.tensor("lp", shape=(None, None), dtype="float64")
    lpi = pt.tensor("lpi", shape=(None, None, None), dtype="float64")
    lf = pt.tensor("lf", shape=(None, None, None), dtype="float64")
    got, got_items = _function([lp, lpi, lf], [item_mixture_loglik(lp, lf), item_mixture_loglik(lpi, lf)])(
        prior, prior_items, log_f)
    ref, ref_items = np.zeros(n), np.zeros(n)
    for i in range(n):
        for q in range(p):
            if observed[i, q]:
                ref[i] += math.log(sum(math.exp(prior[i, c] + log_f[i, q, c]) for c in range(k)))
                ref_items[i] += math.log(sum(math.exp(prior_items[i, q, c] + log_f[i, q, c]) for c in range(k)))
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(got_items, ref_items, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_guessing_log_prob(link):
    """3PL: log(g + (1 - g) F(a theta - b)) against direct evaluation, and its limits."""
    rng = np.random.default_rng(10)
    g = rng.uniform(0.05, 0.4, 8)
    x = rng.normal(0.0, 2.0, 8)
    log_g = pt.vector("log_g", dtype="float64")
    xv = pt.vector("x", dtype="float64")
    fn = _function([log_g, xv], guessing_log_prob(log_g, log_cdf(xv, link)))
    cdf = special.expit if link == "logit" else special.ndtr
    np.testing.assert_allclose(fn(np.log(g), x), np.log(g + (1 - g) * cdf(x)), rtol=1e-13)
    # extremes: g -> 0 gives log F, F -> 0 gives log g, g tiny and F tiny both stay finite
    far = -1e3 if link == "logit" else -30.0
    tiny = fn(np.array([-1e3, -1e3, -50.0, np.log(0.2)]), np.array([0.3, -40.0, -20.0, far]))
    log_f = special.log_expit if link == "logit" else special.log_ndtr
    assert tiny[0] == pytest.approx(float(log_f(0.3)), rel=1e-14)
    assert tiny[1] == pytest.approx(float(np.logaddexp(-1e3, log_f(-40.0))), rel=1e-13)
    assert tiny[2] == pytest.approx(float(np.logaddexp(-50.0, log_f(-20.0))), rel=1e-13)
    assert tiny[3] == pytest.approx(math.log(0.2), rel=1e-14)


# ============================================================================ 7. latent Markov chains


def _enumerate(log_init, log_trans, log_emit, time_varying):
    """Brute force over all K^T paths, per batch element: log-likelihood,
    P(C_t = k | y), P(C_t = j, C_t+1 = k | y), log joint of each path."""
    n_t, k = log_emit.shape[-2:]
    batch = np.broadcast_shapes(log_init.shape[:-1], log_emit.shape[:-2],
                                log_trans.shape[:-3] if time_varying else log_trans.shape[:-2])
    log_init, log_emit = np.broadcast_to(log_init, batch + (k,)), np.broadcast_to(log_emit, batch + (n_t, k))
    trans = np.broadcast_to(log_trans if time_varying else log_trans[..., None, :, :], batch + (max(n_t - 1, 1), k, k))
    paths = list(itertools.product(range(k), repeat=n_t))
    joint = np.zeros(batch + (len(paths),))
    for s, path in enumerate(paths):
        joint[..., s] = log_init[..., path[0]] + sum(log_emit[..., t, c] for t, c in enumerate(path))
        for t in range(n_t - 1):
            joint[..., s] += trans[..., t, path[t], path[t + 1]]
    ll = special.logsumexp(joint, axis=-1)
    post = np.exp(joint - ll[..., None])
    marg, pairs = np.zeros(batch + (n_t, k)), np.zeros(batch + (max(n_t - 1, 0), k, k))
    for s, path in enumerate(paths):
        for t in range(n_t):
            marg[..., t, path[t]] += post[..., s]
        for t in range(n_t - 1):
            pairs[..., t, path[t], path[t + 1]] += post[..., s]
    return ll, marg, pairs, joint


@pytest.mark.parametrize("k,n_t,time_varying", [(2, 2, True), (2, 3, False), (2, 4, True), (3, 2, False),
                                                (3, 3, True), (3, 4, False), (3, 1, False)])
def test_markov_chain_vs_enumeration(k, n_t, time_varying):
    rng = np.random.default_rng(100 * k + n_t)
    nt1 = max(n_t - 1, 1)
    log_init = special.log_softmax(rng.normal(size=(2, 1, k)), axis=-1)  # broadcast over the second batch axis
    trans_shape = (1, 3, nt1, k, k) if time_varying else (1, 3, k, k)
    log_trans = special.log_softmax(rng.normal(size=trans_shape), axis=-1)
    log_emit = rng.normal(-2.0, 1.5, (2, 3, n_t, k))
    pattern_prior = special.log_softmax(rng.normal(size=(2, 3, k**n_t)), axis=-1)  # any dependence on the past

    # static shapes: the size-1 batch axes broadcast
    li, lt, le, lpp = (pt.tensor(name, shape=x.shape, dtype="float64") for name, x in
                       (("li", log_init), ("lt", log_trans), ("le", log_emit), ("lpp", pattern_prior)))
    patterns = chains.all_patterns(k, n_t)
    markov_prior = chains.markov_pattern_log_prior(li, lt, patterns)
    fn = _function([li, lt, le, lpp], [
        chains.markov_loglik(li, lt, le), *chains.markov_posteriors(li, lt, le),
        chains.pattern_loglik(markov_prior, le, patterns), markov_prior,
        chains.pattern_loglik(lpp, le, patterns), chains.pattern_posteriors(lpp, le, patterns),
    ])
    ll, marg, pairs, ll_pat_markov, prior_markov, ll_pat, post_pat = fn(log_init, log_trans, log_emit, pattern_prior)

    ref_ll, ref_marg, ref_pairs, joint = _enumerate(log_init, log_trans, log_emit, time_varying)
    assert ll.shape == (2, 3) and marg.shape == (2, 3, n_t, k) and pairs.shape == (2, 3, n_t - 1, k, k)
    np.testing.assert_allclose(ll, ref_ll, rtol=0, atol=1e-12)
    np.testing.assert_allclose(marg, ref_marg, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pairs, ref_pairs, rtol=0, atol=1e-13)
    np.testing.assert_allclose(ll_pat_markov, ll, rtol=0, atol=1e-12)
    ref_prior = np.array([log_init[..., p[0]] + sum(
        (log_trans[..., t, p[t], p[t + 1]] if time_varying else log_trans[..., p[t], p[t + 1]]) for t in range(n_t - 1))
        for p in patterns])
    np.testing.assert_allclose(np.broadcast_to(prior_markov, (2, 3, len(patterns))),
                               np.moveaxis(np.broadcast_to(ref_prior, (len(patterns), 2, 3)), 0, -1), atol=1e-13)
    ref_pat_joint = pattern_prior + np.stack(
        [sum(log_emit[..., t, p[t]] for t in range(n_t)) for p in patterns], axis=-1)
    np.testing.assert_allclose(ll_pat, special.logsumexp(ref_pat_joint, axis=-1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(post_pat, special.softmax(ref_pat_joint, axis=-1), rtol=0, atol=1e-13)

    path, log_joint = chains.viterbi(log_init, log_trans, log_emit)
    best = np.argmax(joint, axis=-1)
    np.testing.assert_array_equal(path, patterns[best])
    np.testing.assert_allclose(log_joint, np.max(joint, axis=-1), rtol=0, atol=1e-12)


def test_all_patterns_and_shape_rule():
    pats = chains.all_patterns(3, 2)
    np.testing.assert_array_equal(pats, [[a, b] for a in range(3) for b in range(3)])
    assert chains.all_patterns(2, 4).shape == (16, 4)
    le = pt.tensor("le", shape=(None, 3, 2), dtype="float64")
    with pytest.raises(SpecificationError, match="time_varying"):
        chains.markov_loglik(pt.zeros(2), pt.zeros((2, 2)), le)  # rank 2 against rank 3: ambiguous
    with pytest.raises(SpecificationError, match="static"):
        chains.markov_loglik(pt.zeros(2), pt.zeros((2, 2)), pt.matrix("x"))
