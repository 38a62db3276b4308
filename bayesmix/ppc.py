"""Posterior predictive checks for mixtures (issue 10, part 5).

Replicated data sets y_rep (R, N, P) come from

* a posterior: the ``posterior_predictive`` group of ``bayesmix.sample(...,
  posterior_predictive=True)``, or draws made here at thinned posterior draws
  (NUTS or ``fit_laplace``) with the family's ``simulate``;
* an ML fit: the parametric bootstrap, ``simulate`` at the ML estimates (what
  Mplus' TECH10 bivariate tables compare against, with the sampling
  distribution instead of asymptotic formulas).

Each check compares a statistic of the observed data with its distribution over
the replicates: the replicate mean, sd, a 90% interval, z = (observed - mean) / sd
and the posterior predictive p-value P(T(y_rep) >= T(y)) (a two-sided reading:
values near 0 or 1 flag misfit). Statistics:

* ``endorsement``: per item and category, the proportion of observed responses
  in it (the mean of a continuous column);
* ``patterns``: the most frequent complete response patterns, observed count vs
  replicated counts;
* ``bivariate``: per item pair and category pair, the joint proportion
  (standardised residuals as TECH10's, z from the replicates);
* two-level: ``cluster_shares`` (the within-cluster class shares: replicated from
  the simulated classes, observed as the clusters' mean posterior membership,
  which is shrunk toward the overall share, so its spread is a lower bound) and
  ``item_icc`` (one-way ANOVA ICC of each item's responses, observed vs replicated).

Missing cells stay missing in the replicates (every family's ``simulate``), so each
statistic uses the same cells in y and y_rep.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from bayesmix import dims
from bayesmix.checks import check_int
from bayesmix.exceptions import SpecificationError

INTERVAL = (0.05, 0.95)


def _replicates_from_ml(res, n_reps, seed):
    fam = res.model
    rng = np.random.default_rng(seed)
    ys, cs = [], []
    for _ in range(n_reps):
        y, c = fam.simulate(res.natural, rng)
        ys.append(y)
        cs.append(c)
    return np.stack(ys), np.stack(cs)


def _replicates_from_posterior(fam, dt, n_reps, seed):
    from bayesmix.fit.compiled import compiled

    post = dt["posterior"]
    flat = np.concatenate([post[n].to_numpy().reshape(post.sizes[dims.CHAIN] * post.sizes[dims.DRAW], -1)
                           for n in fam.free_names], axis=-1)
    idx = np.unique(np.linspace(0, flat.shape[0] - 1, min(n_reps, flat.shape[0])).astype(int))
    comp = compiled(fam)
    rng = np.random.default_rng(seed)
    ys, cs = [], []
    for i in idx:
        y, c = fam.simulate(comp.reported(flat[i]), rng)
        ys.append(y)
        cs.append(c)
    return np.stack(ys), np.stack(cs)


class PredictiveChecks:
    """Observed statistics against their replicated distribution (``predictive_checks``)."""

    def __init__(self, fam, y_rep, class_rep, source: str, membership=None):
        self.model = fam
        self.y_rep = y_rep
        self.class_rep = class_rep
        self.source = source
        self._membership = membership
        d = fam.data
        self.y = np.where(d.observed, d.y, np.nan)
        self.columns = [str(it.name) for it in d.items]
        self._categories = [list(it.categories) if it.is_categorical else None for it in d.items]

    @property
    def n_reps(self) -> int:
        return self.y_rep.shape[0]

    # ------------------------------------------------------------------ helpers
    def _compare(self, observed: np.ndarray, replicated: np.ndarray) -> pd.DataFrame:
        """observed (S,), replicated (R, S) -> the comparison columns."""
        mean = replicated.mean(axis=0)
        sd = replicated.std(axis=0, ddof=1) if replicated.shape[0] > 1 else np.full(mean.shape, np.nan)
        low, high = np.quantile(replicated, INTERVAL, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, (observed - mean) / sd, np.nan)
        return pd.DataFrame({"observed": observed, "replicated_mean": mean, "replicated_sd": sd,
                             f"q{int(INTERVAL[0] * 100):02d}": low, f"q{int(INTERVAL[1] * 100):02d}": high,
                             "z": z, "ppp": (replicated >= observed[None, :]).mean(axis=0)})

    def _cells(self, i):
        """Response values of column i: its category codes, or None for continuous."""
        cats = self._categories[i]
        return None if cats is None else list(range(len(cats)))

    # ------------------------------------------------------------------ statistics
    def endorsement(self) -> pd.DataFrame:
        """Per item and category: observed proportion vs replicates (continuous
        columns: the mean, category "mean")."""
        rows, obs, rep = [], [], []
        for i, col in enumerate(self.columns):
            yi, ri = self.y[:, i], self.y_rep[:, :, i]
            seen = ~np.isnan(yi)
            cells = self._cells(i)
            if cells is None:
                rows.append((col, "mean"))
                obs.append(np.nanmean(yi))
                rep.append(np.nanmean(ri[:, seen], axis=1))
                continue
            for k in cells:
                rows.append((col, self._categories[i][k]))
                obs.append(np.mean(yi[seen] == k))
                rep.append(np.mean(ri[:, seen] == k, axis=1))
        table = self._compare(np.array(obs), np.stack(rep, axis=1))
        table.insert(0, "category", [r[1] for r in rows])
        table.insert(0, "item", [r[0] for r in rows])
        return table

    def patterns(self, top: int = 10) -> pd.DataFrame:
        """The ``top`` most frequent observed complete response patterns (categorical
        items; persons with a missing item are left out of every count)."""
        top = check_int("top", top, low=1)
        cat = [i for i, c in enumerate(self._categories) if c is not None]
        if not cat:
            raise SpecificationError("patterns: the model has no categorical items; response patterns need them.")
        complete = ~np.isnan(self.y[:, cat]).any(axis=1)
        obs = self.y[complete][:, cat].astype(int)
        keys, counts = np.unique(obs, axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:top]
        keys, counts = keys[order], counts[order]
        rep = self.y_rep[:, complete][:, :, cat]  # (R, n, P)
        rep_counts = np.stack([np.all(rep == k[None, None, :], axis=2).sum(axis=1) for k in keys], axis=1)
        table = self._compare(counts.astype(float), rep_counts.astype(float))
        table.insert(0, "pattern", ["".join(str(v) for v in k) for k in keys])
        return table

    def bivariate(self) -> pd.DataFrame:
        """Per pair of categorical items and category pair: joint proportion
        (over persons observed on both), observed vs replicates."""
        cat = [i for i, c in enumerate(self._categories) if c is not None]
        rows, obs, rep = [], [], []
        for i, j in itertools.combinations(cat, 2):
            both = ~np.isnan(self.y[:, i]) & ~np.isnan(self.y[:, j])
            if not both.any():
                continue
            yi, yj = self.y[both, i], self.y[both, j]
            ri, rj = self.y_rep[:, both, i], self.y_rep[:, both, j]
            for a in self._cells(i):
                for b in self._cells(j):
                    rows.append((self.columns[i], self.columns[j], self._categories[i][a], self._categories[j][b]))
                    obs.append(np.mean((yi == a) & (yj == b)))
                    rep.append(np.mean((ri == a) & (rj == b), axis=1))
        if not rows:
            raise SpecificationError("bivariate: needs two categorical items observed together.")
        table = self._compare(np.array(obs), np.stack(rep, axis=1))
        for pos, name in enumerate(["item_1", "item_2", "category_1", "category_2"]):
            table.insert(pos, name, [r[pos] for r in rows])
        return table

    def bivariate_summary(self) -> pd.DataFrame:
        """One row per item pair: the largest |z| over its category pairs."""
        biv = self.bivariate()
        biv["abs_z"] = biv["z"].abs()
        return biv.groupby(["item_1", "item_2"], sort=False)["abs_z"].max().rename("max_abs_z").reset_index()

    # ------------------------------------------------------------------ two-level
    def _cluster(self):
        d = self.model.data
        if d.cluster_idx is None:
            raise SpecificationError("this check is for two-level models (data with a cluster); this model is "
                                     "single level.")
        return d.cluster_idx, d.n_clusters

    def cluster_shares(self) -> pd.DataFrame:
        """Quantiles over clusters of the within-cluster share of each class of the
        primary class variable: observed (the cluster's mean posterior membership)
        vs replicated (the simulated classes)."""
        idx, n_cl = self._cluster()
        k = self.model.n_classes
        size = np.bincount(idx, minlength=n_cl)
        post = self._membership
        obs_share = np.stack([np.bincount(idx, weights=post[:, c], minlength=n_cl) / size for c in range(k)], 1)
        rep_share = np.stack([[np.bincount(idx, weights=(cr == c), minlength=n_cl) / size for c in range(k)]
                              for cr in self.class_rep]).transpose(0, 2, 1)  # (R, J, K)
        qs = (0.1, 0.5, 0.9)
        rows, obs, rep = [], [], []
        for c in range(k):
            for q in qs:
                rows.append((c + 1, q))
                obs.append(np.quantile(obs_share[:, c], q))
                rep.append(np.quantile(rep_share[:, :, c], q, axis=1))
            rows.append((c + 1, "sd"))
            obs.append(obs_share[:, c].std(ddof=1))
            rep.append(rep_share[:, :, c].std(axis=1, ddof=1))
        table = self._compare(np.array(obs), np.stack(rep, axis=1))
        table.insert(0, "statistic", [r[1] for r in rows])
        table.insert(0, "class", [r[0] for r in rows])
        return table

    def item_icc(self) -> pd.DataFrame:
        """Per item: the one-way ANOVA ICC of its responses (clusters as groups),
        observed vs replicated."""
        idx, n_cl = self._cluster()
        obs = np.array([anova_icc(self.y[:, i], idx, n_cl) for i in range(len(self.columns))])
        rep = np.array([[anova_icc(yr[:, i], idx, n_cl) for i in range(len(self.columns))] for yr in self.y_rep])
        table = self._compare(obs, rep)
        table.insert(0, "item", self.columns)
        return table

    def __repr__(self) -> str:
        return (f"PredictiveChecks({self.n_reps} replicates from {self.source}; tables: endorsement(), "
                "patterns(), bivariate(), bivariate_summary()"
                + (", cluster_shares(), item_icc()" if self.model.data.cluster_idx is not None else "") + ")")


def anova_icc(y: np.ndarray, idx: np.ndarray, n_clusters: int) -> float:
    """One-way random-effects ANOVA estimator (MSB - MSW) / (MSB + (n0 - 1) MSW),
    n0 the adjusted mean cluster size (unbalanced clusters); missing cells left out."""
    seen = ~np.isnan(y)
    y, idx = y[seen], idx[seen]
    n_j = np.bincount(idx, minlength=n_clusters).astype(float)
    keep = n_j > 0
    n_tot, j = n_j.sum(), keep.sum()
    if j < 2 or n_tot <= j:
        return np.nan
    mean_j = np.bincount(idx, weights=y, minlength=n_clusters)[keep] / n_j[keep]
    grand = y.mean()
    ssb = np.sum(n_j[keep] * (mean_j - grand) ** 2)
    ssw = np.sum((y - np.bincount(idx, weights=y, minlength=n_clusters)[idx] / n_j[idx]) ** 2)
    msb, msw = ssb / (j - 1), ssw / (n_tot - j)
    n0 = (n_tot - np.sum(n_j[keep] ** 2) / n_tot) / (j - 1)
    denom = msb + (n0 - 1) * msw
    return float((msb - msw) / denom) if denom > 0 else np.nan


def predictive_checks(fit, posterior=None, *, n_reps: int = 200, seed: int | None = 0) -> PredictiveChecks:
    """Mixture posterior predictive checks (module docstring).

    Parameters
    ----------
    fit : MLResult
        The fitted model. Without ``posterior`` the replicates are the parametric
        bootstrap at the ML estimates.
    posterior : xarray.DataTree, optional
        Draws of the same model (``bayesmix.sample`` or ``fit_laplace``): the
        replicates are simulated at ``n_reps`` thinned draws.
    n_reps : int
        Replicated data sets (default 200).
    """
    from bayesmix.fit.results import MLResult

    if not isinstance(fit, MLResult):
        raise SpecificationError(f"predictive_checks: fit: got {type(fit).__name__}; give the MLResult of fit_ml "
                                 "(with posterior=<DataTree> for posterior predictive checks).")
    n_reps = check_int("n_reps", n_reps, low=2)
    fam = fit.model
    if posterior is None:
        y_rep, c_rep = _replicates_from_ml(fit, n_reps, seed)
        source = "the ML estimates (parametric bootstrap)"
    else:
        if "posterior" not in getattr(posterior, "children", {}):
            raise SpecificationError("predictive_checks: posterior: give a DataTree with a posterior group "
                                     "(bayesmix.sample or bayesmix.fit_laplace).")
        missing = [n for n in fam.free_names if n not in posterior["posterior"].data_vars]
        if missing:
            raise SpecificationError(f"predictive_checks: posterior: the draws lack {missing}; they are not draws "
                                     "of this model's free parameters.")
        y_rep, c_rep = _replicates_from_posterior(fam, posterior, n_reps, seed)
        source = "posterior draws"
    from bayesmix.fit.compiled import compiled

    post = compiled(fam).membership(fit.theta)  # (N, K) per person, for cluster_shares
    return PredictiveChecks(fam, y_rep, c_rep, source, membership=post)
