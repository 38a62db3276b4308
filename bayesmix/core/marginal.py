"""Marginalisation engine: log-sum-exp over classes and over quadrature nodes.

Every family reduces to two callbacks into this module:

* ``mixture_logsumexp(log_prior, log_f)``: sum a discrete latent class out,
  log sum_c P(C = c) f(y | c), exactly, on the log scale.
* ``integrate_clusters(person_loglik, ...)``: integrate normal cluster random
  effects u_j ~ N(0, L L') out of prod_i f(y_ij | u_j), by a rule from
  ``core.quadrature``; returns the per-cluster log-likelihood vector.

Classes are never sampled (DESIGN.md section 3): the likelihood is the exact
class sum and a deterministic numerical integral, the same graph for ML and NUTS.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytensor.tensor as pt

from bayesmix.core.quadrature import Integration


def mixture_logsumexp(log_prior, log_f, axis: int = -1):
    """log sum_c exp(log_prior_c + log_f_c) over the class axis."""
    return pt.logsumexp(log_prior + log_f, axis=axis)


def class_log_prior(logits):
    """Multinomial logit of eq. (4): append the reference class (alpha_K = 0) and
    normalise. ``logits`` has the K-1 non-reference classes on its last axis."""
    zeros = pt.zeros_like(logits[..., :1])
    return pt.special.log_softmax(pt.concatenate([logits, zeros], axis=-1), axis=-1)


def class_proportions(logits, chol=None, integration: Integration | None = None):
    """Model-implied class proportions (K,): the mean over rows of P(C = c) from the
    reference-coded ``logits`` (rows, K-1), eq. (4)/(17). With random class-logit
    intercepts u ~ N(0, chol chol') the probabilities are first integrated over u
    by ``integration``'s (non-adaptive) nodes."""
    if chol is None:
        return pt.mean(pt.exp(class_log_prior(logits)), axis=0)
    z, logw = integration.nodes(int(chol.type.shape[0]))
    u = pt.dot(pt.as_tensor(z), chol.T)  # (Q, D)
    probs = pt.exp(class_log_prior(logits[:, None, :] + u[None]))  # (rows, Q, K)
    return pt.mean(pt.sum(np.exp(logw)[None, :, None] * probs, axis=1), axis=0)


def segment_sum(x, index: np.ndarray, n_segments: int):
    """Sum rows of ``x`` (N, ...) into ``n_segments`` groups given by ``index``."""
    out = pt.zeros((n_segments, *[x.shape[i] for i in range(1, x.ndim)]), dtype=x.dtype)
    return pt.inc_subtensor(out[index], x)


class ClusterIntegral(NamedTuple):
    loglik: object  # (J,) per-cluster log-likelihood
    log_post: object  # (J, Q) log posterior weight of each node given the cluster's data
    nodes: object  # (J or 1, Q, D) random-effect values at the nodes


def integrate_clusters(
    person_loglik: Callable,
    integration: Integration,
    chol,
    cluster_idx: np.ndarray,
    n_clusters: int,
) -> ClusterIntegral:
    """Integrate u_j ~ N(0, chol chol') out of the product of the persons' likelihoods.

    Parameters
    ----------
    person_loglik : callable
        ``person_loglik(u)`` with ``u`` of shape (B, Q, D), B in {1, N}, returns the
        (N, Q) log-likelihood of each person at each node (classes already summed).
    chol : tensor (D, D)
        Lower-triangular Cholesky factor of the random-effect covariance.
    cluster_idx : int array (N,)
        Cluster code 0..J-1 of each person.
    """
    dim = int(chol.type.shape[0]) if chol.type.shape[0] is not None else None
    if dim is None:
        raise ValueError("chol must have a static shape")
    z, logw = integration.nodes(dim)
    z = pt.as_tensor(z)
    logw = pt.as_tensor(logw)

    if not integration.adaptive:
        u = pt.dot(z, chol.T)[None]  # (1, Q, D)
        s = segment_sum(person_loglik(u), cluster_idx, n_clusters)  # (J, Q)
        a = s + logw[None, :]
        ll = pt.logsumexp(a, axis=1)
        return ClusterIntegral(ll, a - ll[:, None], u)

    # Adaptive Gauss-Hermite: importance-reweight standard nodes placed at each
    # cluster's posterior mean m_j with scale C_j (chol of the posterior
    # covariance). Start at the prior (m = 0, C = chol) and refine n_adapt - 1
    # times; the graph is unrolled, so the result is a smooth function of the
    # parameters and its gradient is exact for the objective actually evaluated.
    # Small matrix algebra is written elementwise (broadcast + sum) and the
    # Cholesky of a 1x1 / 2x2 covariance in closed form: batched einsum and
    # Blockwise Cholesky made compilation ~60x slower here.
    chol_inv = pt.linalg.inv(chol) if dim > 1 else 1.0 / chol
    log_det_prior = pt.sum(pt.log(pt.abs(pt.diagonal(chol))))
    zz = -0.5 * pt.sum(z**2, axis=1)  # (Q,) log phi(z) without constants
    mean = pt.zeros((n_clusters, dim))
    scale = pt.repeat(chol[None], n_clusters, axis=0)  # (J, D, D)
    for it in range(integration.n_adapt):
        u = mean[:, None, :] + pt.sum(scale[:, None, :, :] * z[None, :, None, :], axis=-1)  # (J, Q, D)
        v = pt.sum(chol_inv[None, None, :, :] * u[:, :, None, :], axis=-1)
        log_prior = -0.5 * pt.sum(v**2, axis=-1) - log_det_prior
        log_det_prop = pt.sum(pt.log(pt.abs(_diag(scale, dim))), axis=1)
        log_prop = zz[None, :] - log_det_prop[:, None]
        s = segment_sum(person_loglik(u[cluster_idx]), cluster_idx, n_clusters)
        a = s + logw[None, :] + log_prior - log_prop
        ll = pt.logsumexp(a, axis=1)
        if it == integration.n_adapt - 1:
            return ClusterIntegral(ll, a - ll[:, None], u)
        p = pt.exp(a - ll[:, None])  # (J, Q)
        mean = pt.sum(p[:, :, None] * u, axis=1)
        dev = u - mean[:, None, :]
        cov = pt.sum(p[:, :, None, None] * dev[:, :, :, None] * dev[:, :, None, :], axis=1)
        scale = _batched_chol(cov, dim)
    raise AssertionError("unreachable")


def _diag(m, dim: int):
    """Diagonal (J, D) of a batch of D x D matrices."""
    return pt.stack([m[:, i, i] for i in range(dim)], axis=1)


def _batched_chol(cov, dim: int, jitter: float = 1e-8):
    """Cholesky factors of a batch (J, D, D) of small covariance matrices."""
    if dim == 1:
        return pt.sqrt(cov + jitter)
    if dim == 2:
        l11 = pt.sqrt(cov[:, 0, 0] + jitter)
        l21 = cov[:, 1, 0] / l11
        l22 = pt.sqrt(pt.maximum(cov[:, 1, 1] - l21**2, 0.0) + jitter)
        zero = pt.zeros_like(l11)
        return pt.stack([pt.stack([l11, zero], -1), pt.stack([l21, l22], -1)], axis=1)
    return pt.linalg.cholesky(cov + jitter * np.eye(dim))


def chol_from_unconstrained(log_diag, offdiag, dim: int):
    """Lower-triangular Cholesky factor from log-diagonal (D,) and below-diagonal
    (D(D-1)/2,) unconstrained parameters (row-major order of ``np.tril_indices``)."""
    chol = pt.zeros((dim, dim))
    chol = pt.set_subtensor(chol[np.diag_indices(dim)], pt.exp(log_diag))
    if dim > 1:
        rows, cols = np.tril_indices(dim, -1)
        chol = pt.set_subtensor(chol[rows, cols], offdiag)
    return chol
