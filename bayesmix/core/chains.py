"""Latent class chains over T occasions (latent transition analysis, eqs. 6-9).

A person's class C_t at occasions t = 1..T is a latent Markov chain,

    P(C_1 = k) = init_k,   P(C_{t+1} = k | C_t = j) = trans_{t, j, k},

and the indicators at occasion t depend on C_t only: f(y_t | C_t = k) = emit_{t, k}
(itself a product over that occasion's items). The likelihood is the sum over
all K^T class paths, computed here by the forward recursion in O(T K^2) instead
of O(K^T); ``pattern_loglik`` covers the general, non-Markov case where C_t may
depend on all earlier classes (one prior probability per path, eq. 9's full
dependence), by explicit enumeration of the K^T paths.

Conventions
-----------
* All inputs are log probabilities with arbitrary leading batch axes ``...``
  (persons, clusters' nodes, ...) that broadcast against each other.
* ``log_trans[..., t, j, k] = log P(C_{t+1} = k | C_t = j)`` (row j: from,
  column k: to), one matrix per transition, shape (..., T-1, K, K); or one
  matrix (..., K, K) shared by all transitions (time-homogeneous chain). The
  rule, with ``time_varying=None``: give ``log_trans`` the same number of batch
  axes as ``log_emit`` (size-1 axes broadcast); then rank
  ``log_emit.ndim + 1`` means one matrix per transition and rank
  ``log_emit.ndim`` one shared matrix. Pass ``time_varying`` explicitly to
  broadcast a lower-rank ``log_trans``.
* ``log_emit`` (..., T, K) must have a static T.

Numerical choices
-----------------
* Log space throughout, each step a logsumexp over the previous class: the
  forward variables of a long chain with many items underflow as products.
* The recursion is unrolled in Python over T (T is small and static): the
  graph is then plain elementwise ops and reductions, differentiable and fast to
  compile, with no Scan.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt

from bayesmix.exceptions import SpecificationError


class MarkovPosteriors(NamedTuple):
    marginals: object  # (..., T, K) P(C_t = k | y)
    pairs: object  # (..., T-1, K, K) P(C_t = j, C_{t+1} = k | y)


def _n_occasions(log_emit) -> int:
    n_t = log_emit.type.shape[-2]
    if n_t is None:
        raise SpecificationError(
            "chains: log_emit must have a static number of occasions T (its second-to-last axis); "
            "build it with a known shape, e.g. pt.stack over occasions or pt.specify_shape.")
    return int(n_t)


def _transitions(log_trans, log_emit, n_t: int, time_varying: bool | None):
    """List of the T-1 transition matrices (..., K, K), by the rule of the module docstring."""
    log_trans = pt.as_tensor(log_trans)
    if time_varying is None:
        if log_trans.ndim == log_emit.ndim + 1:
            time_varying = True
        elif log_trans.ndim == log_emit.ndim:
            time_varying = False
        else:
            raise SpecificationError(
                f"chains: log_trans has rank {log_trans.ndim} and log_emit rank {log_emit.ndim}; give log_trans "
                "the batch axes of log_emit and shape (..., T-1, K, K) (one matrix per transition) or "
                "(..., K, K) (shared), or pass time_varying=True/False.")
    if not time_varying:
        return [log_trans] * (n_t - 1)
    if log_trans.type.shape[-3] is not None and log_trans.type.shape[-3] != n_t - 1:
        raise SpecificationError(
            f"chains: log_trans has {log_trans.type.shape[-3]} transition matrices for T = {n_t} occasions; "
            f"need T-1 = {n_t - 1}.")
    return [log_trans[..., t, :, :] for t in range(n_t - 1)]


def _forward(log_init, log_trans, log_emit, time_varying):
    log_emit = pt.as_tensor(log_emit)
    n_t = _n_occasions(log_emit)
    trans = _transitions(log_trans, log_emit, n_t, time_varying)
    # alpha_t[k] = log P(y_1..y_t, C_t = k)
    alpha = [pt.as_tensor(log_init) + log_emit[..., 0, :]]
    for t in range(n_t - 1):
        alpha.append(pt.logsumexp(alpha[-1][..., :, None] + trans[t], axis=-2) + log_emit[..., t + 1, :])
    return log_emit, trans, alpha


def markov_loglik(log_init, log_trans, log_emit, time_varying: bool | None = None):
    """log sum over all K^T class paths of P(path) prod_t f(y_t | C_t), eqs. (6)-(8).

    ``log_init`` (..., K), ``log_trans`` (..., T-1, K, K) or (..., K, K) (see the
    module docstring), ``log_emit`` (..., T, K) -> (...).
    """
    _, _, alpha = _forward(log_init, log_trans, log_emit, time_varying)
    return pt.logsumexp(alpha[-1], axis=-1)


def markov_posteriors(log_init, log_trans, log_emit, time_varying: bool | None = None) -> MarkovPosteriors:
    """Posterior class probabilities of a latent Markov chain by forward-backward
    in log space: marginals (..., T, K) = P(C_t = k | y) and pair marginals
    (..., T-1, K, K) = P(C_t = j, C_{t+1} = k | y)."""
    log_emit, trans, alpha = _forward(log_init, log_trans, log_emit, time_varying)
    n_t = len(alpha)
    ll = pt.logsumexp(alpha[-1], axis=-1)
    # beta_t[j] = log P(y_{t+1}..y_T | C_t = j); beta_T = 0
    beta = [pt.zeros_like(alpha[-1])]
    for t in range(n_t - 2, -1, -1):
        nxt = log_emit[..., t + 1, :] + beta[0]  # (..., K) over C_{t+1}
        beta.insert(0, pt.logsumexp(trans[t] + nxt[..., None, :], axis=-1))
    marginals = pt.stack([pt.exp(a + b - ll[..., None]) for a, b in zip(alpha, beta)], axis=-2)
    if n_t == 1:
        pairs = pt.zeros((*[marginals.shape[i] for i in range(marginals.ndim - 2)], 0,
                          marginals.shape[-1], marginals.shape[-1]))
        return MarkovPosteriors(marginals, pairs)
    pairs = pt.stack([
        pt.exp(alpha[t][..., :, None] + trans[t] + (log_emit[..., t + 1, :] + beta[t + 1])[..., None, :]
               - ll[..., None, None])
        for t in range(n_t - 1)
    ], axis=-3)
    return MarkovPosteriors(marginals, pairs)


# ---------------------------------------------------------------- explicit class paths


def all_patterns(n_classes: int, n_occasions: int) -> np.ndarray:
    """All K^T class paths (S, T), S = K^T, in lexicographic order (last occasion fastest)."""
    return np.array(list(itertools.product(range(n_classes), repeat=n_occasions)), dtype=int).reshape(
        -1, n_occasions)


def _pattern_emit(log_emit, patterns: np.ndarray):
    """(..., S): sum_t log_emit[..., t, patterns[s, t]]."""
    log_emit = pt.as_tensor(log_emit)
    patterns = np.asarray(patterns, dtype=int)
    n_t = patterns.shape[1]
    return sum(pt.take(log_emit[..., t, :], patterns[:, t], axis=-1) for t in range(n_t))


def pattern_loglik(log_pattern_prior, log_emit, patterns: np.ndarray):
    """log sum_s P(path s) prod_t f(y_t | C_t = patterns[s, t]) -> (...).

    ``log_pattern_prior`` (..., S) log prior of each path (any dependence of C_t
    on earlier classes, eq. 9), ``log_emit`` (..., T, K), ``patterns`` int (S, T),
    e.g. ``all_patterns(K, T)``.
    """
    return pt.logsumexp(pt.as_tensor(log_pattern_prior) + _pattern_emit(log_emit, patterns), axis=-1)


def pattern_posteriors(log_pattern_prior, log_emit, patterns: np.ndarray):
    """P(path s | y) (..., S)."""
    joint = pt.as_tensor(log_pattern_prior) + _pattern_emit(log_emit, patterns)
    return pt.exp(joint - pt.logsumexp(joint, axis=-1, keepdims=True))


def markov_pattern_log_prior(log_init, log_trans, patterns: np.ndarray, time_varying: bool | None = None):
    """log P(path s) (..., S) of each path under a Markov chain: log init[p_1] +
    sum_t log trans[t, p_t, p_{t+1}]; ``log_trans`` as in ``markov_loglik``, with
    its batch axes counted against those of ``log_init`` (rank + 2 per transition,
    rank + 1 shared)."""
    patterns = np.asarray(patterns, dtype=int)
    n_t = patterns.shape[1]
    log_init = pt.as_tensor(log_init)
    log_trans = pt.as_tensor(log_trans)
    if time_varying is None:
        if log_trans.ndim not in (log_init.ndim + 1, log_init.ndim + 2):
            raise SpecificationError(
                f"chains: log_trans has rank {log_trans.ndim} and log_init rank {log_init.ndim}; give log_trans "
                "the batch axes of log_init, or pass time_varying=True/False.")
        time_varying = log_trans.ndim == log_init.ndim + 2
    out = pt.take(log_init, patterns[:, 0], axis=-1)
    for t in range(n_t - 1):
        mat = log_trans[..., t, :, :] if time_varying else log_trans
        out = out + mat[..., patterns[:, t], patterns[:, t + 1]]
    return out


# ---------------------------------------------------------------- most likely path (numpy)


def viterbi(log_init: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray, time_varying: bool | None = None):
    """Most likely class path (Viterbi) on numpy arrays.

    Same shapes and ``log_trans`` rule as ``markov_loglik``; returns the path
    (..., T) int and its log joint probability log P(path, y) (...). Ties go to
    the lowest class.
    """
    log_init = np.asarray(log_init, dtype=float)
    log_trans = np.asarray(log_trans, dtype=float)
    log_emit = np.asarray(log_emit, dtype=float)
    n_t = log_emit.shape[-2]
    if time_varying is None:
        if log_trans.ndim not in (log_emit.ndim, log_emit.ndim + 1):
            raise SpecificationError(
                f"viterbi: log_trans has rank {log_trans.ndim} and log_emit rank {log_emit.ndim}; give log_trans "
                "the batch axes of log_emit, or pass time_varying=True/False.")
        time_varying = log_trans.ndim == log_emit.ndim + 1
    delta = log_init + log_emit[..., 0, :]
    back = []
    for t in range(n_t - 1):
        mat = log_trans[..., t, :, :] if time_varying else log_trans
        scores = delta[..., :, None] + mat  # (..., K from, K to)
        back.append(np.argmax(scores, axis=-2))
        delta = np.max(scores, axis=-2) + log_emit[..., t + 1, :]
    best = np.argmax(delta, axis=-1)
    log_joint = np.max(delta, axis=-1)
    path = [best]
    for ptr in reversed(back):
        best = np.take_along_axis(np.broadcast_to(ptr, best.shape + ptr.shape[-1:]), best[..., None], axis=-1)[..., 0]
        path.insert(0, best)
    return np.stack(path, axis=-1), log_joint
