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
    beta: np.ndarray | None = None,
    class_level: str = "within",
    link: str = "logit",
    seed: int | None = 0,
):
    """Binary LCA data, single-level (``n_persons``) or two-level (``n_clusters``
    x ``cluster_size``, class logits alpha_c + u_cj with u_j ~ N(0, psi)).

    ``tau`` (K, P): thresholds, P(y = 1 | c) = 1 - F(tau_cp); ``alpha`` (K-1,).
    ``beta`` (K-1, Q), optional: slopes of Q standard normal covariates x1..xQ
    in the class logits (eq. 4); they are drawn per person, or per cluster with
    ``class_level="between"``.
    ``class_level="between"``: one class per cluster, C_ij = C_j (eq. 16, 17);
    needs ``n_clusters`` and no ``psi``.
    Returns (DataFrame with items y1..yP [, ``cluster``] [, x1..xQ], truth dict;
    truth["class"] is the 1-based class of every person, and with a between
    class truth["cluster_class"] that of every cluster).
    """
    tau = np.atleast_2d(np.asarray(tau, dtype=float))
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    k, p = tau.shape
    if alpha.shape != (k - 1,):
        raise SpecificationError(f"alpha: got shape {alpha.shape}; need ({k - 1},) for {k} classes.")
    if (n_clusters is None) == (n_persons is None):
        raise SpecificationError("give exactly one of n_clusters (two-level) or n_persons (single level).")
    if class_level not in ("within", "between"):
        raise SpecificationError(f"class_level: got {class_level!r}; valid choices are 'within', 'between'.")
    between = class_level == "between"
    if between and (n_clusters is None or psi is not None):
        raise SpecificationError("class_level: got 'between'; it needs n_clusters and no psi (one class per "
                                 "cluster, eq. 16, has no random intercepts).")
    if beta is not None:
        beta = np.atleast_2d(np.asarray(beta, dtype=float))
        if beta.shape[0] != k - 1:
            raise SpecificationError(f"beta: got shape {beta.shape}; need ({k - 1}, Q) for {k} classes.")
    rng = np.random.default_rng(seed)
    n = n_persons if n_persons is not None else n_clusters * cluster_size
    cluster = np.repeat(np.arange(n_clusters), cluster_size) if n_clusters is not None else None
    units = n_clusters if between else n  # who gets a class: clusters (eq. 16) or persons
    logits = np.tile(alpha, (units, 1))
    x = None
    if beta is not None:
        x = rng.standard_normal((units, beta.shape[1]))
        logits = logits + x @ beta.T
    if psi is not None and cluster is not None:
        psi = np.atleast_2d(np.asarray(psi, dtype=float))
        u = rng.multivariate_normal(np.zeros(k - 1), psi, size=n_clusters)
        logits = logits + u[cluster]
    prob = special.softmax(np.concatenate([logits, np.zeros((units, 1))], axis=1), axis=1)
    cls = (prob.cumsum(axis=1) > rng.random((units, 1))).argmax(axis=1)
    cluster_cls = None
    if between:
        cluster_cls, cls = cls, cls[cluster]
        x = None if x is None else x[cluster]
    cdf = special.expit if link == "logit" else special.ndtr
    p1 = 1.0 - cdf(tau[cls])
    y = (rng.random((n, p)) < p1).astype(int)
    df = pd.DataFrame(y, columns=[f"y{j + 1}" for j in range(p)])
    if cluster is not None:
        df.insert(0, "cluster", [f"c{j:03d}" for j in cluster])
    if x is not None:
        for q in range(x.shape[1]):
            df[f"x{q + 1}"] = x[:, q]
    truth = {"tau": tau, "alpha": alpha, "class": cls + 1}
    if beta is not None:
        truth["beta"] = beta
    if psi is not None:
        truth["psi"] = psi
    if cluster_cls is not None:
        truth["cluster_class"] = cluster_cls + 1
    return df, truth
