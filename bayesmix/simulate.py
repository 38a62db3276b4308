"""Data generators, one per family: each returns (DataFrame, truth) where truth
holds the natural parameters under the names of the parameter table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from bayesmix.exceptions import SpecificationError
from bayesmix.families.blocks import draw_classes


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
    cls = draw_classes(logits, rng)
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


def simulate_mixture_regression(
    n_clusters: int = 50,
    cluster_size: int = 10,
    *,
    class_level: str = "between",
    mu=(1.0, 0.0),
    beta=(0.2, 0.8),
    theta: float = 1.0,
    v_intercept: float = 0.0,
    v_slope: float = 0.0,
    alpha=(0.0,),
    psi: float | None = None,
    seed: int | None = 0,
):
    """Data of the paper's section 5 designs (eq. 19): Y_ij = mu_cj + beta_cj X_ij + e_ij,
    X ~ N(0, 1), e ~ N(0, theta), random intercept and slope with class means ``mu``,
    ``beta`` and variances ``v_intercept``, ``v_slope`` (covariance 0).

    ``class_level``: "within" (C_ij, eq. 4), "between" (C_j, eq. 16-17) or
    "within-between" (C_ij with a cluster random intercept in the class logit of
    variance ``psi``; Model 6). Table 2: Model 1 = within, v = 0; Models 2-4 =
    between with v = 0, 0.1, 0.2 on intercept and slope; Model 5 = between,
    v_intercept = 0.2, v_slope = 0, 100 clusters.

    Returns (DataFrame with cluster, y, x; truth keyed by the parameter-table
    labels of ``mixture_regression(df, "y", ["x"], cluster="cluster", ...)``).
    """
    mu, beta, alpha = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (mu, beta, alpha))
    k = mu.size
    if beta.size != k or alpha.size != k - 1:
        raise SpecificationError(f"mu, beta, alpha: got sizes {mu.size}, {beta.size}, {alpha.size}; need K, K, K-1.")
    if class_level not in ("within", "between", "within-between"):
        raise SpecificationError(f"class_level: got {class_level!r}; valid choices are 'within', 'between', "
                                 "'within-between'.")
    rng = np.random.default_rng(seed)
    n = n_clusters * cluster_size
    cluster = np.repeat(np.arange(n_clusters), cluster_size)
    x = rng.standard_normal(n)
    if class_level == "between":
        cls = draw_classes(np.tile(alpha, (n_clusters, 1)), rng)[cluster]
    else:
        logits = np.tile(alpha, (n, 1))
        if class_level == "within-between":
            logits += np.sqrt(psi or 0.0) * rng.standard_normal((n_clusters, k - 1))[cluster]
        cls = draw_classes(logits, rng)
    a = np.sqrt(v_intercept) * rng.standard_normal(n_clusters)[cluster]
    b = np.sqrt(v_slope) * rng.standard_normal(n_clusters)[cluster]
    y = mu[cls] + a + (beta[cls] + b) * x + np.sqrt(theta) * rng.standard_normal(n)
    df = pd.DataFrame({"cluster": [f"c{j:03d}" for j in cluster], "y": y, "x": x})
    truth = {f"mu[{c + 1}, y]": mu[c] for c in range(k)}
    truth.update({f"beta[{c + 1}, y, x]": beta[c] for c in range(k)})
    truth["theta[y]"] = theta
    truth.update({f"alpha[{c + 1}]": alpha[c] for c in range(k - 1)})
    if v_intercept > 0:
        truth["v[y:intercept, y:intercept]"] = v_intercept
    if v_slope > 0:
        truth["v[y:x, y:x]"] = v_slope
    if class_level == "within-between" and psi:
        truth["psi[alpha_1, alpha_1]"] = psi
    truth["class"] = cls + 1
    return df, truth


def lca_truth(tau, alpha, *, psi=None, items=None) -> dict[str, float]:
    """Truth dict with parameter-table labels for a binary LCA, e.g. from
    ``bayesmix.simulate.simulate_lca``'s ``tau`` (K, P), ``alpha`` (K-1,) and
    ``psi`` (K-1, K-1). Items default to y1..yP (simulate_lca's names). Class
    shares are included when there are no random intercepts (psi None)."""
    tau = np.atleast_2d(np.asarray(tau, float))
    alpha = np.atleast_1d(np.asarray(alpha, float))
    k, p = tau.shape
    items = [f"y{j + 1}" for j in range(p)] if items is None else list(items)
    if len(items) != p:
        raise SpecificationError(f"items: got {len(items)} names; give {p} (one per column of tau).")
    out = {f"tau[{c + 1}, {items[j]}$1]": float(tau[c, j]) for c in range(k) for j in range(p)}
    out.update({f"alpha[{c + 1}]": float(alpha[c]) for c in range(k - 1)})
    if psi is not None:
        psi = np.atleast_2d(np.asarray(psi, float))
        out.update({f"psi[alpha_{a + 1}, alpha_{b + 1}]": float(psi[a, b])
                    for a in range(k - 1) for b in range(k - 1)})
    elif k > 1:
        share = special.softmax(np.append(alpha, 0.0))
        out.update({f"class_share[{c + 1}]": float(share[c]) for c in range(k)})
    return out
