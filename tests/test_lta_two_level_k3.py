"""The two-level LTA with K = 3 classes (section 4 generalised: vector-valued
alpha_tj, eq. 15 with a (K-1, K-1) beta) against a brute-force 4-D integral.

The reference is written here in plain numpy: a dense Gauss-Hermite product
grid (numpy's ``hermegauss``) over z ~ N(0, I_4), u_1j = L_1 z_1, eps_j = L_e z_2,
alpha_1j = alpha_1 + u_1j, alpha_2j = mu + B alpha_1j + eps_j, and the sum over
the 9 class paths of every person, multiplied within a cluster. bayesmix is
only asked for the likelihood at raw parameter values.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmix as bm
from bayesmix.fit.compiled import compiled

K = 3


def chol(log_diag, off):
    m = len(log_diag)
    out = np.diag(np.exp(log_diag))
    out[np.tril_indices(m, -1)] = off
    return out


def softmax_ref(logits):
    """(..., K) from (..., K-1) logits against the last class."""
    full = np.concatenate([logits, np.zeros(logits.shape[:-1] + (1,))], axis=-1)
    return np.exp(full - special.logsumexp(full, axis=-1, keepdims=True))


def brute_cluster_ll(y, cluster, v, n_points):
    """log prod_i sum_paths P(path | alpha_j) f(y_i | path), integrated over (alpha_1j, alpha_2j)."""
    m = K - 1
    l1 = chol(v["log_sd"][:m], v["chol_offdiag"][:1])
    le = chol(v["log_sd"][m:], v["chol_offdiag"][1:])
    b = np.asarray(v["beta"], float)
    x, w = np.polynomial.hermite_e.hermegauss(n_points)
    w = w / w.sum()
    z = np.array(list(itertools.product(x, repeat=2 * m)))  # (Q, 4)
    logw = np.log(np.array(list(itertools.product(w, repeat=2 * m)))).sum(axis=1)
    a1j = v["alpha_1"] + z[:, :m] @ l1.T  # (Q, m), eq. (15) first line
    a2j = v["mu"] + a1j @ b.T + z[:, m:] @ le.T
    g = np.concatenate([np.asarray(v["gamma_1_2"], float).T, np.zeros((1, m))], axis=0)  # (K from, K-1)
    p1 = softmax_ref(a1j)  # (Q, K) P(C_1 = k | alpha_1j), eq. (8)
    p2 = softmax_ref(a2j[:, None, :] + g[None])  # (Q, K from, K to), eq. (9)
    tau = np.asarray(v["tau"], float)
    prob1 = 1.0 - special.expit(tau)  # P(y = 1 | class) (K, P)
    out = []
    for j in np.unique(cluster):
        log_j = logw.copy()
        for i in np.flatnonzero(cluster == j):
            emit = [np.prod(np.where(y[i, t] == 1, prob1, 1 - prob1), axis=1) for t in range(2)]  # (K,) each
            person = np.einsum("qa,a,qab,b->q", p1, emit[0], p2, emit[1])  # the 9 paths
            log_j = log_j + np.log(person)
        out.append(special.logsumexp(log_j))
    return np.array(out)


def data(seed=3, n_clusters=4, per=3):
    rng = np.random.default_rng(seed)
    n = n_clusters * per
    y = rng.integers(0, 2, size=(n, 2, 3)).astype(float)
    df = pd.DataFrame({f"u{p + 1}_{t + 1}": y[:, t, p] for t in range(2) for p in range(3)})
    df["school"] = np.repeat(np.arange(n_clusters), per)
    cols = {"t1": ["u1_1", "u2_1", "u3_1"], "t2": ["u1_2", "u2_2", "u3_2"]}
    return df, cols, y


@pytest.fixture(scope="module")
def k3():
    df, cols, y = data()
    fam = bm.lta(df, cols, K, cluster="school", integration={"rule": "gauss_hermite", "n_points": 16})
    comp = compiled(fam)
    rng = np.random.default_rng(5)
    v = comp.packing.unpack(0.6 * rng.normal(size=comp.packing.size))
    return fam, comp, v, df["school"].to_numpy(), y


def test_layout_of_the_between_level(k3):
    fam, comp, v, _, _ = k3
    assert fam.integration_dim == 4
    assert np.shape(v["beta"]) == (2, 2) and np.shape(v["log_sd"]) == (4,) and np.shape(v["chol_offdiag"]) == (2,)
    assert list(fam.model.coords["re"]) == ["alpha_1[1]", "alpha_1[2]", "alpha_2[1]", "alpha_2[2]"]


def test_k3_likelihood_matches_a_dense_4d_integral(k3):
    fam, comp, v, cluster, y = k3
    ll = comp.unit_loglik(comp.packing.pack(v))
    # the brute force with the model's rule (16^4 nodes): the algebra, to rounding
    np.testing.assert_allclose(ll, brute_cluster_ll(y, cluster, v, 16), rtol=0, atol=1e-9)
    # ... and that rule is converged: 22 points per dimension (234256 nodes) agree to 1e-6
    np.testing.assert_allclose(ll, brute_cluster_ll(y, cluster, v, 22), rtol=0, atol=1e-6)


def test_k3_reported_covariance_is_the_structural_one(k3):
    fam, comp, v, _, _ = k3
    rep = comp.reported(comp.packing.pack(v))
    l1 = chol(v["log_sd"][:2], v["chol_offdiag"][:1])
    le = chol(v["log_sd"][2:], v["chol_offdiag"][1:])
    b = np.asarray(v["beta"])
    s1 = l1 @ l1.T
    expected = np.block([[s1, s1 @ b.T], [b @ s1, b @ s1 @ b.T + le @ le.T]])  # Cov of (alpha_1j, alpha_2j)
    np.testing.assert_allclose(rep["psi"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rep["var_alpha1"], np.diag(s1), rtol=1e-12)
    np.testing.assert_allclose(rep["var_eps"], np.diag(le @ le.T), rtol=1e-12)
    np.testing.assert_allclose(rep["alpha_2"], v["mu"] + b @ v["alpha_1"], rtol=1e-12)


def test_k3_relabelling_leaves_the_likelihood_unchanged(k3):
    """Every permutation of the 3 classes, including those moving the reference
    class (alpha_tj -> A_t alpha_tj, beta -> A_2 beta A_1^-1): same LL up to the
    product rule's error on the transformed integrand (checked against 22 points:
    1e-6 above)."""
    fam, comp, v, _, _ = k3
    ll = comp.unit_loglik(comp.packing.pack(v))
    for perm in itertools.permutations(range(K)):
        moved = fam.permute_classes(v, {"C": np.array(perm)})
        np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), ll, rtol=0, atol=2e-5,
                                   err_msg=str(perm))
    back = fam.permute_classes(fam.permute_classes(v, {"C": np.array([2, 0, 1])}), {"C": np.array([1, 2, 0])})
    for name in ("beta", "log_sd", "chol_offdiag", "alpha_1", "mu", "gamma_1_2"):
        np.testing.assert_allclose(back[name], v[name], atol=1e-9, err_msg=name)


def test_k3_without_variance_is_the_single_level_lta(k3):
    fam, comp, v, cluster, y = k3
    df, cols, _ = data()
    plain = bm.lta(df, cols, K, cluster="school", random_intercepts=False)
    pc = compiled(plain)
    w = pc.packing.unpack(pc.packing.pack({**{n: v[n] for n in pc.packing.names if n in v},
                                           "alpha_2": v["mu"] + np.asarray(v["beta"]) @ v["alpha_1"]}))
    point = {**v, "log_sd": np.full(4, -8.0), "chol_offdiag": np.zeros(2)}
    np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(point)), pc.unit_loglik(pc.packing.pack(w)),
                               atol=1e-5)


def test_k4_two_level_is_refused_before_compiling():
    df, cols, _ = data()
    with pytest.raises(bm.SpecificationError, match="n_classes=4"):
        bm.lta(df, cols, 4, cluster="school")
