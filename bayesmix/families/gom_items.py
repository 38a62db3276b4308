"""The measurement part of a model whose class is per person *and item* (the
GoM, section 7): P(y_ij | C_ij = c) for every person, item and class.

* categorical items (binary, ordinal): class-specific thresholds (eq. 28 with a
  logit or probit link; ``blocks.Thresholds``), class-specific category
  probabilities for an ordinal item (the last paragraph of section 7);
* continuous items: y_ij | C_ij = c ~ N(nu_ci, theta_i), class-specific means and
  a class-invariant residual variance (eq. 2, as the LCA; ``blocks.NormalItems``).

``log_f`` is the (N, P, K) log density in the data's column order, 0 for a
missing cell (full information). A categorical f is bounded below by F(-15) (the
threshold bounds), so the GoM may sum classes in probability space; a normal
density is not, so with continuous items it sums them in log space.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from scipy import stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.families.blocks import NormalItems, Thresholds, category_counts, measurement_tensors


class ItemBlock:
    """Thresholds of the categorical items and normal means/variances of the
    continuous ones, for ``n_classes`` item-level classes."""

    def __init__(self, data, link: str, n_classes: int):
        self.link, self.k = link, n_classes
        cat = np.asarray(data.categorical_mask, dtype=bool)
        self.cat = cat
        self.cat_items = [it for it, c in zip(data.items, cat) if c]
        self.cont_items = [it for it, c in zip(data.items, cat) if not c]
        # data column -> position in [categorical..., continuous...]
        self.inverse = np.argsort(np.concatenate([np.flatnonzero(cat), np.flatnonzero(~cat)]))
        y, obs = data.y, data.observed
        self.thresholds = None
        if self.cat_items:
            self.thresholds = Thresholds(self.cat_items, category_counts(data, np.flatnonzero(cat)), link, n_classes)
            codes = np.where(obs[:, cat], y[:, cat], 0).astype(int)
            # (N, P_cat, M) one-hot of the observed category; a missing item is all zeros
            self.ind3 = core_items.indicator_matrix(codes, obs[:, cat], self.thresholds.m_max).reshape(
                data.n_persons, len(self.cat_items), self.thresholds.m_max)
            self.onehot = self.ind3.reshape(data.n_persons, -1)  # (N, P_cat M), item major
        self.normal = None
        if self.cont_items:
            self.y_cont = np.where(obs[:, ~cat], y[:, ~cat], 0.0)
            self.obs_cont = obs[:, ~cat].astype("float64")
            yc = np.where(obs[:, ~cat], y[:, ~cat], np.nan)
            self.normal = NormalItems("nu", dims.CONTINUOUS_ITEM, (np.nanmean(yc, axis=0),
                                                                   np.nanstd(yc, axis=0) + 1e-12), n_classes)

    @property
    def has_continuous(self) -> bool:
        return bool(self.cont_items)

    def coords(self) -> dict:
        coords = {}
        if self.cat_items:
            coords[dims.ITEM] = [it.name for it in self.cat_items]
            coords.update(self.thresholds.coords())
            coords[dims.RESPONSE] = [f"{it.name}#{c:g}" if isinstance(c, (int, float, np.number)) else
                                     f"{it.name}#{c}" for it in self.cat_items for c in it.categories]
        if self.cont_items:
            coords[dims.CONTINUOUS_ITEM] = [it.name for it in self.cont_items]
        return coords

    def parameters(self) -> list:
        free = self.thresholds.parameters() if self.thresholds is not None else []
        if self.normal is not None:
            free += [self.normal.mean_parameter(), self.normal.variance_parameter()]
        return free

    def tensors(self, p: dict) -> tuple[dict, list]:
        """({"tau", "nu", "theta"} natural tensors, their reported rows); adds the
        ``tau``/``theta`` Deterministics and, for categorical items, ``item_prob``."""
        tau, theta, reported = measurement_tensors(self.thresholds, self.normal, p)
        if self.thresholds is not None:
            self.thresholds.item_prob(tau, self.link)
        return {"tau": tau, "nu": p.get("nu"), "theta": theta}, reported

    def category_log_probs(self, q: dict):
        """(K, P_cat, M) log P(y_ij = m | C_ij = c) of the categorical items (0 for
        a padded category)."""
        thr = self.thresholds
        return core_items.category_log_probs(thr.padded(q["tau"]), thr.n_cat, self.link)

    def log_f(self, q: dict):
        """(N, P, K) log P(y_ij | C_ij = c) in the data's column order; 0 if missing."""
        parts = []
        if self.thresholds is not None:
            lp = self.category_log_probs(q)  # (K, P_cat, M)
            # the one-hot sum picks the observed category; a missing item gives log 1 = 0
            parts.append(pt.sum(self.ind3[:, None, :, :] * lp[None], axis=-1).dimshuffle(0, 2, 1))
        if self.normal is not None:
            theta = q["theta"][None, :, None]  # (1, P_c, 1)
            z = (self.y_cont[:, :, None] - q["nu"].T[None]) ** 2 / theta  # (N, P_c, K)
            parts.append(-0.5 * self.obs_cont[:, :, None] * (z + pt.log(2 * np.pi * theta)))
        if len(parts) == 1:
            return parts[0]
        return pt.concatenate(parts, axis=1)[:, self.inverse, :]

    # ---------------------------------------------------------------- fitting hooks
    def start(self, rng: np.random.Generator) -> dict:
        start = dict(self.thresholds.start(rng)) if self.thresholds is not None else {}
        if self.normal is not None:
            start["nu"] = self.normal.start_mean(rng)
            start["log_theta"] = np.log(self.normal.sd ** 2)
        return start

    def from_lca(self, lca_natural: dict) -> dict:
        """Raw starting values from an LCA fit's natural values on the same items."""
        start = {}
        if self.thresholds is not None:
            tau = np.asarray(lca_natural["tau"], float)
            if self.thresholds.ordinal:
                raw = tau.copy()
                later = self.thresholds.thr_k > 0
                raw[:, later] = np.log(np.maximum(np.diff(tau, axis=1)[:, later[1:]], 1e-3))
                start["tau_raw"] = raw
            else:
                start["tau"] = tau
        if self.normal is not None:
            start["nu"] = np.asarray(lca_natural["nu"], float)
            start["log_theta"] = np.log(np.asarray(lca_natural["theta"], float))
        return start

    def permute(self, values: dict, perm: np.ndarray) -> dict:
        out = dict(values)
        if self.thresholds is not None:
            out = self.thresholds.permute(out, perm)
        if self.normal is not None:
            out = self.normal.permute(out, perm)
        return out

    def signature(self, values: dict) -> np.ndarray:
        """(..., K, F): response probabilities F(tau), standardised class means."""
        feats = []
        if self.thresholds is not None:
            feats.append(self.thresholds.signature(values))
        if self.normal is not None:
            feats.append(self.normal.signature(values))
        return np.concatenate(feats, axis=-1)

    def severity(self, values: dict) -> np.ndarray:
        """(K,) a class's mean response level: the mean of P(y above a threshold)
        and of the standardised means (orders classes along one dimension)."""
        feats = []
        if self.thresholds is not None:
            feats.append(1.0 - self.thresholds.signature(values))
        if self.normal is not None:
            feats.append(self.normal.signature(values))
        return np.concatenate(feats, axis=-1).mean(axis=-1)

    def draw(self, natural: dict, c_item: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Responses (N, P) in the data's column order given item classes (N, P)."""
        n = c_item.shape[0]
        y = np.empty(c_item.shape)
        dist = stats.logistic if self.link == "logit" else stats.norm
        for p, col in enumerate(np.flatnonzero(self.cat)):
            thr = np.asarray(natural["tau"], float)[c_item[:, col]][:, self.thresholds.thr_item == p]
            y[:, col] = (dist.rvs(size=n, random_state=rng)[:, None] > thr).sum(axis=1)
        for p, col in enumerate(np.flatnonzero(~self.cat)):
            y[:, col] = (np.asarray(natural["nu"], float)[c_item[:, col], p]
                         + np.sqrt(float(np.asarray(natural["theta"])[p])) * rng.standard_normal(n))
        return y
