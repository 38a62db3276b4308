"""Analytic marginal likelihood of normal outcomes over normal cluster random effects.

For one cluster with observation vector r (outcome minus fixed part, length n),
diagonal residual variances D = diag(theta_o) and random-effect design Z (n x q),

    r ~ N(0, Sigma),  Sigma = D + Z V Z',  V = L L'  (L: Cholesky factor of V).

The n x n matrix Sigma is never formed. With Z~ = D^(-1/2) Z and the q x q matrix

    B = I_q + L' Z~' Z~ L,    b = L' Z~' D^(-1/2) r,

the Woodbury identity and the matrix determinant lemma give

    r' Sigma^-1 r = r' D^-1 r - b' B^-1 b,   log det Sigma = sum_o log theta_o + log det B.

B is symmetric positive definite with eigenvalues >= 1 whatever V is, so the
formula stays well conditioned when a variance is estimated at 0 (L singular,
the boundary case of the paper's Table 2 designs) -- the usual form with V^-1
would not. Only per-cluster sums enter: sum r^2/theta, Z'D^-1 Z and Z'D^-1 r,
so the cost is linear in the number of observations. This path is exact; the
paper (section 5) notes that between-level classes need no numerical
integration, and this is the reason.

q is at most a handful here (random intercept and slopes), so the q x q solve
and determinant are written out elementwise for q <= 3 (batched Cholesky / solve
made compilation much slower, see ARCHITECTURE.md decision 4) and fall back to
PyTensor's batched linear algebra above that.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt


def small_quad_logdet(b_mat, b_vec, q: int):
    """For a batch (..., q, q) of SPD matrices B and vectors b (..., q): returns
    (b' B^-1 b, log det B), elementwise for q <= 3."""
    if q == 1:
        d = b_mat[..., 0, 0]
        return b_vec[..., 0] ** 2 / d, pt.log(d)
    if q == 2:
        a, c, d = b_mat[..., 0, 0], b_mat[..., 0, 1], b_mat[..., 1, 1]
        det = a * d - c * c
        x, y = b_vec[..., 0], b_vec[..., 1]
        return (d * x * x - 2 * c * x * y + a * y * y) / det, pt.log(det)
    if q == 3:
        m = [[b_mat[..., i, j] for j in range(3)] for i in range(3)]
        # cofactors of a symmetric 3 x 3 matrix
        c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1]
        c01 = -(m[1][0] * m[2][2] - m[1][2] * m[2][0])
        c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0]
        c11 = m[0][0] * m[2][2] - m[0][2] * m[2][0]
        c12 = -(m[0][0] * m[2][1] - m[0][1] * m[2][0])
        c22 = m[0][0] * m[1][1] - m[0][1] * m[1][0]
        det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02
        v = [b_vec[..., i] for i in range(3)]
        quad = (c00 * v[0] ** 2 + c11 * v[1] ** 2 + c22 * v[2] ** 2
                + 2 * c01 * v[0] * v[1] + 2 * c02 * v[0] * v[2] + 2 * c12 * v[1] * v[2]) / det
        return quad, pt.log(det)
    chol = pt.linalg.cholesky(b_mat)
    w = pt.linalg.solve_triangular(chol, b_vec[..., None], lower=True)[..., 0]
    return pt.sum(w**2, axis=-1), 2 * pt.sum(pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def cluster_normal_loglik(ztz, ztr, rtr, log_theta_sum, n_obs, chol, q: int):
    """Per-cluster marginal log-likelihood of normal observations.

    Parameters
    ----------
    ztz : (J, ..., q, q)   sum over the cluster's observations of z z' / theta
    ztr : (J, ..., q)      sum of z r / theta
    rtr : (J, ...)         sum of r^2 / theta
    log_theta_sum : (J, ...) sum of log theta over the cluster's observations
    n_obs : (J,) or (J, 1...) number of observations
    chol : (..., q, q)     Cholesky factor of V, broadcast against ztz's batch axes
    """
    lt = pt.swapaxes(chol, -1, -2)
    # G = L' ztz L and b = L' ztr as broadcast products (q is tiny)
    g = _ltzl(lt, ztz, chol)
    b_vec = pt.sum(lt * ztr[..., None, :], axis=-1)
    b_mat = g + pt.eye(q)
    quad, logdet = small_quad_logdet(b_mat, b_vec, q)
    return -0.5 * (n_obs * np.log(2 * np.pi) + log_theta_sum + logdet + rtr - quad)


def _ltzl(lt, ztz, chol):
    """L' A L for batches: (..., q, q)."""
    left = pt.sum(lt[..., :, :, None] * ztz[..., None, :, :], axis=-2)  # (..., q, q) = L' A
    return pt.sum(left[..., :, :, None] * chol[..., None, :, :], axis=-2)  # (L' A) L
