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
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.integrate import integrate_clusters, segment_sum
from bayesmix.core.marginal import mixture_logsumexp
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families.base import ClassVariable, FamilyModel, Reported
from bayesmix.families.blocks import (
    ClassLogits,
    NormalItems,
    Thresholds,
    category_counts,
    check_n_classes,
    draw_classes,
    measurement_tensors,
)
from bayesmix.families.examples import example_data
from bayesmix.families.levels import check_class_level, check_not_constant, cluster_level_covariates


@dataclass(frozen=True)
class LCASpec:
    """Specification of an LCA (frozen; stored with every fit)."""

    n_classes: int
    link: str = "logit"
    random_intercepts: bool = False
    class_level: str = "within"
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()


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
    n_classes = check_n_classes(n_classes)
    core_items.check_link(link)
    integration = as_integration(integration)
    if isinstance(data, PreparedData) and cluster is None:
        cluster = data.cluster_name  # prepared two-level data carry their cluster
    check_class_level(class_level, cluster=cluster, random_intercepts=bool(random_intercepts))
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

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        level = (dims.CLUSTER,) if self.between else (dims.PERSON,)
        return (ClassVariable("C", dims.CLASS, self.spec.n_classes, level, "class_share",
                              label="latent class" + (" (between level)" if self.between else ""),
                              logit_variance="psi" if self.spec.random_intercepts else None,
                              logit_intercept="alpha" if self.spec.n_classes > 1 else None),)

    # ------------------------------------------------------------------ data
    def _arrays(self):
        d, k = self.data, self.spec.n_classes
        # (J, Q) predictors of a between-level class (validated constant within clusters)
        self.cluster_x = cluster_level_covariates(d) if self.between else None
        if k > 1:  # a constant class predictor is confounded with alpha (as in mixture_regression)
            check_not_constant(d.covariate_names, self.cluster_x if self.between else d.covariates,
                               "clusters" if self.between else "persons", "the class-logit intercept alpha")
        cat = np.asarray(d.categorical_mask, dtype=bool)
        self.cat_items = [it for it, c in zip(d.items, cat) if c]
        self.cont_items = [it for it, c in zip(d.items, cat) if not c]
        y, obs = d.y, d.observed
        self.thresholds = None
        if self.cat_items:
            self.thresholds = Thresholds(self.cat_items, category_counts(d, np.flatnonzero(cat)), self.spec.link, k)
            codes = np.where(obs[:, cat], y[:, cat], 0).astype(int)
            self.indicators = core_items.indicator_matrix(codes, obs[:, cat], self.thresholds.m_max)
        self.normal = None
        if self.cont_items:
            self.y_cont = np.where(obs[:, ~cat], y[:, ~cat], 0.0)
            self.obs_cont = obs[:, ~cat]
            yc = np.where(self.obs_cont, self.y_cont, np.nan)
            moments = (np.nanmean(yc, axis=0), np.nanstd(yc, axis=0) + 1e-12)
            self.normal = NormalItems("nu", dims.CONTINUOUS_ITEM, moments, k)
        self.logits_block = ClassLogits(k, d.covariates.shape[1], random=self.spec.random_intercepts,
                                        level_eq="eq. 17" if self.between else "eq. 4")

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        persons = list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons))
        coords = {dims.CLASS: list(range(1, k + 1)), dims.PERSON: persons}
        if self.cat_items:
            coords[dims.ITEM] = [it.name for it in self.cat_items]
            coords.update(self.thresholds.coords())
            coords[dims.RESPONSE] = [f"{it.name}#{c:g}" if isinstance(c, (int, float, np.number)) else
                                     f"{it.name}#{c}" for it in self.cat_items for c in it.categories]
        if self.cont_items:
            coords[dims.CONTINUOUS_ITEM] = [it.name for it in self.cont_items]
        if d.covariates.shape[1] and k > 1:
            coords[dims.COVARIATE] = list(d.covariate_names)
        if d.cluster_idx is not None:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        coords.update(self.logits_block.coords())
        return coords

    def _declare_parameters(self):
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        free = []
        if self.cat_items:
            free += self.thresholds.parameters()
        if self.cont_items:
            free += [self.normal.mean_parameter(), self.normal.variance_parameter()]
        free += self.logits_block.fixed_parameters() + self.logits_block.random_parameters()
        self.free = free

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        tau, theta, reported = measurement_tensors(self.thresholds, self.normal, p)
        reported += self.logits_block.reported_fixed()
        chol = self.logits_block.chol(p)
        reported += self.logits_block.reported_random()
        self.observe({"tau": tau, "nu": p.get("nu"), "theta": theta, "alpha": p.get("alpha"),
                      "beta": p.get("beta"), "chol": chol}, self._unit_loglik)
        pm.Deterministic("class_share", self._class_share(self.likelihood_tensors), dims=(dims.CLASS,))
        reported.append(Reported("class_share", "Class proportions"))
        if self.cat_items:
            self.thresholds.item_prob(tau, self.spec.link)
        self.reported = reported

    def _log_f(self, q):
        """(N, K) log density of each person's observed items given each class."""
        out = 0.0
        if self.cat_items:
            thr = self.thresholds
            lp = core_items.category_log_probs(thr.padded(q["tau"]), thr.n_cat, self.spec.link)
            out = out + core_items.categorical_loglik(self.indicators, lp)
        if self.cont_items:
            out = out + core_items.normal_loglik(self.y_cont, self.obs_cont, q["nu"], q["theta"])
        return out

    def _logits(self, q):
        """(N or 1, K-1) fixed part of the class logits, eq. (4); for a
        between-level class (J or 1, K-1), one logit per cluster, eq. (17)."""
        x = self.cluster_x if self.between else self.data.covariates
        return self.logits_block.logits(q, x)

    def _cluster_joint(self, q, log_f):
        """Between-level class: (J, K) log P(C_j = c | x_j) + sum_i log f(y_ij | c)."""
        f_j = segment_sum(log_f, self.data.cluster_idx, self.data.n_clusters)
        if self.spec.n_classes == 1:
            return f_j
        return ClassLogits.log_prior(self._logits(q)) + f_j

    def _joint(self, q, log_f, u=None):
        """log P(C = c | x, u) + log f(y | c): (N, K) or, with nodes u (B, Q, D), (N, Q, K)."""
        if self.spec.n_classes == 1:
            return log_f if u is None else log_f[:, None, :]
        logits = self._logits(q)
        if u is None:
            return ClassLogits.log_prior(logits) + log_f
        return ClassLogits.log_prior(logits[:, None, :] + u) + log_f[:, None, :]

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

    def membership_graphs(self, q):
        """{"C": (N, K)} posterior class probabilities P(C_i = c | data), integrating
        the random intercepts with the cluster's posterior over the nodes; with a
        between-level class {"C": (J, K)}, P(C_j = c | cluster data)."""
        log_f = self._log_f(q)
        if self.between:
            return {"C": pt.special.softmax(self._cluster_joint(q, log_f), axis=-1)}
        if not self.spec.random_intercepts:
            return {"C": pt.special.softmax(self._joint(q, log_f), axis=-1)}
        integral = self._integral(q, log_f)
        u = integral.nodes[self.data.cluster_idx] if self.spec.integration.adaptive else integral.nodes
        p_c = pt.special.softmax(self._joint(q, log_f, u), axis=-1)  # (N, Q, K)
        w = pt.exp(integral.log_post)[self.data.cluster_idx]  # (N, Q)
        return {"C": pt.sum(w[:, :, None] * p_c, axis=1)}

    def _class_share(self, q):
        return self.logits_block.share(self._logits(q), q.get("chol"))

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A random starting set in the style of Mplus (``blocks``' one policy):
        marginal thresholds and means perturbed class by class, equal class
        sizes, moderate random-effect sd."""
        start = {}
        if self.cat_items:
            start.update(self.thresholds.start(rng))
        if self.cont_items:
            start["nu"] = self.normal.start_mean(rng)
            start["log_theta"] = np.log(self.normal.sd**2)
        start.update(self.logits_block.start_fixed(rng))
        start.update(self.logits_block.start_random())
        return start

    def permute_classes(self, values, perms):
        """New class c is old class perm[c]. Reference-coded quantities (alpha,
        beta, the random intercepts) are re-expressed against the new last class."""
        perm = self._perm_dict(perms)["C"]
        out = dict(values)
        if self.thresholds is not None:
            out = self.thresholds.permute(out, perm)
        if self.normal is not None:
            out = self.normal.permute(out, perm)
        return self.logits_block.permute(out, perm)

    def class_signature(self, values):
        """Per class: item response probabilities (categorical) and standardised
        means (continuous); the features used to match class labels."""
        feats = []
        if self.cat_items:
            feats.append(self.thresholds.signature(values))
        if self.cont_items:
            feats.append(self.normal.signature(values))
        return {"C": np.concatenate(feats, axis=-1)}

    def profile_table(self, natural):
        if "item_prob" not in natural:
            return super().profile_table(natural)
        return self.thresholds.profile_table(natural["item_prob"])

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw classes and item responses for the analysed persons at natural
        parameters ``natural`` (tau, nu, theta, alpha, beta, psi); missing cells stay
        missing. A between-level class is drawn once per cluster. Returns
        (y (N, P) in item codes / values, class (N,) 0-based)."""
        d, k = self.data, self.spec.n_classes
        n = d.n_persons
        if k > 1 and self.between:
            logits = self.logits_block.draw_logits(natural, self.cluster_x, d.n_clusters)
            cls = draw_classes(logits, rng)[d.cluster_idx]
        elif k > 1:
            logits = self.logits_block.draw_logits(natural, d.covariates, n, d.cluster_idx, d.n_clusters, rng)
            cls = draw_classes(logits, rng)
        else:
            cls = np.zeros(n, dtype=int)
        y = np.full((n, len(d.items)), np.nan)
        cat = np.asarray(d.categorical_mask, dtype=bool)
        cat_cols = np.flatnonzero(cat)
        for p in range(len(self.cat_items)):
            thr = natural["tau"][cls][:, self.thresholds.thr_item == p]  # (N, m-1)
            ystar = (stats.logistic if self.spec.link == "logit" else stats.norm).rvs(size=n, random_state=rng)
            y[:, cat_cols[p]] = (ystar[:, None] > thr).sum(axis=1)
        for p, col in enumerate(np.flatnonzero(~cat)):
            y[:, col] = natural["nu"][cls, p] + np.sqrt(natural["theta"][p]) * rng.standard_normal(n)
        y[~d.observed] = np.nan
        return y, cls


def example(two_level: bool = False) -> LCAModel:
    """A tiny two-class LCA (48 persons, 4 binary items; 8 clusters of 6 with
    random class-logit intercepts when ``two_level``) for the registry tests."""
    return lca(example_data(), ["y1", "y2", "y3", "y4"], 2, **({"cluster": "cluster"} if two_level else {}))

