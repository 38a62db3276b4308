"""Two-level mixture regression (paper sections 2, 5 and 6; eq. 2-5, 16-19, 22-26).

Within class c, outcome p of person i in cluster j has the linear predictor

    eta_pij(c) = mu_cp + beta_cp' x_ij + sum_r z_pij,r eta_j,r            (eq. 19, 2-3)

where the random coefficients eta_j (random intercepts and slopes of the
outcomes listed in ``random``) are cluster random effects with class-specific
means (mu_cp, beta_cp are their means) and

    eta_j = Gamma w_j + xi_j,   xi_j ~ N(0, V),  V = L L' (Cholesky)         (eq. 5)

with cluster-level covariates w_j. A normal outcome is y = eta + e, e ~ N(0,
theta_p); a binary or ordinal outcome follows the thresholds of eq. (1),
P(y = k) = F(tau_c,k+1 - eta) - F(tau_c,k - eta), so its intercept lives in
the class-specific thresholds and its random intercept has mean 0.

Status of the class variable (the paper's Table 4):

``within``          C_ij per person, P(C_ij = c) = softmax(alpha_c + beta_class_c x_ij) (eq. 4).
``between``         C_j per cluster (eq. 16), P(C_j = c) = softmax(alpha_c + beta_class_c w_j)
                    with cluster-level predictors only (eq. 17), and class-specific
                    random-effect variances V_c when ``class_specific_variance`` (eq. 18).
``within-between``  C_ij with a cluster random intercept in its logits,
                    alpha_cj = alpha_c + a_cj, a_j ~ N(0, Psi) (Model 6 of section 5);
                    ICC of a_cj by eq. (20).

The section 6 model with a between class D_j as well is built by
``bayesmix.within_between`` (``within_between.WithinBetweenModel``, a subclass
of this model that adds D through the hooks marked "D" below).

Which likelihood path a model takes (``model.path``)
----------------------------------------------------
``direct``      no random effect: exact sums over classes (and persons).
``analytic``    all outcomes normal, random coefficients, and the class at the
                between level (or a single class): the random effects are
                integrated in closed form per class (``core.normal_marginal``); no
                quadrature error, cost linear in N.
``quadrature``  otherwise (a within class with random coefficients, a random
                class-logit intercept, or categorical outcomes with random
                effects): ``core.marginal.integrate_clusters`` over the random
                coefficients and class-logit intercepts jointly (block-diagonal
                covariance), by the chosen rule.

Free parameters (real line) and default priors: ``mu`` Normal(outcome mean,
3 sd); ``beta`` Normal(0, 2.5 sd_y / sd_x); ``tau`` / ``tau_raw`` as in ``lca``;
``log_theta`` Normal(log var(y), 2); ``v_log_sd`` Normal(log(s / 2), 2) and
``v_offdiag`` Normal(0, 1) (Cholesky of V), with s the scale of the random
coefficient (sd_y for an intercept, sd_y / sd_x for a slope); ``gamma``
Normal(0, 2.5 s / sd_w);
``alpha`` Normal(0, 3); ``beta_class`` Normal(0, 2.5); ``chol_log_diag``
Normal(0, 1.5) and ``chol_offdiag`` Normal(0, 1) (Cholesky of Psi). Reported:
``mu``, ``tau``, ``beta``, ``theta``, ``v``, ``gamma``, ``alpha``,
``beta_class``, ``psi``, ``class_share``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.core.integrate import block_diag, chol_from_unconstrained, integrate_clusters, segment_sum
from bayesmix.data import PreparedData
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.blocks import (
    LOG_SD_BOUNDS,
    RE_SD_AT_BOUND,
    ClassLogits,
    NormalItems,
    Thresholds,
    category_counts,
    link_cdf,
)
from bayesmix.families.examples import example_data
from bayesmix.families.regression_outcomes import RegressionOutcomes
from bayesmix.families.regression_spec import RegressionSpec, build_regression

def mixture_regression(
    data,
    outcomes,
    covariates=None,
    n_classes: int = 2,
    *,
    cluster=None,
    class_level: str = "within",
    random=None,
    cluster_covariates=None,
    class_covariates=None,
    outcome_types=None,
    link: str = "logit",
    re_cov: str = "full",
    class_specific_variance: bool = False,
    integration="trapezoid",
    priors: dict | None = None,
) -> "RegressionModel":
    """Two-level mixture regression, eq. (19) and its generalisations.

    Parameters
    ----------
    data : pandas.DataFrame, one row per person.
    outcomes : str or list of str
        Dependent variables: normal, binary or ordinal (``outcome_types`` as
        ``item_types`` of ``lca``; inferred when omitted).
    covariates : list of str
        Within-level predictors x_ij of every outcome, with class-specific slopes.
    n_classes : int
        Number of latent classes (1 gives an ordinary random-effects regression,
        e.g. a random-intercept logistic GLMM).
    cluster : str
        Cluster column; required for random effects and for a between or
        within-between class.
    class_level : {"within", "between", "within-between"}
        Status of the class variable (Table 4).
    random : list of str
        Terms with a cluster random effect, for every outcome: ``"intercept"``
        and/or covariate names (random slopes).
    cluster_covariates : list of str
        Cluster-level predictors of the random effects (eq. 5); constant within cluster.
    class_covariates : list of str
        Predictors of class membership: person-level for a within class (eq. 4),
        cluster-level for a between class (eq. 17).
    re_cov : {"full", "diagonal"}
        Covariance of the random coefficients.
    class_specific_variance : bool
        A separate V_c per class (eq. 18); for a between class (and, in
        ``within_between``, per between class D).
    outcome_types : None, str or dict
        "binary", "ordinal" or "continuous", for all outcomes or per outcome
        (inferred when omitted, as ``item_types`` of ``lca``).
    link : {"logit", "probit"}
        Link of binary and ordinal outcomes (the class model is always logit).
    integration : str, dict or Integration
        Rule for the numerically integrated dimensions (paper section 10).
    priors : dict, optional
        Parameter name -> ``pm.X.dist(...)`` (see the module docstring).
    """
    return build_regression(RegressionModel, data, outcomes, covariates, n_classes, 1, cluster=cluster,
                            class_level=class_level, random=random, cluster_covariates=cluster_covariates,
                            class_covariates=class_covariates, outcome_types=outcome_types, link=link,
                            re_cov=re_cov, class_specific_variance=class_specific_variance,
                            integration=integration, priors=priors)


class RegressionModel(RegressionOutcomes, FamilyModel):
    """A built mixture regression: ``.model`` is the plain ``pm.Model``; ``.path``
    says how the random effects are integrated."""

    family_name = "mixture_regression"
    item_noun = "outcomes"

    @classmethod
    def build(cls, data: PreparedData, spec: RegressionSpec, priors):
        self = cls(model=pm.Model(), data=data, spec=spec, family=cls.family_name)
        arrays = self._arrays(data)
        self.shared = {k: pytensor.shared(v, name=k) for k, v in arrays.items()}
        self._blocks()
        self._declare_parameters()
        self.register(priors)
        return self

    def _rebuild(self, spec):
        new = super()._rebuild(spec)
        new._prepare_args = self._prepare_args  # what set_data needs to re-prepare data
        return new

    # ------------------------------------------------------------------ properties
    @property
    def class_level(self) -> str:
        """"within", "between", "within-between" (Table 4) or "within+between"
        (a within class C and a between class D, section 6)."""
        return self.spec.class_level

    @property
    def alpha_random(self) -> bool:
        return self.spec.class_level == "within-between"

    @property
    def cluster_class(self) -> bool:
        """The class is constant in the cluster (between), or there is one class."""
        return self.spec.class_level == "between" or (self.spec.n_classes == 1 and self.spec.n_between == 1)

    @property
    def integration_dim(self) -> int:
        if self.path != "quadrature":
            return 0
        return len(self.re_terms) + (self.spec.n_classes - 1 if self.alpha_random else 0)

    @property
    def path(self) -> str:
        if not self.spec.random and not self.alpha_random:
            return "direct"
        if self.spec.random and not self.cat_idx.size and self.cluster_class:
            return "analytic"
        return "quadrature"

    def describe_integration(self) -> str:
        """Which likelihood path this model takes (see the module docstring)."""
        if self.path == "direct":
            return "none (no random effects: exact sums over classes)"
        if self.path == "analytic":
            return "analytic normal marginal over the random coefficients (exact; no quadrature)"
        return self.spec.integration.describe(self.integration_dim)

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        k = self.spec.n_classes
        level = (dims.CLUSTER,) if self.spec.class_level == "between" else (dims.PERSON,)
        return (ClassVariable("C", dims.CLASS, k, level, "class_share", label="latent class",
                              logit_variance="psi" if self.alpha_random else None,
                              logit_intercept="alpha" if k > 1 else None),)

    # ------------------------------------------------------------------ parameters
    def _blocks(self):
        spec, k = self.spec, self.spec.n_classes
        self.thresholds = (Thresholds(self.cat_items, category_counts(self.data, self.cat_idx), spec.link, k)
                           if self.cat_items else None)
        self.normal = (NormalItems("mu", dims.CONTINUOUS_OUTCOME, (self.y_mean, self.y_sd), k,
                                   mean_title="class-specific intercepts, eq. (19)")
                       if self.cont_idx.size else None)
        self.class_logits = ClassLogits(k, len(spec.class_covariates), random=self.alpha_random,
                                        slope="beta_class", covariate_dim=dims.CLASS_COVARIATE,
                                        level_eq="eq. 4 / 17")

    def _coords(self):
        d, spec, k = self.data, self.spec, self.spec.n_classes
        persons = list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons))
        coords = {dims.CLASS: list(range(1, k + 1)), dims.PERSON: persons, dims.OUTCOME: self.outcome_names}
        if self.cont_idx.size:
            coords[dims.CONTINUOUS_OUTCOME] = self.outcome_names[: self.cont_idx.size]
        if self.cat_items:
            coords.update(self.thresholds.coords())
        if spec.covariates:
            coords[dims.COVARIATE] = list(spec.covariates)
        if d.is_two_level:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        if spec.class_covariates and k > 1:
            coords[dims.CLASS_COVARIATE] = list(spec.class_covariates)
        if spec.random:
            labels = [f"{self.outcome_names[p]}:{t}" for p, t in self.re_terms]
            coords[dims.RE_COEF] = labels
            coords[dims.RE_COEF_BIS] = labels
            if spec.re_cov == "full" and len(labels) > 1:
                r, c = np.tril_indices(len(labels), -1)
                coords[dims.RE_COEF_OFFDIAG] = [f"L[{i + 1},{j + 1}]" for i, j in zip(r, c)]
        if spec.cluster_covariates:
            coords[dims.CLUSTER_COVARIATE] = list(spec.cluster_covariates)
        coords.update(self.class_logits.coords())
        return coords

    def _v_dims(self):
        """Leading dims of the random-coefficient covariance: per class (between,
        eq. 18), per between class D (section 6, eq. 25) or shared."""
        if not self.spec.class_specific_variance:
            return ()
        return (dims.CLASS_BETWEEN,) if self.spec.n_between > 1 else (dims.CLASS,)

    def _declare_parameters(self):
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        spec = self.spec
        free = []
        if self.cont_idx.size:
            free.append(self.normal.mean_parameter())
        if self.cat_items:
            free += self.thresholds.parameters()
        if spec.covariates:
            scale = 2.5 * self.outcome_scale[:, None] / self.x_sd[None, :]
            free.append(ParameterInfo("beta", (dims.CLASS, dims.OUTCOME, dims.COVARIATE),
                                      pm.Normal.dist(0.0, scale), "class-specific slopes, eq. (19)"))
        if self.cont_idx.size:
            free.append(self.normal.variance_parameter())
        if spec.random:
            vd = self._v_dims()
            free.append(ParameterInfo("v_log_sd", (*vd, dims.RE_COEF),
                                      pm.Normal.dist(np.log(0.5 * self._re_scale()), 2.0),
                                      "log Cholesky diagonal of V, the random-coefficient covariance (eq. 5)",
                                      bounds=LOG_SD_BOUNDS, at_bound=RE_SD_AT_BOUND))
            if spec.re_cov == "full" and len(self.re_terms) > 1:
                free.append(ParameterInfo("v_offdiag", (*vd, dims.RE_COEF_OFFDIAG), pm.Normal.dist(0.0, 1.0),
                                          "below-diagonal Cholesky elements of V"))
        if spec.cluster_covariates:
            scale = 2.5 * self._re_scale()[:, None] / self.w_sd[None, :]
            free.append(ParameterInfo("gamma", (dims.RE_COEF, dims.CLUSTER_COVARIATE), pm.Normal.dist(0.0, scale),
                                      "random effects on cluster-level covariates, eq. (5)"))
        free += self.class_logits.fixed_parameters() + self.class_logits.random_parameters()
        free += self._between_parameters()
        self.free = free

    # ---- D hooks (section 6): none here; within_between.WithinBetweenModel adds them
    def _between_parameters(self) -> list[ParameterInfo]:
        return []

    def _between_reported(self) -> list[Reported]:
        return []

    def _between_shares(self, q) -> list[Reported]:
        return []

    def _between_prior(self, q):
        """(J, M) log P(D_j = d) (eq. 26), or None without a between class D."""
        return None

    def _d_terms(self, q, d):
        """Logit shift gamma_.d (K-1,) and random-coefficient mean shift kappa_d (Dc,)
        for between class d (section 6); (None, None) without D."""
        return None, None

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        spec = self.spec
        q = dict(p)
        reported = []
        if self.cont_idx.size:
            q["theta"] = self.normal.theta(p)
            reported.append(Reported("mu", "Intercepts (class means of the outcome, eq. 19)"))
        if self.cat_items:
            q["tau"] = self.thresholds.tau(p)
            reported += self.thresholds.reported()
        if spec.covariates:
            reported.append(Reported("beta", "Y ON X (regression slopes, eq. 19)"))
        if self.cont_idx.size:
            reported.append(Reported("theta", "Residual variances"))
        if spec.random:
            vd = self._v_dims()
            n_batch = len(self.model.coords[vd[0]]) if vd else 0
            q["v_chol"] = self._chol_batch(p["v_log_sd"], p.get("v_offdiag"), len(self.re_terms), n_batch)
            pm.Deterministic("v", q["v_chol"] @ pt.swapaxes(q["v_chol"], -1, -2),
                             dims=(*vd, dims.RE_COEF, dims.RE_COEF_BIS))
            reported.append(Reported("v", "Random-coefficient (co)variances V (eq. 5)", variance=True))
        if spec.cluster_covariates:
            reported.append(Reported("gamma", "Random coefficients ON cluster covariates (eq. 5)"))
        reported += self.class_logits.reported_fixed()
        q["chol"] = self.class_logits.chol(p)
        reported += self.class_logits.reported_random()
        reported += self._between_reported()
        raw = ("v_log", "v_off", "chol_", "log_")
        self.observe({n: v for n, v in q.items() if not n.startswith(raw) and n != "tau_raw"}, self._unit_loglik)
        pm.Deterministic("class_share", self._class_share(self.likelihood_tensors), dims=(dims.CLASS,))
        reported.append(Reported("class_share", "Class proportions"))
        reported += self._between_shares(self.likelihood_tensors)
        self.reported = reported

    @staticmethod
    def _chol_batch(log_sd, offdiag, dim: int, n_batch: int):
        if offdiag is None and dim > 1:  # re_cov="diagonal"
            offdiag = pt.zeros((*([n_batch] if n_batch else []), dim * (dim - 1) // 2))
        if n_batch == 0:
            return chol_from_unconstrained(log_sd, offdiag, dim)
        return pt.stack([chol_from_unconstrained(log_sd[b], None if dim == 1 else offdiag[b], dim)
                         for b in range(n_batch)])

    def _class_logits(self, q, extra=None):
        """Fixed part of the class logits: (N, K-1) within, (J, K-1) between."""
        return self.class_logits.logits(q, self.shared["xc"], extra)

    def _v_chol(self, q, b):
        chol = q.get("v_chol")
        if chol is None or chol.ndim == 2:
            return chol
        return chol[b]

    # ---- cluster-level class (between, or a single class): ll_j(c) per class
    def _class_cluster_ll(self, q):
        """(J, K) log f(y_j | C_j = c) (random effects integrated)."""
        cidx, n_cl = self.data.cluster_idx, self.data.n_clusters
        eta = self._fixed_eta(q)
        if self.path == "direct":
            return segment_sum(self._log_f(q, eta), cidx, n_cl)
        if self.path == "analytic":
            return self._analytic(q, eta)
        cols = []
        for c in range(self.spec.n_classes):
            def person_loglik(u, c=c):
                return self._log_f(q, eta[:, None] + self._random_eta(u))[:, :, c]

            cols.append(integrate_clusters(person_loglik, self.spec.integration, self._v_chol(q, c), cidx,
                                           n_cl).loglik)
        return pt.stack(cols, axis=1)

    def _cluster_class_posterior(self, q):
        """(J, K) log prior and log joint of the cluster's class."""
        ll = self._class_cluster_ll(q)
        log_prior = ClassLogits.log_prior(self._class_logits(q)) if self.spec.n_classes > 1 else pt.zeros((1, 1))
        return log_prior + ll

    # ---- within class (person level), possibly given a between class D (section 6)
    def _within_joint(self, q, d=None):
        """The (N, [Q,] K) log joint of class and outcomes given D_j = d (None: no
        D) as a function of the nodes u (None: no random effects)."""
        gamma_d, kappa_d = self._d_terms(q, d)
        eta = self._fixed_eta(q, kappa_d)
        k = self.spec.n_classes
        logits = self._class_logits(q, gamma_d[None, :] if gamma_d is not None else None) if k > 1 else None
        dc = len(self.re_terms)

        def joint(u):
            if u is None:
                log_f = self._log_f(q, eta)
                return log_f + (ClassLogits.log_prior(logits) if k > 1 else 0.0)
            log_f = self._log_f(q, eta[:, None] + self._random_eta(u[..., :dc])) if dc else \
                self._log_f(q, eta)[:, None]
            if self.alpha_random:
                return log_f + ClassLogits.log_prior(logits[:, None, :] + u[..., dc:])
            return log_f + (ClassLogits.log_prior(logits)[:, None, :] if k > 1 else 0.0)

        return joint

    def _within_integral(self, q, d=None):
        """(joint, integral over the cluster's random effects or None)."""
        joint = self._within_joint(q, d)
        if self.path == "direct":
            return joint, None
        integral = integrate_clusters(lambda u: pt.logsumexp(joint(u), axis=-1), self.spec.integration,
                                      self._joint_chol(q, d), self.data.cluster_idx, self.data.n_clusters)
        return joint, integral

    def _within_ll(self, q, d=None):
        """Per-cluster (or per-person) log-likelihood given D_j = d (None: no D)."""
        joint, integral = self._within_integral(q, d)
        if integral is not None:
            return integral.loglik
        person = pt.logsumexp(joint(None), axis=-1)
        return segment_sum(person, self.data.cluster_idx, self.data.n_clusters) if self.is_two_level else person

    def _joint_chol(self, q, d):
        """Block-diagonal Cholesky factor of (random coefficients, class-logit intercepts)."""
        blocks = []
        if self.spec.random:
            blocks.append(self._v_chol(q, d if d is not None and self.spec.n_between > 1 else 0))
        if self.alpha_random:
            blocks.append(q["chol"])
        return block_diag(*blocks)

    def _unit_loglik(self, q):
        if self.cluster_class:
            if not self.is_two_level:  # single level, one class or direct within
                return pt.logsumexp(self._log_f(q, self._fixed_eta(q)) + (
                    ClassLogits.log_prior(self._class_logits(q)) if self.spec.n_classes > 1 else 0.0), axis=-1)
            return pt.logsumexp(self._cluster_class_posterior(q), axis=-1)
        return self._within_ll(q)

    # ------------------------------------------------------------------ membership
    def _within_membership_d(self, q, d=None):
        """(N, K) P(C_i = c | y_j, D_j = d)."""
        joint, integral = self._within_integral(q, d)
        if integral is None:
            return pt.special.softmax(joint(None), axis=-1)
        cidx = self.data.cluster_idx
        u = integral.nodes[cidx] if self.spec.integration.adaptive else integral.nodes
        p_c = pt.special.softmax(joint(u), axis=-1)  # (N, Q, K)
        w = pt.exp(integral.log_post)[cidx]
        return pt.sum(w[:, :, None] * p_c, axis=1)

    def membership_graphs(self, q):
        """{"C": (N, K)} posterior class probabilities of each person, or (J, K) of
        each cluster for a between-level class."""
        k = self.spec.n_classes
        if self.spec.class_level == "between":
            if k == 1:
                return {"C": pt.ones((self.data.n_clusters, 1))}
            return {"C": pt.special.softmax(self._cluster_class_posterior(q), axis=-1)}
        if k == 1:
            return {"C": pt.ones((self.data.n_persons, 1))}
        return {"C": self._within_membership_d(q)}

    def _class_share(self, q):
        """Model-implied class proportions: mean of P(C = c | predictors), over
        persons (within) or clusters (between), integrating alpha_cj (eq. 4)."""
        return self.class_logits.share(self._class_logits(q), q.get("chol"))

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random start in the style of Mplus: pooled OLS estimates perturbed class
        by class, equal class sizes, moderate random-effect sd (``blocks``' policy)."""
        spec, k = self.spec, self.spec.n_classes
        y, obs, x = self._y_obs
        pn, start = self.cont_idx.size, {}
        xd = np.column_stack([np.ones(len(x)), x])
        slopes = np.zeros((len(self.outcome_names), x.shape[1]))
        resid_var = np.ones(pn)
        for p in range(pn):
            keep = obs[:, p] > 0
            coef, *_ = np.linalg.lstsq(xd[keep], y[keep, p], rcond=None)
            slopes[p] = coef[1:]
            resid_var[p] = max(np.var(y[keep, p] - xd[keep] @ coef), 1e-6 * self.y_sd[p] ** 2)
            if not x.shape[1]:
                slopes[p] = 0.0
        if pn:
            start["mu"] = self.normal.start_mean(rng)
            start["log_theta"] = np.log(resid_var * 0.7)
        if self.cat_items:
            start.update(self.thresholds.start(rng))
        if spec.covariates:
            spread = self.outcome_scale[:, None] / self.x_sd[None, :]
            start["beta"] = slopes[None] + rng.uniform(-0.5, 0.5, size=(k, *slopes.shape)) * spread[None]
        if spec.random:
            lead = tuple(len(self.model.coords[n]) for n in self._v_dims())
            start["v_log_sd"] = np.broadcast_to(np.log(0.3 * self._re_scale()), (*lead, len(self.re_terms))).copy()
            if "v_offdiag" in self.free_names:
                start["v_offdiag"] = np.zeros((*lead, len(self.model.coords[dims.RE_COEF_OFFDIAG])))
        if spec.cluster_covariates:
            start["gamma"] = np.zeros((len(self.re_terms), len(spec.cluster_covariates)))
        start.update(self.class_logits.start_fixed(rng))
        start.update(self.class_logits.start_random())
        return start

    def permute_classes(self, values, perms):
        """New class c is old class perm[c]; reference-coded logits re-expressed."""
        perm = self._perm_dict(perms)["C"]
        out = dict(values)
        for name, axis in (("mu", -2), ("beta", -3)):
            if name in values:
                out[name] = np.take(values[name], perm, axis=axis)
        if self.thresholds is not None:
            out = self.thresholds.permute(out, perm)
        if self.spec.class_specific_variance and self.spec.n_between == 1:  # V_c follows its class
            for name, axis in (("v_log_sd", -2), ("v_offdiag", -2)):
                if name in values:
                    out[name] = np.take(values[name], perm, axis=axis)
        return self.class_logits.permute(out, perm, extra=("gamma_cd",))

    def class_signature(self, values):
        """Per class: standardised intercepts and slopes, threshold probabilities."""
        feats = []
        lead = None
        if "mu" in values:
            feats.append(self.normal.signature(values))
            lead = values["mu"].shape[:-1]
        if "beta" in values:
            b = values["beta"] * self.x_sd / self.outcome_scale[:, None]
            feats.append(b.reshape(*b.shape[:-2], -1))
        if "tau" in values:
            feats.append(link_cdf(values["tau"], self.spec.link))
        if not feats:
            return {"C": np.zeros((*(lead or ()), self.spec.n_classes, 1))}
        return {"C": np.concatenate(feats, axis=-1)}


def example(two_level: bool = False) -> RegressionModel:
    """A tiny two-class regression of a continuous score on x (48 persons; with
    ``two_level`` a within-between class with a random intercept, 8 clusters)."""
    df = example_data()
    two = {"cluster": "cluster", "class_level": "within-between", "random": ["intercept"]}
    return mixture_regression(df, "score", ["x"], 2, **(two if two_level else {}))
