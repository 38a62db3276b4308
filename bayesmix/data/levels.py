"""Cluster-level (between) variables taken from person-level rows.

A between-level covariate (a predictor of a between class, eq. 17 and 26, or of
the random effects, eq. 5) must be constant within each cluster. The wide data
repeat it on every person's row; this module checks that and returns one value
per cluster, raising before any compilation when a column varies.
"""

from __future__ import annotations

import numpy as np

from bayesmix.exceptions import SpecificationError


def cluster_level_values(prepared, names, argname: str, fix: str) -> np.ndarray:
    """(J, len(names)) values of covariates ``names`` per cluster, or a
    ``SpecificationError`` naming the column, a cluster where it varies, two of
    its values and ``fix`` (which may use ``{name}`` and ``{cluster}``)."""
    names = list(names)
    if not names:
        return np.zeros((prepared.n_clusters or 0, 0))
    cols = [prepared.covariate_names.index(n) for n in names]
    x = prepared.covariates[:, cols]
    idx = prepared.cluster_idx
    j = prepared.n_clusters
    first = np.full((j, len(cols)), np.nan)
    # first row of each cluster (reverse assignment keeps the first occurrence)
    first[idx[::-1]] = x[::-1]
    varies = ~np.isclose(x, first[idx], rtol=1e-10, atol=1e-12)
    if varies.any():
        row, col = np.argwhere(varies)[0]
        label = prepared.cluster_labels[idx[row]]
        raise SpecificationError(
            f"{argname}: column {names[col]!r} varies within cluster {label!r} "
            f"(values {first[idx[row], col]:g} and {x[row, col]:g}); a between-level "
            f"predictor must be constant within each cluster. Fix: "
            + fix.format(name=names[col], cluster=prepared.cluster_name)
        )
    return first
