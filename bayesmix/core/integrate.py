"""Integrating normal random effects out of a likelihood by a quadrature rule.

One primitive, ``integrate``, serves every family (paper section 10):

    loglik_g = log ∫ prod_{rows r in unit g} f(y_r | u) dN(u; 0, L L'),

evaluated as logsumexp_q [sum_r log f(y_r | u_q) + log w_q] with u_q = L z_q at
the standard-normal nodes z_q of ``core.quadrature``. The callback ``loglik_at(u)``
returns the row log-likelihoods at the nodes, shape (n_rows, Q, *keep):

* ``unit_idx=None``: each row is its own unit (a person-level factor or random
  intercept); ``unit_idx`` given: rows are summed into units (persons into
  clusters) by ``segment_sum``, as for cluster random effects.
* trailing "kept" axes stay outside the integral: a class axis (the integral is
  then one per class, e.g. class-specific loadings), or the node axis of an
  outer integral when this call is nested inside an outer ``integrate``'s
  callback (a two-level model: inner integral over the person factor, outer
  over the cluster effect, the inner result being (n_persons, Q_outer)).

Numerical choices
-----------------
* Everything stays on the log scale and the node sum is one logsumexp: the
  product of a cluster's likelihoods underflows long before its log does.
* The nodes are constants and only the Cholesky factor L carries parameters, so
  the objective is a smooth deterministic function of the parameters (the same
  graph for ML and NUTS); ``log_post`` (the log posterior weight of each node
  given the unit's data) comes for free and gives EB scores and posterior moments.
* Adaptive Gauss-Hermite (``rule.adaptive``) moves the nodes to each unit's
  posterior mean and scale by ``n_adapt`` fixed-point passes unrolled in the
  graph. It needs one set of moments per unit, so it is supported without kept
  axes only; the kept axes are only known from the callback's output, so the
  check is made on its ``ndim``.

Also here: the small matrix helpers the families build covariance factors with
(``chol_from_unconstrained``, ``block_diag``, ``structural_chol``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytensor.tensor as pt

from bayesmix.core.quadrature import Integration
from bayesmix.exceptions import SpecificationError


class Integral(NamedTuple):
    loglik: object  # (n_units, *keep) log of the integrated likelihood of each unit
    log_post: object  # (n_units, Q, *keep) log posterior weight of each node given the unit's data
    nodes: object  # (1 or n_units, Q, D) random-effect values at the nodes


class ClusterIntegral(NamedTuple):
    loglik: object  # (J,) per-cluster log-likelihood
    log_post: object  # (J, Q) log posterior weight of each node given the cluster's data
    nodes: object  # (J or 1, Q, D) random-effect values at the nodes


def segment_sum(x, index: np.ndarray, n_segments: int):
    """Sum rows of ``x`` (N, ...) into ``n_segments`` groups given by ``index``."""
    out = pt.zeros((n_segments, *[x.shape[i] for i in range(1, x.ndim)]), dtype=x.dtype)
    return pt.inc_subtensor(out[index], x)


def integrate(
    loglik_at: Callable,
    rule: Integration,
    chol,
    unit_idx: np.ndarray | None = None,
    n_units: int | None = None,
) -> Integral:
    """Integrate u ~ N(0, chol chol') out of the product of the rows' likelihoods.

    Parameters
    ----------
    loglik_at : callable
        ``loglik_at(u)`` with ``u`` of shape (B, Q, D), B in {1, n_rows} (B = 1 for
        the fixed rules, whose nodes are shared; B = n_rows for adaptive nodes),
        returns the (n_rows, Q, *keep) log-likelihood of each row at each node.
    rule : Integration
    chol : tensor (D, D), static shape
        Lower-triangular Cholesky factor of the random-effect covariance.
    unit_idx : int array (n_rows,) or None
        Unit code 0..n_units-1 of each row; None: every row is its own unit.
    n_units : int, optional
        Number of units when ``unit_idx`` is given (default ``max(unit_idx) + 1``);
        ignored when ``unit_idx`` is None.

    Returns
    -------
    Integral(loglik (n_units, *keep), log_post (n_units, Q, *keep), nodes (1 or n_units, Q, D))
    """
    dim = int(chol.type.shape[0]) if chol.type.shape[0] is not None else None
    if dim is None:
        raise ValueError("chol must have a static shape")
    if unit_idx is not None:
        unit_idx = np.asarray(unit_idx)
        if n_units is None:
            n_units = int(unit_idx.max()) + 1
    z, logw = rule.nodes(dim)
    z = pt.as_tensor(z)
    logw = pt.as_tensor(logw)

    if not rule.adaptive:
        u = pt.dot(z, chol.T)[None]  # (1, Q, D)
        rows = _checked(loglik_at(u), adaptive=False)  # (n_rows, Q, *keep)
        n_keep = rows.ndim - 2
        s = rows if unit_idx is None else segment_sum(rows, unit_idx, n_units)  # (n_units, Q, *keep)
        a = s + logw[(None, slice(None)) + (None,) * n_keep]
        ll = pt.logsumexp(a, axis=1)
        return Integral(ll, a - ll[:, None], u)

    # Adaptive Gauss-Hermite: importance-reweight standard nodes placed at each
    # unit's posterior mean m_j with scale C_j (chol of the posterior
    # covariance). Start at the prior (m = 0, C = chol) and refine n_adapt - 1
    # times; the graph is unrolled, so the result is a smooth function of the
    # parameters and its gradient is exact for the objective actually evaluated.
    # Small matrix algebra is written elementwise (broadcast + sum) and the
    # Cholesky of a 1x1 / 2x2 covariance in closed form: batched einsum and
    # Blockwise Cholesky made compilation ~60x slower here.
    chol_inv = pt.linalg.inv(chol) if dim > 1 else 1.0 / chol
    log_det_prior = pt.sum(pt.log(pt.abs(pt.diagonal(chol))))
    zz = -0.5 * pt.sum(z**2, axis=1)  # (Q,) log phi(z) without constants
    if unit_idx is None:
        # Rows are units and their number is only known from the callback: the
        # first pass sits at the prior (m = 0, C = chol), where every unit shares
        # the nodes and the importance ratio prior / proposal is exactly 1, so it
        # is the plain rule evaluated at (1, Q, D).
        u = pt.dot(z, chol.T)[None]
        a = _checked(loglik_at(u), adaptive=True) + logw[None, :]
        ll = pt.logsumexp(a, axis=1)
        if rule.n_adapt == 1:
            return Integral(ll, a - ll[:, None], u)
        mean, scale = _posterior_moments(a, ll, u, dim)
        first = 1
    else:
        mean = pt.zeros((n_units, dim))
        scale = pt.repeat(chol[None], n_units, axis=0)  # (J, D, D)
        first = 0
    for it in range(first, rule.n_adapt):
        u = mean[:, None, :] + pt.sum(scale[:, None, :, :] * z[None, :, None, :], axis=-1)  # (J, Q, D)
        v = pt.sum(chol_inv[None, None, :, :] * u[:, :, None, :], axis=-1)
        log_prior = -0.5 * pt.sum(v**2, axis=-1) - log_det_prior
        log_det_prop = pt.sum(pt.log(pt.abs(_diag(scale, dim))), axis=1)
        log_prop = zz[None, :] - log_det_prop[:, None]
        if unit_idx is None:
            s = _checked(loglik_at(u), adaptive=True)
        else:
            s = segment_sum(_checked(loglik_at(u[unit_idx]), adaptive=True), unit_idx, n_units)
        a = s + logw[None, :] + log_prior - log_prop
        ll = pt.logsumexp(a, axis=1)
        if it == rule.n_adapt - 1:
            return Integral(ll, a - ll[:, None], u)
        mean, scale = _posterior_moments(a, ll, u, dim)
    raise AssertionError("unreachable")


def integrate_clusters(
    person_loglik: Callable,
    integration: Integration,
    chol,
    cluster_idx: np.ndarray,
    n_clusters: int,
) -> ClusterIntegral:
    """Integrate u_j ~ N(0, chol chol') out of the product of the persons' likelihoods.

    ``integrate`` with persons summed into clusters and no kept axis.

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
    return ClusterIntegral(*integrate(person_loglik, integration, chol, cluster_idx, n_clusters))


def _checked(rows, adaptive: bool):
    """The callback's (n_rows, Q, *keep) output, after checking its rank."""
    if rows.ndim < 2:
        raise SpecificationError(
            f"integrate: the log-likelihood callback returned a tensor of rank {rows.ndim}; it must "
            "return (n_rows, Q, *keep): one value per row and node, then any kept axes.")
    if adaptive and rows.ndim > 2:
        raise SpecificationError(
            f"integrate: the callback returned {rows.ndim - 2} kept axis/axes (rank {rows.ndim} output), "
            "but adaptive Gauss-Hermite places one set of nodes per unit and cannot adapt them per "
            "kept index (class, outer node). Use a fixed rule such as Integration('gauss_hermite') or "
            "Integration('trapezoid'), or sum the kept axis out inside the callback.")
    return rows


def _posterior_moments(a, ll, u, dim: int):
    """Posterior mean (J, D) and Cholesky scale (J, D, D) of u from the node weights."""
    p = pt.exp(a - ll[:, None])  # (J, Q)
    mean = pt.sum(p[:, :, None] * u, axis=1)
    dev = u - mean[:, None, :]
    cov = pt.sum(p[:, :, None, None] * dev[:, :, :, None] * dev[:, :, None, :], axis=1)
    return mean, _batched_chol(cov, dim)


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


# ---------------------------------------------------------------- covariance factors


def chol_from_unconstrained(log_diag, offdiag, dim: int):
    """Lower-triangular Cholesky factor from log-diagonal (D,) and below-diagonal
    (D(D-1)/2,) unconstrained parameters (row-major order of ``np.tril_indices``)."""
    chol = pt.zeros((dim, dim))
    chol = pt.set_subtensor(chol[np.diag_indices(dim)], pt.exp(log_diag))
    if dim > 1:
        rows, cols = np.tril_indices(dim, -1)
        chol = pt.set_subtensor(chol[rows, cols], offdiag)
    return chol


def block_diag(*chols):
    """Block-diagonal (sum D_b, sum D_b) matrix from square blocks of static shape,
    e.g. the joint Cholesky factor of independent random-effect groups (a block
    diagonal of lower-triangular blocks is lower triangular). One block is
    returned as is."""
    blocks = [pt.as_tensor(b) for b in chols]
    if not blocks:
        raise ValueError("block_diag needs at least one block")
    sizes = []
    for b in blocks:
        n_rows, n_cols = b.type.shape
        if n_rows is None or n_rows != n_cols:
            raise ValueError(f"block_diag: blocks must be square with a static shape; got {b.type.shape}")
        sizes.append(int(n_rows))
    if len(blocks) == 1:
        return blocks[0]
    out = pt.zeros((sum(sizes), sum(sizes)))
    i = 0
    for b, n in zip(blocks, sizes):
        out = pt.set_subtensor(out[i: i + n, i: i + n], b)
        i += n
    return out


def structural_chol(log_sd, b_lower=None):
    """Factor L = (I - B)^{-1} diag(exp(log_sd)) of the covariance of u solving
    u = mu + B u + e, e ~ N(0, diag(sd^2)), B strictly lower triangular (a
    recursive structural model such as alpha_2j = mu + beta alpha_1j + eps_j,
    eq. 15): Cov(u) = L L'.

    ``log_sd`` (D,) static shape; ``b_lower`` (D(D-1)/2,) the below-diagonal
    elements of B in row-major ``np.tril_indices(D, -1)`` order (B[i, j]: effect
    of u_j on u_i). I - B is unit lower triangular, so its inverse is the finite
    Neumann series I + B + ... + B^{D-1} (B is nilpotent): no solve, exact zeros
    above the diagonal, and L is lower triangular with diagonal sd, i.e. exactly
    the Cholesky factor of Cov(u), usable as ``chol`` in ``integrate``.
    """
    log_sd = pt.as_tensor(log_sd)
    dim = log_sd.type.shape[0]
    if dim is None:
        raise ValueError("structural_chol: log_sd must have a static shape")
    dim = int(dim)
    sd = pt.exp(log_sd)
    if dim == 1:
        return sd[None, :]
    rows, cols = np.tril_indices(dim, -1)
    b = pt.set_subtensor(pt.zeros((dim, dim))[rows, cols], b_lower)
    inv = pt.eye(dim)
    power = pt.eye(dim)
    for _ in range(dim - 1):
        power = pt.dot(power, b)
        inv = inv + power
    return inv * sd[None, :]
