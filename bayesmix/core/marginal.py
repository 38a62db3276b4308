"""Marginalisation engine: log-sum-exp over classes and over quadrature nodes.

Every family reduces to two callbacks into this module:

* ``mixture_logsumexp(log_prior, log_f)``: sum a discrete latent class out,
  log sum_c P(C = c) f(y | c), exactly, on the log scale.
* ``integrate_clusters(person_loglik, ...)``: integrate normal cluster random
  effects u_j ~ N(0, L L') out of prod_i f(y_ij | u_j), by a rule from
  ``core.quadrature``; returns the per-cluster log-likelihood vector. It lives
  in ``core.integrate`` (with the general ``integrate``, ``segment_sum`` and the
  Cholesky helpers) and is re-exported here, so existing imports keep working.

Classes are never sampled (DESIGN.md section 3): the likelihood is the exact
class sum and a deterministic numerical integral, the same graph for ML and NUTS.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesmix.core.integrate import (  # noqa: F401  (re-exported)
    ClusterIntegral,
    Integral,
    _batched_chol,
    _diag,
    block_diag,
    chol_from_unconstrained,
    integrate,
    integrate_clusters,
    segment_sum,
    structural_chol,
)
from bayesmix.core.quadrature import Integration

__all__ = [
    "mixture_logsumexp", "class_log_prior", "class_proportions",
    # re-exported from core.integrate
    "ClusterIntegral", "Integral", "block_diag", "chol_from_unconstrained", "integrate", "integrate_clusters",
    "segment_sum", "structural_chol", "_batched_chol", "_diag",
]


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
