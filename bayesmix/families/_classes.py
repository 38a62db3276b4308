"""Class-label bookkeeping shared by the families: reference-coded class logits
under a permutation of the classes, and the Cholesky factor of a covariance.

Class logits are coded against the last class (alpha_K = beta_K = 0, eq. 4). If
new class c is old class perm[c], the full logit vector l (with l_K = 0) becomes
l'_c = l_perm[c] - l_perm[K], a linear map A (K x K) whose leading (K-1) x (K-1)
block acts on the free logits. Random class-logit intercepts transform the same
way, so their covariance becomes A Psi A'.
"""

from __future__ import annotations

import numpy as np


def reference_map(perm: np.ndarray) -> np.ndarray:
    """(K-1, K-1) map of reference-coded logits under ``perm``."""
    perm = np.asarray(perm)
    k = perm.size
    a_mat = np.zeros((k, k))
    a_mat[np.arange(k), perm] = 1.0
    a_mat[:, perm[-1]] -= 1.0
    return a_mat[:-1, :-1]


def chol_matrix(log_diag: np.ndarray, offdiag: np.ndarray | None) -> np.ndarray:
    """Lower Cholesky factors (..., d, d) from log-diagonal (..., d) and row-major
    below-diagonal (..., d(d-1)/2) values (numpy twin of ``chol_from_unconstrained``)."""
    d = log_diag.shape[-1]
    chol = np.zeros(log_diag.shape[:-1] + (d, d))
    idx = np.arange(d)
    chol[..., idx, idx] = np.exp(log_diag)
    if d > 1:
        r, c = np.tril_indices(d, -1)
        chol[..., r, c] = offdiag
    return chol


def recode_chol(a_red: np.ndarray, log_diag: np.ndarray, offdiag: np.ndarray | None):
    """Cholesky parameters of A Psi A' given those of Psi."""
    d = log_diag.shape[-1]
    chol = chol_matrix(log_diag, offdiag)
    cov = a_red @ chol @ np.swapaxes(chol, -1, -2) @ a_red.T
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    # relative jitter: a variance estimated at ~0 (boundary) stays factorable
    jitter = 1e-10 * np.maximum(np.trace(cov, axis1=-2, axis2=-1) / d, 1e-300)
    new = np.linalg.cholesky(cov + jitter[..., None, None] * np.eye(d))
    out_diag = np.log(np.diagonal(new, axis1=-2, axis2=-1))
    if d > 1:
        r, c = np.tril_indices(d, -1)
        return out_diag, new[..., r, c]
    return out_diag, None


def permute_logits(values: dict, perm, names=("alpha", "beta"), chol_names=("chol_log_diag", "chol_offdiag"),
                   extra=()) -> dict:
    """Re-express reference-coded class-logit parameters after relabelling.

    ``names[0]`` is the intercept (..., K-1), ``names[1]`` the slopes
    (..., K-1, Q); ``extra`` lists further (..., K-1, X) arrays coded the same
    way (e.g. the effect of a between class on the within class, eq. 24)."""
    out = dict(values)
    a_red = reference_map(perm)
    intercept, slopes = names
    if intercept in values:
        out[intercept] = values[intercept] @ a_red.T
    for name in (slopes, *extra):
        if name in values:
            out[name] = np.einsum("cd,...dq->...cq", a_red, values[name])
    if chol_names[0] in values:
        diag, off = recode_chol(a_red, values[chol_names[0]], values.get(chol_names[1]))
        out[chol_names[0]] = diag
        if off is not None:
            out[chol_names[1]] = off
    return out
