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
