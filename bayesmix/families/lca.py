"""Latent class analysis, single- and two-level (paper sections 2 and 7).

Measurement (eq. 1-2 with no factors): given class c, item p is

* categorical (binary/ordinal): P(y_p = k | c) = F(tau_{c,p,k+1}) - F(tau_{c,p,k}),
  F logistic or standard normal;
* continuous: y_p | c ~ N(nu_{cp}, theta_p) (class-invariant residual variance,
  as Mplus' default).

Class membership, eq. (4): P(C_ij = c) = softmax_c(alpha_cj + beta_c x_ij), with
the last class as reference (alpha_K = beta_K = 0). In the two-level version the
K-1 class-logit intercepts are cluster random effects,
alpha_cj = alpha_c + u_cj, u_j ~ N(0, Psi), Psi = L L' (Cholesky), integrated
out numerically per cluster (``core.marginal.integrate_clusters``).

Between-level class (``class_level="between"``, section 5): the class is a
cluster variable, C_ij = C_j (eq. 16), with P(C_j = c | x_j) = softmax_c(alpha_c +
beta_c x_j) (eq. 17) and cluster-level covariates only. The cluster's
log-likelihood is logsumexp_c(log P(C_j = c | x_j) + sum_i log f(y_ij | c)), exact,
with no numerical integration (Model 5 of the paper; the within-level class
with random intercepts of huge variance, Model 6, tends to it, eq. 21).

Free parameters (all on the real line) and their default priors
----------------------------------------------------------------
=================  ==========================  ====================================
name               dims                        default prior
=================  ==========================  ====================================
``tau``            (class, threshold)          Normal(0, 5) logit / Normal(0, 3) probit
``tau_raw``        (class, threshold)          ordinal items: first threshold as ``tau``,
                                               later ones log-increments Normal(0, 2);
                                               ``tau`` is then a Deterministic
``nu``             (class, continuous_item)    Normal(item mean, 3 item sd)
``log_theta``      (continuous_item,)          Normal(log item variance, 2)
``alpha``          (class_logit,)              Normal(0, 3)
``beta``           (class_logit, covariate)    Normal(0, 2.5) (standardise covariates)
``chol_log_diag``  (re,)                       Normal(0, 1.5): log sd of alpha_cj
``chol_offdiag``   (re_offdiag,)               Normal(0, 1)
=================  ==========================  ====================================

Deterministics: ``tau``, ``theta`` (residual variances), ``psi`` (covariance of
the random class-logit intercepts), ``class_share`` (model-implied class
proportions, averaged over persons and random effects, or over clusters for a
between-level class), ``item_prob``
(P(y = k | c) for every category of every categorical item).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.marginal import (
    chol_from_unconstrained,
    class_proportions,
    class_log_prior,
    integrate_clusters,
    mixture_logsumexp,
    segment_sum,
)
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families import _classes
from bayesmix.families.base import OBSERVED, FamilyModel, ParameterInfo
from bayesmix.families.levels import check_class_level, cluster_level_covariates
from bayesmix.simulate import draw_classes

RE_OFFDIAG = "re_offdiag"
TAU_BOUND = 15.0
_START_SCALE = 3.0  # half-width of the uniform threshold perturbation of random starts
RESPONSE = "response"


@dataclass(frozen=True)
class LCASpec:
    """Specification of an LCA (frozen; stored with every fit)."""

    n_classes: int
    link: str = "logit"
    random_intercepts: bool = False
    class_level: str = "within"
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise SpecificationError(
            f"n_classes: got {n_classes!r}; give an integer >= 1 (1 is the single-class baseline)."
        )
    return int(n_classes)


def lca(
    data,
    items=None,
    n_classes: int = 2,
    *,
    item_types=None,
    link: str = "logit",
    cluster=None,
    covariates=None,
    random_intercepts: bool | None = None,
    class_level: str = "within",
    integration="trapezoid",
    priors: dict | None = None,
) -> "LCAModel":
    """Latent class analysis (eq. 1, 2, 4), optionally two-level.

    Parameters
    ----------
    data : pandas.DataFrame
        Wide data, one row per person.
    items : list of str
        Item columns. ``None`` uses every column not named as cluster/covariate.
    n_classes : int
        Number of latent classes K >= 1.
    item_types : None, str or dict
        "binary", "ordinal" or "continuous" for all items or per item; inferred
        when omitted (see ``bayesmix.data.prepare_wide``).
    link : {"logit", "probit"}
        Link of the categorical items (the class model is always logit, eq. 4).
    cluster : str, optional
        Cluster column (any label type). Makes the model two-level.
    covariates : list of str, optional
        Predictors of class membership (beta in eq. 4; cluster-level columns,
        constant within each cluster, with ``class_level="between"``, eq. 17).
    random_intercepts : bool, optional
        Cluster random intercepts alpha_cj in the class logits (default: True
        when ``cluster`` is given, K > 1 and the class is within-level).
    class_level : {"within", "between"}
        "within": one class per person (eq. 4). "between": one class per
        cluster, C_ij = C_j (eq. 16); needs ``cluster``, has no random
        intercepts, and its covariates must be cluster-level (eq. 17).
    integration : str, dict or Integration
        Rule used to integrate the random intercepts (paper section 10).
    priors : dict, optional
        Parameter name -> ``pm.X.dist(...)`` replacing a default prior (see the
        module docstring for names and defaults). ML ignores priors.
    """
    n_classes = _check_n_classes(n_classes)
    core_items.check_link(link)
    integration = as_integration(integration)
    has_cluster = data.cluster_name is not None if isinstance(data, PreparedData) else cluster is not None
    check_class_level(class_level, cluster=cluster if has_cluster else None,
                      random_intercepts=bool(random_intercepts))
    if random_intercepts is None:
        random_intercepts = cluster is not None and n_classes > 1 and class_level == "within"
    if random_intercepts and cluster is None:
        raise SpecificationError(
            "random_intercepts: got True without a cluster; give cluster='<column>' or set random_intercepts=False."
        )
    if isinstance(data, PreparedData):
        prepared = data
    else:
        if items is None:
            used = set([cluster] if cluster is not None else []) | set(covariates or [])
            items = [c for c in getattr(data, "columns", []) if c not in used]
        prepared = prepare_wide(data, items, item_types=item_types, cluster=cluster, covariates=covariates)
    spec = LCASpec(
        n_classes=n_classes,
        link=link,
        random_intercepts=bool(random_intercepts and n_classes > 1),
        class_level=class_level,
        integration=integration,
        prior_names=tuple(sorted(priors or {})),
    )
    return LCAModel.build(prepared, spec, priors)


class LCAModel(FamilyModel):
    """A built LCA: ``.model`` is the plain ``pm.Model``; fit with ``bayesmix.fit_ml``
    or ``bayesmix.sample``."""

    @classmethod
    def build(cls, data: PreparedData, spec: LCASpec, priors: dict | None) -> "LCAModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="lca")
        self._arrays()
        self._declare_parameters()
        self.register(priors)
        return self

    @property
    def integration_dim(self) -> int:
        return self.spec.n_classes - 1 if self.spec.random_intercepts else 0

    @property
    def class_level(self) -> str:
        """"within" (a class per person) or "between" (a class per cluster, eq. 16)."""
        return self.spec.class_level

    @property
    def between(self) -> bool:
        return self.spec.class_level == "between"

    # ------------------------------------------------------------------ data
    def _arrays(self):
        d = self.data
        # (J, Q) predictors of a between-level class (validated constant within clusters)
        self.cluster_x = cluster_level_covariates(d) if self.between else None
        cat = np.asarray(d.categorical_mask, dtype=bool)
        self.cat_items = [it for it, c in zip(d.items, cat) if c]
        self.cont_items = [it for it, c in zip(d.items, cat) if not c]
        self.n_cat = np.array([it.n_categories for it in self.cat_items], dtype=int)
        self.m_max = int(self.n_cat.max()) if len(self.n_cat) else 0
        y, obs = d.y, d.observed
        if self.cat_items:
            codes = np.where(obs[:, cat], y[:, cat], 0).astype(int)
            self.indicators = core_items.indicator_matrix(codes, obs[:, cat], self.m_max)
        if self.cont_items:
            self.y_cont = np.where(obs[:, ~cat], y[:, ~cat], 0.0)
            self.obs_cont = obs[:, ~cat]
        # threshold bookkeeping: item t belongs to, its order k, first slot of its item
        thr_item, thr_k, labels = [], [], []
        for p, it in enumerate(self.cat_items):
            for k in range(it.n_categories - 1):
                thr_item.append(p)
                thr_k.append(k)
                labels.append(f"{it.name}${k + 1}")
        self.thr_item = np.array(thr_item, dtype=int)
        self.thr_k = np.array(thr_k, dtype=int)
        self.thr_labels = labels
        self.ordinal = bool(len(self.n_cat) and self.n_cat.max() > 2)
        self.response_labels = [f"{it.name}#{c:g}" if isinstance(c, (int, float, np.number)) else f"{it.name}#{c}"
                                for it in self.cat_items for c in it.categories]

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        persons = list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons))
        coords = {
            dims.CLASS: list(range(1, k + 1)),
            dims.PERSON: persons,
        }
        if self.cat_items:
            coords[dims.ITEM] = [it.name for it in self.cat_items]
            coords[dims.THRESHOLD] = self.thr_labels
            coords[RESPONSE] = self.response_labels
        if self.cont_items:
            coords[dims.CONTINUOUS_ITEM] = [it.name for it in self.cont_items]
        if k > 1:
            coords[dims.CLASS_LOGIT] = list(range(1, k))
        if d.covariates.shape[1] and k > 1:
            coords[dims.COVARIATE] = list(d.covariate_names)
        if d.cluster_idx is not None:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        if self.spec.random_intercepts:
            coords[dims.RE] = [f"alpha_{c}" for c in range(1, k)]
            coords[dims.RE_BIS] = coords[dims.RE]
            if k > 2:
                r, c = np.tril_indices(k - 1, -1)
                coords[RE_OFFDIAG] = [f"L[{i + 1},{j + 1}]" for i, j in zip(r, c)]
        return coords

    def _declare_parameters(self):
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        k, spec = self.spec.n_classes, self.spec
        free = []
        tau_sd = 5.0 if spec.link == "logit" else 3.0
        if self.cat_items:
            name = "tau_raw" if self.ordinal else "tau"
            free.append(ParameterInfo(name, (dims.CLASS, dims.THRESHOLD), pm.Normal.dist(0.0, tau_sd),
                                      "thresholds, eq. (1)"))
        if self.cont_items:
            mean = np.nanmean(np.where(self.obs_cont, self.y_cont, np.nan), axis=0)
            sd = np.nanstd(np.where(self.obs_cont, self.y_cont, np.nan), axis=0) + 1e-12
            self._cont_moments = (mean, sd)
            free.append(ParameterInfo("nu", (dims.CLASS, dims.CONTINUOUS_ITEM),
                                      pm.Normal.dist(mean, 3 * sd), "class means, eq. (2)"))
            free.append(ParameterInfo("log_theta", (dims.CONTINUOUS_ITEM,),
                                      pm.Normal.dist(np.log(sd**2), 2.0), "log residual variances"))
        if k > 1:
            free.append(ParameterInfo("alpha", (dims.CLASS_LOGIT,), pm.Normal.dist(0.0, 3.0),
                                      "class-logit intercepts, eq. (4)"))
            if self.data.covariates.shape[1]:
                free.append(ParameterInfo("beta", (dims.CLASS_LOGIT, dims.COVARIATE), pm.Normal.dist(0.0, 2.5),
                                          "class-logit slopes, eq. (4)"))
        if spec.random_intercepts:
            free.append(ParameterInfo("chol_log_diag", (dims.RE,), pm.Normal.dist(0.0, 1.5),
                                      "log of the Cholesky diagonal of Var(alpha_cj)"))
            if k > 2:
                free.append(ParameterInfo("chol_offdiag", (RE_OFFDIAG,), pm.Normal.dist(0.0, 1.0),
                                          "below-diagonal Cholesky elements of Var(alpha_cj)"))
        self.free = free

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        k = self.spec.n_classes
        reported = []
        if self.cat_items:
            if self.ordinal:
                first = self.thr_k == 0
                steps = pt.where(first[None, :], p["tau_raw"], pt.exp(p["tau_raw"]))
                cs = pt.cumsum(steps, axis=-1)
                cs0 = pt.concatenate([pt.zeros((k, 1)), cs], axis=-1)
                start = np.searchsorted(self.thr_item, self.thr_item, side="left")
                tau = pm.Deterministic("tau", cs - cs0[:, start], dims=(dims.CLASS, dims.THRESHOLD))
            else:
                tau = p["tau"]
            reported.append("tau")
        else:
            tau = None
        if self.cont_items:
            theta = pm.Deterministic("theta", pt.exp(p["log_theta"]), dims=(dims.CONTINUOUS_ITEM,))
            reported += ["nu", "theta"]
        if k > 1:
            reported.append("alpha")
            if "beta" in p:
                reported.append("beta")
        chol = None
        if self.spec.random_intercepts:
            chol = chol_from_unconstrained(p["chol_log_diag"], p.get("chol_offdiag"), k - 1)
            pm.Deterministic("psi", chol @ chol.T, dims=(dims.RE, dims.RE_BIS))
            reported.append("psi")

        inputs = {"tau": tau, "nu": p.get("nu"), "theta": theta if self.cont_items else None,
                  "alpha": p.get("alpha"), "beta": p.get("beta"), "chol": chol}
        names = [n for n, v in inputs.items() if v is not None]
        self.likelihood_tensors = {n: inputs[n] for n in names}
        tensors = [pt.as_tensor(inputs[n]) for n in names]

        def logp(value, *params):
            # CustomDist adds a leading batch axis of length 1 to each parameter
            q = {n: t[0] for n, t in zip(names, params)}
            return self._unit_loglik(q)

        signature = ",".join("(" + ",".join(f"d{i}_{j}" for j in range(t.ndim)) + ")" for i, t in enumerate(tensors)) + "->()"
        n_units = self.data.n_clusters if self.is_two_level else self.data.n_persons
        pm.CustomDist(OBSERVED, *tensors, logp=logp, observed=np.arange(n_units), signature=signature,
                      dims=self.unit_dim)

        share = self._class_share(self.likelihood_tensors)
        pm.Deterministic("class_share", share, dims=(dims.CLASS,))
        reported.append("class_share")
        if self.cat_items:
            lp = core_items.category_log_probs(self._tau_padded(tau), self.n_cat, self.spec.link)
            valid = np.arange(self.m_max)[None, :] < self.n_cat[:, None]
            pm.Deterministic("item_prob", pt.exp(lp)[:, valid], dims=(dims.CLASS, RESPONSE))
        self.reported = reported

    def _tau_padded(self, tau):
        k = self.spec.n_classes
        pad = pt.zeros((k, len(self.cat_items), max(self.m_max - 1, 1)))
        return pt.set_subtensor(pad[:, self.thr_item, self.thr_k], tau)

    def _log_f(self, q):
        """(N, K) log density of each person's observed items given each class."""
        out = 0.0
        if self.cat_items:
            lp = core_items.category_log_probs(self._tau_padded(q["tau"]), self.n_cat, self.spec.link)
            out = out + core_items.categorical_loglik(self.indicators, lp)
        if self.cont_items:
            out = out + core_items.normal_loglik(self.y_cont, self.obs_cont, q["nu"], q["theta"])
        if not self.cat_items and not self.cont_items:  # pragma: no cover - data layer forbids
            raise SpecificationError("no items")
        return out

    def _logits(self, q):
        """(N or 1, K-1) fixed part of the class logits, eq. (4); for a
        between-level class (J or 1, K-1), one logit per cluster, eq. (17)."""
        logits = q["alpha"][None, :]
        if q.get("beta") is not None:
            x = self.cluster_x if self.between else self.data.covariates
            logits = logits + pt.dot(x, q["beta"].T)
        return logits

    def _cluster_joint(self, q, log_f):
        """Between-level class: (J, K) log P(C_j = c | x_j) + sum_i log f(y_ij | c)."""
        f_j = segment_sum(log_f, self.data.cluster_idx, self.data.n_clusters)
        if self.spec.n_classes == 1:
            return f_j
        return class_log_prior(self._logits(q)) + f_j

    def _joint(self, q, log_f, u=None):
        """log P(C = c | x, u) + log f(y | c): (N, K) or, with nodes u (B, Q, D), (N, Q, K)."""
        k = self.spec.n_classes
        if k == 1:
            return log_f if u is None else log_f[:, None, :]
        logits = self._logits(q)
        if u is None:
            return class_log_prior(logits) + log_f
        return class_log_prior(logits[:, None, :] + u) + log_f[:, None, :]

    def _integral(self, q, log_f):
        def person_loglik(u):
            return pt.logsumexp(self._joint(q, log_f, u), axis=-1)

        return integrate_clusters(person_loglik, self.spec.integration, q["chol"],
                                  self.data.cluster_idx, self.data.n_clusters)

    def _unit_loglik(self, q):
        log_f = self._log_f(q)
        if self.between:
            return pt.logsumexp(self._cluster_joint(q, log_f), axis=-1)
        if self.spec.random_intercepts:
            return self._integral(q, log_f).loglik
        person = mixture_logsumexp(0.0, self._joint(q, log_f)) if self.spec.n_classes > 1 else log_f[:, 0]
        if self.is_two_level:
            return segment_sum(person, self.data.cluster_idx, self.data.n_clusters)
        return person

    def membership_graph(self, q):
        """(N, K) posterior class probabilities P(C_i = c | data), integrating the
        random intercepts with the cluster's posterior over the nodes. With a
        between-level class each person gets its cluster's posterior."""
        if self.between:
            return self.cluster_membership_graph(q)[self.data.cluster_idx]
        log_f = self._log_f(q)
        if not self.spec.random_intercepts:
            return pt.special.softmax(self._joint(q, log_f), axis=-1)
        integral = self._integral(q, log_f)
        u = integral.nodes[self.data.cluster_idx] if self.spec.integration.adaptive else integral.nodes
        p_c = pt.special.softmax(self._joint(q, log_f, u), axis=-1)  # (N, Q, K)
        w = pt.exp(integral.log_post)[self.data.cluster_idx]  # (N, Q)
        return pt.sum(w[:, :, None] * p_c, axis=1)

    def cluster_membership_graph(self, q):
        """(J, K) posterior class probabilities P(C_j = c | cluster data) of a
        between-level class."""
        if not self.between:
            raise SpecificationError(
                "cluster_membership: this LCA has a within-level class (one per person); cluster membership "
                "needs class_level='between'. Fix: use membership_graph, or build lca(..., class_level='between').")
        return pt.special.softmax(self._cluster_joint(q, self._log_f(q)), axis=-1)

    def _class_share(self, q):
        k = self.spec.n_classes
        if k == 1:
            return pt.ones((1,))
        logits = self._logits(q)
        if not self.spec.random_intercepts:
            return class_proportions(logits)
        # the model's own (non-adaptive) rule, so the user's n_points governs the
        # accuracy here as in the likelihood; adaptive moments are per cluster and
        # do not apply to a marginal share, so that case uses a wide trapezoid grid
        integ = self.spec.integration
        if integ.adaptive:
            integ = Integration(rule="trapezoid", n_points=max(int(np.max(integ.n_points)), 31), bound=7.0)
        return class_proportions(logits, q["chol"], integ)

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A random starting set in the style of Mplus: marginal thresholds and means
        perturbed class by class, equal class sizes, moderate random-effect sd."""
        k = self.spec.n_classes
        pt_ = {}
        if self.cat_items:
            ppf = stats.logistic.ppf if self.spec.link == "logit" else stats.norm.ppf
            tau = np.empty((k, len(self.thr_labels)))
            for p, it in enumerate(self.cat_items):
                sl = self.thr_item == p
                codes = self.indicators.reshape(self.data.n_persons, len(self.cat_items), self.m_max)[:, p, : it.n_categories]
                counts = codes.sum(axis=0) + 0.5
                cum = np.cumsum(counts)[:-1] / counts.sum()
                base = ppf(cum)
                for c in range(k):
                    tau[c, sl] = np.sort(base + rng.uniform(-_START_SCALE, _START_SCALE, size=base.size))
            if self.ordinal:
                raw = tau.copy()
                later = self.thr_k > 0
                raw[:, later] = np.log(np.maximum(np.diff(tau, axis=1)[:, later[1:]], 1e-3))
                pt_["tau_raw"] = raw
            else:
                pt_["tau"] = tau
        if self.cont_items:
            mean, sd = self._cont_moments
            pt_["nu"] = mean[None, :] + rng.uniform(-1.0, 1.0, size=(k, len(mean))) * sd[None, :]
            pt_["log_theta"] = np.log(sd**2)
        if k > 1:
            pt_["alpha"] = rng.normal(0.0, 0.1, size=k - 1)
            if self.data.covariates.shape[1]:
                pt_["beta"] = np.zeros((k - 1, self.data.covariates.shape[1]))
        if self.spec.random_intercepts:
            pt_["chol_log_diag"] = np.full(k - 1, np.log(0.5))
            if k > 2:
                pt_["chol_offdiag"] = np.zeros((k - 1) * (k - 2) // 2)
        return pt_

    def bounds(self, packing):
        """Thresholds are kept in [-15, 15] (Mplus' convention for logit
        thresholds; 1 - expit(15) = 3.1e-7, so holding a threshold there costs at
        most N * 3e-7 in log-likelihood; Phi(15) is 1 to machine precision), the
        log-increments of ordinal thresholds in [-15, 3.5]. A class whose
        response probability tends to 0 or 1 otherwise drives its threshold to
        infinity (1e162 was seen) and the prior log density of that start is -inf."""
        low, high = super().bounds(packing)
        name = "tau_raw" if self.ordinal else "tau" if self.cat_items else None
        if name is not None:
            i = packing.names.index(name)
            start = sum(packing.sizes[:i])
            later = np.tile(self.thr_k > 0, self.spec.n_classes)
            sl = slice(start, start + packing.sizes[i])
            low[sl] = np.where(later, -15.0, -TAU_BOUND)
            high[sl] = np.where(later, 3.5, TAU_BOUND)
        return low, high

    def permute_classes(self, values, perm):
        """New class c is old class perm[c]. Reference-coded quantities (alpha,
        beta, the random intercepts) are re-expressed against the new last class."""
        perm = np.asarray(perm)
        out = dict(values)
        for name in ("tau", "tau_raw", "nu"):
            if name in values:
                out[name] = np.take(values[name], perm, axis=-2)
        return _classes.permute_logits(out, perm, names=("alpha", "beta"))

    def class_signature(self, values):
        """Per class: item response probabilities (categorical) and standardised
        means (continuous); the features used to match class labels."""
        feats = []
        if self.cat_items:
            tau = values["tau"]
            cdf = special.expit(tau) if self.spec.link == "logit" else special.ndtr(tau)
            feats.append(cdf)
        if self.cont_items:
            mean, sd = self._cont_moments
            feats.append((values["nu"] - mean) / sd)
        return np.concatenate(feats, axis=-1)

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw classes and item responses for the analysed persons at natural
        parameters ``natural`` (tau, nu, theta, alpha, beta, psi); missing cells stay
        missing. A between-level class is drawn once per cluster. Returns
        (y (N, P) in item codes / values, class (N,) 0-based)."""
        d, k = self.data, self.spec.n_classes
        n = d.n_persons
        if k > 1 and self.between:
            logits = np.broadcast_to(natural["alpha"], (d.n_clusters, k - 1)).copy()
            if "beta" in natural:
                logits += self.cluster_x @ natural["beta"].T
            cls = draw_classes(logits, rng)[d.cluster_idx]
        elif k > 1:
            logits = np.broadcast_to(natural["alpha"], (n, k - 1)).copy()
            if "beta" in natural:
                logits += d.covariates @ natural["beta"].T
            if "psi" in natural:
                u = rng.multivariate_normal(np.zeros(k - 1), natural["psi"], size=d.n_clusters)
                logits += u[d.cluster_idx]
            cls = draw_classes(logits, rng)
        else:
            cls = np.zeros(n, dtype=int)
        y = np.full((n, len(d.items)), np.nan)
        cat = np.asarray(d.categorical_mask, dtype=bool)
        cat_cols = np.flatnonzero(cat)
        for p, it in enumerate(self.cat_items):
            thr = natural["tau"][cls][:, self.thr_item == p]  # (N, m-1)
            ystar = (stats.logistic if self.spec.link == "logit" else stats.norm).rvs(size=n, random_state=rng)
            y[:, cat_cols[p]] = (ystar[:, None] > thr).sum(axis=1)
        for p, col in enumerate(np.flatnonzero(~cat)):
            y[:, col] = natural["nu"][cls, p] + np.sqrt(natural["theta"][p]) * rng.standard_normal(n)
        y[~d.observed] = np.nan
        return y, cls


def item_probabilities_frame(model: LCAModel, item_prob: np.ndarray) -> pd.DataFrame:
    """Tidy table: item, category, class, probability (from an ``item_prob`` array)."""
    rows = []
    j = 0
    for it in model.cat_items:
        for cat in it.categories:
            for c in range(model.n_classes):
                rows.append({"item": it.name, "category": cat, "class": c + 1, "probability": float(item_prob[c, j])})
            j += 1
    return pd.DataFrame(rows)
