"""Item (indicator) log densities given the latent class, eq. (1)-(2).

Categorical items follow the threshold formulation of eq. (1): y = k iff
tau_k < y* < tau_{k+1}, with y* logistic (logit link) or standard normal (probit)
of mean zero given the class, tau_0 = -inf and tau_m = +inf. So
P(y = k | c) = F(tau_{c,k+1}) - F(tau_{c,k}); for a binary item
P(y = 1 | c) = 1 - F(tau_c), the Mplus threshold convention.

Numerical choices
-----------------
* The class-by-category log-probability table is small (K x P x M) and depends
  on the parameters only; the data enter through a fixed 0/1 indicator matrix
  (N x P*M) with all-zero blocks for missing responses. The N x K log density
  is then one dense matrix product, which is the fastest form for both the value
  and the gradient, and gives full-information handling of missing items for
  free (a missing response contributes log 1 = 0).
* log(F(b) - F(a)) is computed as log F(b) + log1mexp(log F(a) - log F(b)), exact
  in the tails. Categories without a lower or upper threshold, and the padding of
  items with fewer categories, use a masked "safe" argument *before* the log
  (double-where), so no NaN can leak into the gradient through an unused branch.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesmix.exceptions import SpecificationError

LINKS = ("logit", "probit")


def check_link(link: str) -> str:
    if link not in LINKS:
        raise SpecificationError(f"link: got {link!r}; valid choices are 'logit', 'probit'.")
    return link


def log_cdf(x, link: str):
    """log F(x) for the logistic or standard normal distribution."""
    if link == "logit":
        return -pt.softplus(-x)
    # log Phi(x), stable in both tails
    return pt.switch(
        x > -5.0,
        pt.log1p(-0.5 * pt.erfc(pt.maximum(x, -5.0) / np.sqrt(2.0))),
        pt.log(0.5 * pt.erfcx(-pt.minimum(x, -5.0) / np.sqrt(2.0))) - 0.5 * pt.minimum(x, -5.0) ** 2,
    )


def category_log_probs(tau, n_categories: np.ndarray, link: str):
    """Log P(y_p = k | class c) for every class, item and category.

    Parameters
    ----------
    tau : tensor (K, P, M - 1)
        Ordered thresholds, padded beyond each item's m_p - 1 thresholds (values
        there are ignored).
    n_categories : int array (P,)
        Number of categories m_p of each item (M = max m_p).

    Returns
    -------
    tensor (K, P, M); entries of padded categories are 0.
    """
    n_categories = np.asarray(n_categories, dtype=int)
    m_max = int(n_categories.max())
    k = np.arange(m_max)
    has_lower = (k[None, :] >= 1) & (k[None, :] <= n_categories[:, None] - 1)  # (P, M)
    has_upper = k[None, :] <= n_categories[:, None] - 2
    valid = k[None, :] < n_categories[:, None]

    # upper threshold of category k is tau_k (0-based slot k), lower is slot k-1
    zero = pt.zeros_like(tau[..., :1])
    upper = pt.concatenate([tau, zero], axis=-1)  # (K, P, M)
    lower = pt.concatenate([zero, tau], axis=-1)
    upper = pt.where(has_upper, upper, 0.0)
    lower = pt.where(has_lower, lower, 0.0)

    both = has_lower & has_upper
    only_lower = has_lower & ~has_upper
    log_f_upper = pt.where(has_upper, log_cdf(upper, link), 0.0)
    # interior category: log F(b) + log(1 - F(a) / F(b))
    diff = pt.where(both, log_cdf(lower, link) - log_f_upper, -1.0)
    interior = pt.where(both, pt.log1mexp(pt.minimum(diff, -1e-300)), 0.0)
    # top category: log(1 - F(a)) = log F(-a) (F symmetric), exact in the upper tail
    top = pt.where(only_lower, log_cdf(-lower, link), 0.0)
    return pt.where(valid, pt.where(only_lower, top, log_f_upper + interior), 0.0)


def indicator_matrix(codes: np.ndarray, observed: np.ndarray, m_max: int) -> np.ndarray:
    """0/1 matrix (N, P * M): column p * M + k is 1 when y_p == k is observed."""
    n, p = codes.shape
    out = np.zeros((n, p, m_max))
    rows, cols = np.nonzero(observed)
    out[rows, cols, codes[rows, cols].astype(int)] = 1.0
    return out.reshape(n, p * m_max)


def categorical_loglik(indicators, log_probs):
    """Sum over items of log P(y_ip | c): (N, P*M) @ (P*M, K) -> (N, K)."""
    k = log_probs.shape[0]
    return pt.dot(indicators, log_probs.reshape((k, -1)).T)


def normal_loglik(y: np.ndarray, observed: np.ndarray, nu, theta):
    """Sum over continuous items of log N(y_ip | nu_cp, theta_p) -> (N, K).

    ``y`` has zeros where missing; ``observed`` masks those cells out. ``nu`` is
    (K, P_c); ``theta`` (P_c,) residual variances (class-invariant, Mplus' default)
    or (K, P_c).
    """
    y = y[:, None, :]
    obs = observed[:, None, :].astype("float64")
    theta = pt.as_tensor(theta)
    if theta.ndim == 1:
        theta = theta[None, :]
    z = (y - nu[None, :, :]) ** 2 / theta[None]
    return -0.5 * pt.sum(obs * (z + pt.log(2 * np.pi * theta[None])), axis=-1)


def interval_log_prob(lower, upper, has_lower, has_upper, link: str):
    """log P(lower < y* - eta < upper) = log(F(upper) - F(lower)) elementwise, for
    thresholds already shifted by a person-specific linear predictor.

    ``has_lower`` / ``has_upper`` (0/1 arrays broadcastable to the arguments) flag
    whether the category has a finite lower / upper threshold: the bottom category
    has only an upper one, the top category only a lower one. As in
    ``category_log_probs`` the unused branches get a safe argument before the log
    (double-where), so no NaN reaches the gradient; the top category uses
    log F(-a) (F symmetric), exact in the upper tail.
    """
    has_lower = pt.as_tensor(has_lower) > 0.5
    has_upper = pt.as_tensor(has_upper) > 0.5
    both = has_lower & has_upper
    log_f_upper = pt.where(has_upper, log_cdf(pt.where(has_upper, upper, 0.0), link), 0.0)
    log_f_lower = log_cdf(pt.where(both, lower, -1.0), link)
    diff = pt.where(both, log_f_lower - log_f_upper, -1.0)
    interior = log_f_upper + pt.where(both, pt.log1mexp(pt.minimum(diff, -1e-300)), 0.0)
    top = log_cdf(-pt.where(has_lower & ~has_upper, lower, 0.0), link)
    return pt.where(has_upper, interior, top)


# ---------------------------------------------------------------- per-item densities with batch axes
#
# The functions above return the item *sum* per class, (N, K). The families built
# on factors, item-level classes or guessing need the per-item terms and more
# batch axes (classes, quadrature nodes, time points), so these take arbitrary
# leading batch axes ``*batch`` and keep the item axis where asked. The numerics
# are those above: the data enter through fixed 0/1 indicators (a missing item is
# an all-zero block and contributes exactly 0), the log probabilities come from
# ``category_log_probs`` / ``interval_log_prob``.


def item_logliks(indicators3, log_probs, person_axis: bool = False):
    """Per-item log P(y_ip | ...) with batch axes.

    Parameters
    ----------
    indicators3 : array (N, P, M)
        0/1 indicators, ``indicator_matrix(...).reshape(N, P, M)``; a missing
        item is all zeros.
    log_probs : tensor (*batch, P, M), or (N, *batch, P, M) if ``person_axis``
        Log category probabilities (``category_log_probs``), shared by all
        persons, or, with ``person_axis=True``, one table per person (thresholds
        shifted by the person's own value, e.g. a factor at adaptive nodes). The
        two cases cannot be told apart from the shapes (a batch axis may have
        size N), hence the explicit flag.

    Returns
    -------
    tensor (N, *batch, P): log P(y_ip = observed category), 0 where missing.
    """
    log_probs = pt.as_tensor(log_probs)
    ind = pt.as_tensor(np.asarray(indicators3, dtype="float64")) if isinstance(indicators3, np.ndarray) \
        else pt.as_tensor(indicators3)
    n_batch = log_probs.ndim - 2 - (1 if person_axis else 0)
    if n_batch < 0:
        raise SpecificationError(
            f"item_logliks: log_probs of rank {log_probs.ndim} cannot be (*batch, P, M)"
            + (" with a leading person axis" if person_axis else "") + ".")
    ind = ind[(slice(None),) + (None,) * n_batch]  # (N, 1.., P, M)
    table = log_probs if person_axis else log_probs[None]
    # one-hot over categories: the sum picks the observed category's log probability
    return pt.sum(ind * table, axis=-1)


def categorical_loglik_batch(indicators, log_probs):
    """Sum over items of log P(y_ip | ...): (N, P*M) @ log_probs (*batch, P, M) -> (N, *batch).

    ``categorical_loglik`` for any number of batch axes (classes, nodes, ...): one
    dense matrix product against the flattened tables."""
    log_probs = pt.as_tensor(log_probs)
    n_batch = log_probs.ndim - 2
    batch_shape = [log_probs.shape[i] for i in range(n_batch)]
    flat = log_probs.reshape((-1, log_probs.shape[-2] * log_probs.shape[-1]))  # (prod batch, P*M)
    out = pt.dot(indicators, flat.T)  # (N, prod batch)
    return out.reshape((out.shape[0], *batch_shape))


def normal_item_logliks(y: np.ndarray, observed: np.ndarray, nu, theta, person_axis: bool = False):
    """Per-item log N(y_ip | nu_p, theta_p) with batch axes -> (N, *batch, Pc), 0 where missing.

    ``y`` (N, Pc) data (missing cells are ignored: set to 0 before use),
    ``observed`` (N, Pc) mask; ``nu`` (*batch, Pc) means, or (N, *batch, Pc) with
    ``person_axis=True``; ``theta`` residual variances (Pc,) or broadcastable to
    (*batch, Pc). Same formula as ``normal_loglik``.
    """
    nu = pt.as_tensor(nu)
    n_batch = nu.ndim - 1 - (1 if person_axis else 0)
    y = np.where(observed, y, 0.0)
    expand = (slice(None),) + (None,) * n_batch
    y = y[expand]
    obs = np.asarray(observed)[expand].astype("float64")
    theta = pt.as_tensor(theta)
    theta = theta[(None,) * (n_batch + 1 - theta.ndim)] if theta.ndim < n_batch + 1 else theta
    mean = nu if person_axis else nu[None]
    z = (y - mean) ** 2 / theta[None]
    return -0.5 * obs * (z + pt.log(2 * np.pi * theta[None]))


def item_mixture_loglik(log_prior, log_f_items, per_item: bool | None = None):
    """Item-level classes (grade of membership, eqs. 27-31): each item has its own
    class draw, so the classes are summed out item by item,

        sum_p log sum_k P(C_ip = k) f(y_ip | k)  ->  (...).

    ``log_f_items`` (..., P, K) per-item log densities given the class (0 for a
    missing item, which then contributes log sum_k P(C_ip = k) = 0 for a
    normalised prior); ``log_prior`` (..., K) membership log probabilities shared
    by the items, or (..., P, K) item-specific. ``per_item=None`` tells them apart
    by rank: item-specific iff ``log_prior.ndim == log_f_items.ndim`` (give
    explicit size-1 batch axes, or the flag, when broadcasting a lower-rank prior).
    """
    log_prior = pt.as_tensor(log_prior)
    log_f_items = pt.as_tensor(log_f_items)
    if per_item is None:
        per_item = log_prior.ndim == log_f_items.ndim
    if not per_item:
        log_prior = pt.expand_dims(log_prior, -2)  # (..., 1, K)
    return pt.sum(pt.logsumexp(log_prior + log_f_items, axis=-1), axis=-1)


def guessing_log_prob(log_g, log_f):
    """log(g + (1 - g) F) for a guessing (lower-asymptote, 3PL) item, eq. (42).

    ``log_g`` log guessing probability, ``log_f`` log F of the 2PL part (e.g.
    ``log_cdf(a * theta - b, link)``), broadcast together. Computed as
    logaddexp(log g, log1mexp(log g) + log F): no 1 - g or 1 - F is formed, so it
    stays accurate for g near 0 or 1 and F in either tail. The complementary
    response has log((1 - g)(1 - F)) = log1mexp(log g) + log(1 - F).
    """
    log_g = pt.as_tensor(log_g)
    return pt.logaddexp(log_g, pt.log1mexp(log_g) + log_f)
