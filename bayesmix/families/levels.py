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

from bayesmix.data.levels import cluster_level_values
from bayesmix.exceptions import DataError, SpecificationError

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
    constant within every cluster (eq. 17 admits only between-level predictors)."""
    return cluster_level_values(
        prepared, prepared.covariate_names, "covariates",
        "with class_level='between' the class is a cluster variable and only cluster-level covariates can "
        "predict it (eq. 17): aggregate the covariate to the cluster, e.g. "
        "df.groupby({cluster!r})[{name!r}].transform('mean'), or use class_level='within'.")


def check_not_constant(names, values: np.ndarray, level: str, what: str = "the intercept") -> None:
    """Refuse a predictor without variation over the rows used (``level``: persons
    or clusters): it is confounded with ``what`` (and would give a prior scale of
    1e12); raised before any compilation."""
    for q, name in enumerate(names):
        if values.shape[0] > 1 and np.ptp(values[:, q]) == 0:
            raise DataError(f"{name}: the column is constant ({values[0, q]:g}) over all {level}; it cannot be "
                            f"separated from {what}. Fix: drop it from the model.")
