"""Data generators, one per family: each returns (DataFrame, truth) where truth
holds the natural parameters under the names of the parameter table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from bayesmix.exceptions import SpecificationError


def simulate_lca(
    tau: np.ndarray,
    alpha: np.ndarray,
    *,
    n_clusters: int | None = None,
    cluster_size: int = 10,
    n_persons: int | None = None,
    psi: np.ndarray | None = None,
    link: str = "logit",
    seed: int | None = 0,
):
    """Binary LCA data, single-level (``n_persons``) or two-level (``n_clusters``
    x ``cluster_size``, class logits alpha_c + u_cj with u_j ~ N(0, psi)).

    ``tau`` (K, P): thresholds, P(y = 1 | c) = 1 - F(tau_cp); ``alpha`` (K-1,).
    Returns (DataFrame with items y1..yP [and ``cluster``], truth dict).
    """
    tau = np.atleast_2d(np.asarray(tau, dtype=float))
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    k, p = tau.shape
    if alpha.shape != (k - 1,):
        raise SpecificationError(f"alpha: got shape {alpha.shape}; need ({k - 1},) for {k} classes.")
    if (n_clusters is None) == (n_persons is None):
        raise SpecificationError("give exactly one of n_clusters (two-level) or n_persons (single level).")
    rng = np.random.default_rng(seed)
    n = n_persons if n_persons is not None else n_clusters * cluster_size
    logits = np.tile(alpha, (n, 1))
    cluster = None
    if n_clusters is not None:
        cluster = np.repeat(np.arange(n_clusters), cluster_size)
        if psi is not None:
            psi = np.atleast_2d(np.asarray(psi, dtype=float))
            u = rng.multivariate_normal(np.zeros(k - 1), psi, size=n_clusters)
            logits = logits + u[cluster]
    prob = special.softmax(np.concatenate([logits, np.zeros((n, 1))], axis=1), axis=1)
    cls = (prob.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    cdf = special.expit if link == "logit" else special.ndtr
    p1 = 1.0 - cdf(tau[cls])
    y = (rng.random((n, p)) < p1).astype(int)
    df = pd.DataFrame(y, columns=[f"y{j + 1}" for j in range(p)])
    if cluster is not None:
        df.insert(0, "cluster", [f"c{j:03d}" for j in cluster])
    truth = {"tau": tau, "alpha": alpha, "class": cls + 1}
    if psi is not None:
        truth["psi"] = psi
    return df, truth
