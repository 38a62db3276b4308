"""The outcome half of the mixture regression (sections 2, 5, 6): data arrays in
shared variables, the linear predictor, log f(y | class, eta), the closed-form
normal marginal and the simulator. ``mixture_regression.RegressionModel`` mixes
this in; the class structure (C, D, random class-logit intercepts) lives there.

Numerical choices
-----------------
* Outcomes are reordered internally: continuous first, then categorical, so the
  normal part is one slice of the (N, ..., K, P) linear predictor.
* Categorical outcomes with a person-specific linear predictor use one-hot
  selectors of the observed category's upper and lower thresholds
  (``sel_up`` / ``sel_lo``, N x P_c x T), the analogue of the LCA indicator
  matrix: a tensordot gives each person's two thresholds for every class, and
  ``items.interval_log_prob`` the exact log(F(b - eta) - F(a - eta)).
* The data sit in ``pytensor.shared`` variables, so ``set_data`` swaps a data set
  of the same structure without recompiling (simulation studies).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesmix.core import items as core_items
from bayesmix.core.integrate import segment_sum
from bayesmix.core.normal_marginal import cluster_normal_loglik
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.data.levels import cluster_level_values
from bayesmix.exceptions import SpecificationError
from bayesmix.families.blocks import draw_classes
from bayesmix.families.levels import check_not_constant

CLUSTER_FIX = ("aggregate it to the cluster first, e.g. df.groupby({cluster!r})[{name!r}].transform('mean'), "
               "or use it as a within-level covariate.")


class RegressionOutcomes:
    """Mixin: the outcomes of a mixture regression given class and random effects."""

    # ------------------------------------------------------------------ data
    def _arrays(self, d: PreparedData) -> dict:
        spec = self.spec
        cat = np.asarray(d.categorical_mask, dtype=bool)
        # internal outcome order: continuous first, then categorical
        self.cont_idx, self.cat_idx = np.flatnonzero(~cat), np.flatnonzero(cat)
        order = np.concatenate([self.cont_idx, self.cat_idx])
        self.outcome_names = [d.items[i].name for i in order]
        self.cat_items = [d.items[i] for i in self.cat_idx]
        n, cov = d.n_persons, list(d.covariate_names)
        x = d.covariates[:, [cov.index(c) for c in spec.covariates]] if spec.covariates else np.zeros((n, 0))
        obs = d.observed[:, order].astype(float)
        y = np.where(d.observed, d.y, 0.0)[:, order]
        out = {"y": y, "obs": obs, "x": x}
        # random-effect design z[i, p, r]: 1 for p's random intercept, x_iq for p's slope on q
        self.re_terms = [(p, t) for p in range(len(order)) for t in spec.random]
        z = np.zeros((n, len(order), len(self.re_terms)))
        for r, (p, t) in enumerate(self.re_terms):
            z[:, p, r] = 1.0 if t == "intercept" else x[:, list(spec.covariates).index(t)]
        out["z"] = z
        if d.is_two_level:
            out["w"] = cluster_level_values(d, spec.cluster_covariates, "cluster_covariates", CLUSTER_FIX)
            out["wb"] = cluster_level_values(d, spec.between_covariates, "between_covariates", CLUSTER_FIX)
        else:
            out["w"] = out["wb"] = np.zeros((1, 0))
        if spec.class_level == "between":
            out["xc"] = cluster_level_values(
                d, spec.class_covariates, "class_covariates",
                "a between-level class can only be predicted by cluster-level variables (eq. 17): aggregate "
                "it to the cluster, e.g. df.groupby({cluster!r})[{name!r}].transform('mean'), or use "
                "class_level='within'.")
        else:
            out["xc"] = (d.covariates[:, [cov.index(c) for c in spec.class_covariates]]
                         if spec.class_covariates else np.zeros((n, 0)))
        out.update(self._selectors(d))
        self._check_constant(x, out)
        self._moments(y, obs, x, out["w"])
        return out

    def _selectors(self, d: PreparedData) -> dict:
        """One-hot selectors of the observed category's upper / lower thresholds."""
        thr_item, thr_k = [], []
        for p, it in enumerate(self.cat_items):
            thr_item += [p] * (it.n_categories - 1)
            thr_k += list(range(it.n_categories - 1))
        self.thr_item, self.thr_k = np.array(thr_item, dtype=int), np.array(thr_k, dtype=int)
        n, n_thr, pc = d.n_persons, len(thr_item), len(self.cat_items)
        sel_up, sel_lo = np.zeros((n, pc, max(n_thr, 1))), np.zeros((n, pc, max(n_thr, 1)))
        has_up, has_lo = np.zeros((n, pc)), np.zeros((n, pc))
        start = np.searchsorted(self.thr_item, np.arange(pc)) if n_thr else np.zeros(pc, dtype=int)
        for p, i_col in enumerate(self.cat_idx):
            m = self.cat_items[p].n_categories
            seen = d.observed[:, i_col]
            k = np.where(seen, d.y[:, i_col], 0).astype(int)
            up, lo = seen & (k <= m - 2), seen & (k >= 1)
            sel_up[np.flatnonzero(up), p, start[p] + k[up]] = 1.0
            sel_lo[np.flatnonzero(lo), p, start[p] + k[lo] - 1] = 1.0
            has_up[:, p], has_lo[:, p] = up, lo
        return {"sel_up": sel_up, "sel_lo": sel_lo, "has_up": has_up, "has_lo": has_lo}

    def _check_constant(self, x, out):
        """A predictor without variation is confounded with an intercept (and would
        give a prior scale of 1e12): refuse it before compiling."""
        spec = self.spec
        for names, values, level in ((spec.covariates, x, "persons"),
                                     (spec.cluster_covariates, out["w"], "clusters"),
                                     (spec.between_covariates, out["wb"], "clusters"),
                                     (spec.class_covariates, out["xc"],
                                      "clusters" if spec.class_level == "between" else "persons")):
            check_not_constant(names, values, level)

    def _moments(self, y, obs, x, w):
        pn = self.cont_idx.size
        yc = np.where(obs[:, :pn] > 0, y[:, :pn], np.nan)
        self.y_mean = np.nanmean(yc, axis=0) if pn else np.zeros(0)
        self.y_sd = np.nanstd(yc, axis=0) + 1e-12 if pn else np.zeros(0)
        self.x_sd = x.std(axis=0) + 1e-12 if x.shape[1] else np.zeros(0)
        self.w_sd = w.std(axis=0) + 1e-12 if w.shape[1] else np.zeros(0)
        # outcome scale for priors and starts: sd for normal outcomes, 1.8 (logistic) for categorical
        scale = np.concatenate([self.y_sd, np.full(self.cat_idx.size, 1.8 if self.spec.link == "logit" else 1.0)])
        self.outcome_scale = scale
        self._y_obs = (y, obs, x)

    @property
    def can_set_data(self) -> bool:
        return True

    def set_data(self, data):
        """Swap in new data of the same structure (same persons per cluster, the
        same outcome kinds and categories), keeping the compiled functions: the
        simulation studies refit one compiled model to every replication."""
        d = prepare_wide(data, **self._prepare_args)
        old = self.data
        same = (d.n_persons == old.n_persons and d.items == old.items
                and (d.cluster_idx is None) == (old.cluster_idx is None)
                and (d.cluster_idx is None or np.array_equal(d.cluster_idx, old.cluster_idx)))
        if not same:
            raise SpecificationError("set_data: the new data differ in structure (rows, clusters, outcome "
                                     "kinds or categories); build a new model for them.")
        arrays = self._arrays(d)
        for k, v in arrays.items():
            self.shared[k].set_value(v)
        self.data = d
        self.cache.pop("nutpie", None)  # nutpie compiled the old data in

    def _re_scale(self) -> np.ndarray:
        """Scale of each random coefficient: outcome sd (intercepts) or sd_y / sd_x (slopes)."""
        cov = list(self.spec.covariates)
        return np.array([self.outcome_scale[p] / (1.0 if t == "intercept" else self.x_sd[cov.index(t)])
                         for p, t in self.re_terms])

    # ------------------------------------------------------------------ engine callbacks
    def _fixed_eta(self, q, shift=None):
        """(N, K, P) linear predictor without the random deviations: class intercepts
        (normal outcomes), slopes, and the means of the random coefficients
        (cluster covariates, eq. 5, plus an optional (Dc,) or (N, Dc) ``shift``)."""
        s = self.shared
        k, pn, p_all = self.spec.n_classes, self.cont_idx.size, len(self.outcome_names)
        eta = pt.zeros((1, k, p_all))
        if pn:
            eta = pt.set_subtensor(eta[:, :, :pn], q["mu"][None])
        if self.spec.covariates:
            eta = eta + pt.tensordot(s["x"], q["beta"], axes=[[1], [2]])  # (N, K, P)
        mean_re = None
        if self.spec.cluster_covariates:
            mean_re = pt.dot(s["w"], q["gamma"].T)[self.data.cluster_idx]  # (N, Dc)
        if shift is not None:
            mean_re = shift if mean_re is None else mean_re + shift
        if mean_re is not None:
            eta = eta + pt.sum(s["z"] * (mean_re[:, None, :] if mean_re.ndim == 2 else mean_re[None, None, :]),
                               axis=-1)[:, None, :]
        return eta

    def _log_f(self, q, eta):
        """log f(y_i | class, eta) summed over outcomes; ``eta`` (N, ..., K, P) -> (N, ..., K)."""
        s, pn = self.shared, self.cont_idx.size
        extra = eta.ndim - 3  # node axis
        out = 0.0
        if pn:
            y = s["y"][:, :pn]
            obs = s["obs"][:, :pn]
            for _ in range(extra + 1):
                y, obs = y[:, None], obs[:, None]
            theta = q["theta"]
            resid = y - eta[..., :pn]
            out = out - 0.5 * pt.sum(obs * (pt.log(2 * np.pi * theta) + resid**2 / theta), axis=-1)
        if self.cat_items:
            tau = q["tau"]
            up = pt.tensordot(s["sel_up"], tau, axes=[[2], [1]]).dimshuffle(0, 2, 1)  # (N, K, Pc)
            lo = pt.tensordot(s["sel_lo"], tau, axes=[[2], [1]]).dimshuffle(0, 2, 1)
            has_up, has_lo, obs = s["has_up"][:, None, :], s["has_lo"][:, None, :], s["obs"][:, None, pn:]
            for _ in range(extra):
                up, lo, has_up, has_lo, obs = up[:, None], lo[:, None], has_up[:, None], has_lo[:, None], obs[:, None]
            e = eta[..., pn:]
            lp = core_items.interval_log_prob(lo - e, up - e, has_lo, has_up, self.spec.link)
            out = out + pt.sum(obs * lp, axis=-1)
        return out

    def _random_eta(self, u):
        """(N, Q, 1, P) random deviations sum_r z_pr u_r at nodes u (B, Q, Dc)."""
        return pt.sum(self.shared["z"][:, None, :, :] * u[:, :, None, :], axis=-1)[:, :, None, :]

    def _analytic(self, q, eta):
        """(J, K) exact log f(y_j | C_j = c) of normal outcomes, the random
        coefficients integrated in closed form (``core.normal_marginal``)."""
        s, pn = self.shared, self.cont_idx.size
        cidx, n_cl = self.data.cluster_idx, self.data.n_clusters
        theta, obs, z = q["theta"], s["obs"][:, :pn], s["z"][:, :pn, :]
        resid = (s["y"][:, :pn][:, None, :] - eta[..., :pn]) * obs[:, None, :]  # (N, K, Pn)
        w = obs / theta  # (N, Pn)
        rtr = segment_sum(pt.sum(resid**2 / theta, axis=-1), cidx, n_cl)  # (J, K)
        ztr = segment_sum(pt.sum(z[:, None, :, :] * (resid / theta)[..., None], axis=2), cidx, n_cl)  # (J, K, Dc)
        ztz = segment_sum(pt.sum(w[:, :, None, None] * z[:, :, :, None] * z[:, :, None, :], axis=1), cidx, n_cl)
        log_theta_sum = segment_sum(pt.sum(obs * pt.log(theta), axis=-1), cidx, n_cl)
        n_obs = segment_sum(pt.sum(obs, axis=-1), cidx, n_cl)
        chol = q["v_chol"]  # (Dc, Dc) or (K, Dc, Dc): broadcasts over the class axis
        return cluster_normal_loglik(ztz[:, None], ztr, rtr, log_theta_sum[:, None], n_obs[:, None], chol,
                                     len(self.re_terms))

    # ------------------------------------------------------------------ simulation
    def _draw_between(self, nat: dict, n_cl: int, rng) -> np.ndarray:
        """(n_cl,) 0-based between class D_j (none here: zeros)."""
        return np.zeros(n_cl, dtype=int)

    def _within_logit_shift(self, nat: dict, dcl: np.ndarray):
        """(n_cl, K-1) shift of the within-class logits by D_j (eq. 24), or None."""
        return None

    def _between_mean(self, nat: dict, dcl: np.ndarray):
        """(n_cl, Dc) D-specific means of the random coefficients (eq. 25), or None."""
        return None

    def simulate(self, natural: dict, rng: np.random.Generator):
        """Replicate the outcomes for the analysed persons at natural parameters
        (same covariates and clusters): D_j, C, random coefficients, then y.
        Returns (y (N, P) in the data's column order, codes for categorical
        outcomes, NaN where the data are missing; class (N,) 0-based)."""
        nat, d, spec = natural, self.data, self.spec
        k = spec.n_classes
        _, obs, x = self._y_obs
        w, xc = self.shared["w"].get_value(), self.shared["xc"].get_value()
        n = d.n_persons
        cidx = d.cluster_idx if d.is_two_level else np.arange(n)
        n_cl = d.n_clusters if d.is_two_level else n
        dcl = self._draw_between(nat, n_cl, rng)
        if spec.class_level == "between":
            logits = np.broadcast_to(nat["alpha"], (n_cl, k - 1)).copy() if k > 1 else np.zeros((n_cl, 0))
            if "beta_class" in nat:
                logits += xc @ nat["beta_class"].T
            cls = draw_classes(logits, rng)[cidx] if k > 1 else np.zeros(n, dtype=int)
            v_index = cls  # class-specific V follows C_j
        else:
            logits = np.broadcast_to(nat["alpha"], (n, k - 1)).copy() if k > 1 else np.zeros((n, 0))
            if "beta_class" in nat:
                logits += xc @ nat["beta_class"].T
            shift = self._within_logit_shift(nat, dcl)
            if shift is not None:
                logits += shift[cidx]
            if "psi" in nat:
                logits += rng.multivariate_normal(np.zeros(k - 1), np.atleast_2d(nat["psi"]), size=n_cl)[cidx]
            cls = draw_classes(logits, rng) if k > 1 else np.zeros(n, dtype=int)
            v_index = dcl[cidx]
        u = self._draw_coefficients(nat, w, dcl, v_index, cidx, n_cl, rng)
        eta = np.zeros((n, len(self.outcome_names)))
        pn = self.cont_idx.size
        if pn:
            eta[:, :pn] = nat["mu"][cls]
        if "beta" in nat:
            eta += np.einsum("npq,nq->np", nat["beta"][cls], x)
        eta += np.einsum("npr,nr->np", self.shared["z"].get_value(), u)
        y = np.full(eta.shape, np.nan)
        if pn:
            y[:, :pn] = eta[:, :pn] + np.sqrt(nat["theta"])[None, :] * rng.standard_normal((n, pn))
        for p in range(len(self.cat_items)):
            thr = nat["tau"][cls][:, self.thr_item == p]
            noise = rng.logistic(size=n) if spec.link == "logit" else rng.standard_normal(n)
            y[:, pn + p] = ((eta[:, pn + p] + noise)[:, None] > thr).sum(axis=1)
        out = np.full((n, d.n_items), np.nan)
        out[:, np.concatenate([self.cont_idx, self.cat_idx]).astype(int)] = y
        out[~d.observed] = np.nan
        return out, cls

    def _draw_coefficients(self, nat, w, dcl, v_index, cidx, n_cl, rng) -> np.ndarray:
        """(N, Dc) random coefficients eta_j of each person's cluster (eq. 5, 25)."""
        dc = len(self.re_terms)
        if not dc:
            return np.zeros((len(cidx), 0))
        mean = np.zeros((n_cl, dc))
        if "gamma" in nat:
            mean += w @ nat["gamma"].T
        between = self._between_mean(nat, dcl)
        if between is not None:
            mean += between
        v = np.asarray(nat["v"])
        if v.ndim == 2:
            xi = rng.multivariate_normal(np.zeros(dc), v, size=n_cl)[cidx]
        else:  # one covariance per class: each person's cluster draws from its class's
            xi = np.stack([rng.multivariate_normal(np.zeros(dc), v[b], size=n_cl) for b in range(len(v))])
            xi = xi[v_index, cidx]
        return mean[cidx] + xi
