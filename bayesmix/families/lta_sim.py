"""Numpy simulator of the latent transition model (``families/lta.py``): the
numpy twin of its likelihood, for the posterior predictive draws, the registry
checks and simulation studies.

C_1 from eq. (8), C_t given the earlier classes from eq. (9), then the items of
occasion t from C_t (eq. 6 / 11); with random intercepts (alpha_1j, alpha_2j -
E alpha_2j) ~ N(0, psi) per cluster (eq. 15).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayesmix.families.blocks import draw_classes


def _gamma_full(natural, s: int, t: int, k: int) -> np.ndarray:
    """(K from, K-1 to), the reference row zero."""
    g = np.asarray(natural[f"gamma_{s + 1}_{t + 1}"], float)
    return np.concatenate([g.T, np.zeros((1, k - 1))], axis=0)


def draw_paths(fam, natural: dict, rng: np.random.Generator) -> np.ndarray:
    """(N, T) 0-based classes of every person at every occasion."""
    d, k, n = fam.data, fam.spec.n_classes, fam.data.n_persons
    classes = np.zeros((n, fam.n_t), dtype=int)
    if k == 1:
        return classes
    m = k - 1
    if fam.spec.random_intercepts:  # (u_1j, alpha_2j - E alpha_2j) ~ N(0, psi); E alpha_2j = mu + B alpha_1
        psi = fam.between.covariance(natural)
        shift = rng.multivariate_normal(np.zeros(2 * m), psi, size=d.n_clusters)[d.cluster_idx]
        shift[:, m:] += fam.between.mean_shift(natural)
    for t, block in enumerate(fam.logits):
        logits = np.broadcast_to(np.asarray(natural[block.intercept], float), (n, k - 1)).copy()
        if block.n_cov:
            logits += fam.x[t] @ np.asarray(natural[block.slope], float).T
        if fam.spec.random_intercepts:
            logits += shift[:, t * m:(t + 1) * m]
        for s in (fam._deps(t) if t else []):
            logits += _gamma_full(natural, s, t, k)[classes[:, s]]
        classes[:, t] = draw_classes(logits, rng)
    return classes


def simulate_lta(fam, natural: dict, rng: np.random.Generator):
    """(y (N, P) in the data's column codes / values, classes (N, T), number of
    categorical responses drawn in a category their column never showed)."""
    d, b = fam.data, fam.block
    n = d.n_persons
    classes = draw_paths(fam, natural, rng)
    y = np.full((n, len(d.items)), np.nan)
    cat = b.categorical
    dist = stats.logistic if fam.spec.link == "logit" else stats.norm
    unseen = 0
    for t in range(fam.n_t):
        cls = classes[:, t]
        for pc, p in enumerate(np.flatnonzero(cat)):
            j = b.column_of[t, p]
            if j < 0:
                continue
            thr = np.asarray(natural["tau"], float)[cls][:, fam.thresholds.thr_item == pc]
            code = (dist.rvs(size=n, random_state=rng)[:, None] > thr).sum(axis=1)
            # the block item's (union) code -> the column's own code
            value = np.asarray(b.items[p].categories, float)[code]
            own = np.asarray(d.items[j].categories, float)
            pos = np.searchsorted(own, value)
            ok = (pos < own.size) & (own[np.minimum(pos, own.size - 1)] == value)
            unseen += int((~ok & d.observed[:, j]).sum())
            y[:, j] = np.where(ok, pos, np.nan)
        for pn, p in enumerate(np.flatnonzero(~cat)):
            j = b.column_of[t, p]
            if j < 0:
                continue
            y[:, j] = (np.asarray(natural["nu"], float)[cls, pn]
                       + np.sqrt(np.asarray(natural["theta"], float)[pn]) * rng.standard_normal(n))
    y[~d.observed] = np.nan
    return y, classes, unseen
