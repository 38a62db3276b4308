"""Level of the latent class variable (paper section 5, Table 4), shared by families.

``class_level="within"``: C_ij varies over persons (eq. 4); the class logits may
have cluster random intercepts alpha_cj (a "within-between" class).
``class_level="between"``: C_ij = C_j for every person of cluster j (eq. 16),
P(C_j = c | x_j) = softmax_c(alpha_c + beta_c x_j) (eq. 17). The cluster's
log-likelihood is then logsumexp_c(log P(C_j = c | x_j) + sum_i log f(y_ij | c)),
an exact finite sum with no numerical integration.

The helpers here validate the arguments (before any graph is built) and give
the cluster-level covariate matrix.
"""

from __future__ import annotations

import numpy as np

from bayesmix.exceptions import SpecificationError

CLASS_LEVELS = ("within", "between")


def check_class_level(class_level, *, cluster, random_intercepts) -> str:
    """Validate ``class_level`` against ``cluster`` and ``random_intercepts``."""
    if class_level not in CLASS_LEVELS:
        raise SpecificationError(
            f"class_level: got {class_level!r}; valid choices are 'within' (a class per person, eq. 4) "
            "and 'between' (one class per cluster, eq. 16).")
    if class_level == "between":
        if cluster is None:
            raise SpecificationError(
                "class_level: got 'between' without a cluster; a between-level class is constant within a "
                "cluster (eq. 16). Fix: give cluster='<column>', or use class_level='within' for a "
                "single-level model.")
        if random_intercepts:
            raise SpecificationError(
                "random_intercepts: got True with class_level='between'; with a between-level class there is "
                "one class logit per cluster, so a cluster random intercept alpha_cj has no within-cluster "
                "variation to separate it from the class (Table 4: Var(alpha) 'huge'). Fix: drop "
                "random_intercepts (a between class needs none), or use class_level='within' with "
                "random_intercepts=True for a within-between class.")
    return class_level


def cluster_level_covariates(prepared) -> np.ndarray:
    """(J, Q) covariates of each cluster, checking that every covariate is
    constant within every cluster (eq. 17 admits only between-level predictors).

    Raises a ``SpecificationError`` naming the column, one cluster where it
    varies with two of its values, and the fix.
    """
    x = np.asarray(prepared.covariates, dtype=float)
    idx = np.asarray(prepared.cluster_idx)
    n_clusters = int(prepared.n_clusters)
    first = np.zeros(n_clusters, dtype=int)
    # first row of each cluster (np.unique returns the first occurrence)
    codes, pos = np.unique(idx, return_index=True)
    first[codes] = pos
    out = x[first]
    if x.shape[1] == 0:
        return out
    dev = np.abs(x - out[idx])
    tol = 1e-10 * (1.0 + np.abs(x))
    bad = dev > tol
    if bad.any():
        row, q = np.argwhere(bad)[0]
        j = idx[row]
        name = prepared.covariate_names[q]
        label = prepared.cluster_labels[j]
        raise SpecificationError(
            f"covariates: column {name!r} varies within cluster {label!r} (values {x[first[j], q]:g} and "
            f"{x[row, q]:g}); with class_level='between' the class is a cluster variable and only "
            "cluster-level covariates can predict it (eq. 17). Fix: aggregate the covariate to the cluster, "
            f"e.g. df.groupby({prepared.cluster_name!r})[{name!r}].transform('mean'), or use "
            "class_level='within'.")
    return out
