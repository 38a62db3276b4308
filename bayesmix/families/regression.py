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
``bayesmix.within_between`` on the same class (``n_between`` > 1).

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

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy import stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.marginal import (
    chol_from_unconstrained,
    class_log_prior,
    class_proportions,
    integrate_clusters,
    segment_sum,
)
from bayesmix.core.normal_marginal import cluster_normal_loglik
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.data.levels import cluster_level_values
from bayesmix.exceptions import DataError, SpecificationError
from bayesmix.families import _classes
from bayesmix.families.base import OBSERVED, FamilyModel, ParameterInfo

LEVELS = ("within", "between", "within-between")
RE_COV = ("full", "diagonal")
TAU_BOUND = 15.0
LOG_SD_BOUNDS = (-8.0, 6.0)  # sd in [3e-4, 403]: a variance at 0 or "huge" (Table 4) is held at a bound


@dataclass(frozen=True)
class RegressionSpec:
    """Specification of a two-level mixture regression (frozen; stored with every fit)."""

    n_classes: int
    class_level: str = "within"
    link: str = "logit"
    covariates: tuple = ()
    random: tuple = ()
    cluster_covariates: tuple = ()
    class_covariates: tuple = ()
    re_cov: str = "full"
    class_specific_variance: bool = False
    integration: Integration = field(default_factory=Integration)
    n_between: int = 1
    prior_names: tuple = ()


def _check_n(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecificationError(f"{name}: got {value!r}; give an integer >= 1 (1 is the single-class baseline).")
    return int(value)


def _names(arg, argname):
    if arg is None:
        return ()
    if isinstance(arg, str):
        return (arg,)
    try:
        return tuple(arg)
    except TypeError:
        raise SpecificationError(f"{argname}: got {arg!r}; give a column name or a list of column names.") from None


def _outcome_words(message: str) -> str:
    message = message.replace("`items`", "`outcomes`").replace("item_types", "outcome_types")
    return "outcomes:" + message[len("items:"):] if message.startswith("items:") else message


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
    return _build(data, outcomes, covariates, n_classes, 1, cluster=cluster, class_level=class_level,
                  random=random, cluster_covariates=cluster_covariates, class_covariates=class_covariates,
                  outcome_types=outcome_types, link=link, re_cov=re_cov,
                  class_specific_variance=class_specific_variance, integration=integration, priors=priors)


def _build(data, outcomes, covariates, n_classes, n_between, *, cluster, class_level, random, cluster_covariates,
           class_covariates, outcome_types, link, re_cov, class_specific_variance, integration, priors,
           between_covariates=()):
    n_classes = _check_n("n_classes", n_classes)
    n_between = _check_n("n_between", n_between)
    core_items.check_link(link)
    integration = as_integration(integration)
    if class_level not in LEVELS:
        raise SpecificationError(f"class_level: got {class_level!r}; valid choices are "
                                 + ", ".join(repr(v) for v in LEVELS) + ".")
    if re_cov not in RE_COV:
        raise SpecificationError(f"re_cov: got {re_cov!r}; valid choices are 'full', 'diagonal'.")
    outcomes, covariates = _names(outcomes, "outcomes"), _names(covariates, "covariates")
    random, cluster_covariates = _names(random, "random"), _names(cluster_covariates, "cluster_covariates")
    class_covariates = _names(class_covariates, "class_covariates")
    between_covariates = _names(between_covariates, "between_covariates")
    needs_cluster = [a for a, v in (("random", random), ("cluster_covariates", cluster_covariates),
                                    ("n_between", n_between > 1), (f"class_level={class_level!r}",
                                                                   class_level != "within")) if v]
    if cluster is None and needs_cluster:
        raise SpecificationError(f"{needs_cluster[0]}: needs a two-level model; give cluster='<column>'.")
    bad = [t for t in random if t != "intercept" and t not in covariates]
    if bad:
        raise SpecificationError(f"random: got {bad[0]!r}; valid terms are 'intercept' and the covariates "
                                 f"{list(covariates)} (a random slope needs its covariate in `covariates`).")
    if len(set(random)) != len(random):
        raise SpecificationError(f"random: got duplicates in {list(random)}; list each term once.")
    if cluster_covariates and not random:
        raise SpecificationError("cluster_covariates: they predict the random effects (eq. 5), but random is "
                                 "empty; give random=['intercept', ...] or move them to class_covariates.")
    lists = {"covariates": covariates, "cluster_covariates": cluster_covariates,
             "class_covariates": class_covariates, "between_covariates": between_covariates}
    for argname, names in lists.items():
        if len(set(names)) != len(names):
            dup = [n for n in names if names.count(n) > 1][0]
            raise SpecificationError(f"{argname}: got {dup!r} more than once; list each column once.")
    overlap = [n for n in cluster_covariates if n in covariates]
    if overlap:
        raise SpecificationError(
            f"cluster_covariates: column {overlap[0]!r} is also in `covariates`; a cluster-level covariate on a "
            "random intercept (eq. 5) and a within-level slope on the same column cannot be told apart. Fix: "
            "keep it in one list (or centre the within-level version on its cluster mean and rename it).")
    if class_covariates and n_classes == 1:
        raise SpecificationError(f"class_covariates: got {list(class_covariates)} with n_classes=1; a single class "
                                 "has no class logits to predict. Fix: drop them or use n_classes >= 2.")
    if class_specific_variance and not random:
        raise SpecificationError("class_specific_variance: got True without random effects; give random=["
                                 "'intercept', ...] or drop class_specific_variance.")
    if n_between > 1 and n_classes == 1 and not random:
        raise SpecificationError("n_between: a between class D with n_classes=1 and no random effects does not "
                                 "enter the likelihood (D acts through gamma_cd on C and through the random-"
                                 "effect means, eq. 24-25). Fix: n_classes >= 2 or random=['intercept', ...].")
    if class_specific_variance and class_level != "between" and n_between == 1:
        raise SpecificationError(f"class_specific_variance: got True with class_level={class_level!r}; class-"
                                 "specific random-effect variances need a between-level class (eq. 18).")
    if class_level == "within-between" and n_classes < 2:
        raise SpecificationError("class_level: 'within-between' needs n_classes >= 2 (the random intercept sits "
                                 "in the class logits).")
    all_cov = list(dict.fromkeys([*covariates, *cluster_covariates, *class_covariates, *between_covariates]))
    if isinstance(data, PreparedData):
        prepared = data
    else:
        try:
            prepared = prepare_wide(data, list(outcomes), item_types=outcome_types, cluster=cluster,
                                    covariates=all_cov)
        except DataError as err:  # the data layer speaks of items; this factory's argument is `outcomes`
            raise DataError(_outcome_words(str(err))) from None
    spec = RegressionSpec(n_classes=n_classes, class_level=class_level, link=link, covariates=covariates,
                          random=random, cluster_covariates=cluster_covariates, class_covariates=class_covariates,
                          re_cov=re_cov, class_specific_variance=bool(class_specific_variance),
                          integration=integration, n_between=n_between, prior_names=tuple(sorted(priors or {})))
    model = RegressionModel.build(prepared, spec, priors, between_covariates=between_covariates)
    model._prepare_args = dict(items=list(outcomes), item_types=outcome_types, cluster=cluster,
                               covariates=all_cov)
    return model


class RegressionModel(FamilyModel):
    """A built mixture regression: ``.model`` is the plain ``pm.Model``; ``.path``
    says how the random effects are integrated."""

    between_covariates: tuple = ()

    @classmethod
    def build(cls, data: PreparedData, spec: RegressionSpec, priors, between_covariates=()):
        family = "within_between" if spec.n_between > 1 else "mixture_regression"
        self = cls(model=pm.Model(), data=data, spec=spec, family=family)
        self.between_covariates = tuple(between_covariates)
        arrays = self._arrays(data)
        self.shared = {k: pytensor.shared(v, name=k) for k, v in arrays.items()}
        self._declare_parameters()
        self.register(priors)
        return self

    # ------------------------------------------------------------------ properties
    @property
    def class_level(self) -> str:
        """"within", "between", "within-between" (Table 4) or "within+between"
        (a within class C and a between class D, section 6)."""
        return "within+between" if self.spec.n_between > 1 else self.spec.class_level

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

    def _build_extra(self) -> dict:
        return {"between_covariates": self.between_covariates}

    @property
    def path(self) -> str:
        if not self.spec.random and not self.alpha_random:
            return "direct"
        if self.spec.random and not self.cat_idx.size and self.cluster_class:
            return "analytic"
        return "quadrature"

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
        fix = ("aggregate it to the cluster first, e.g. df.groupby({cluster!r})[{name!r}].transform('mean'), "
               "or use it as a within-level covariate.")
        if d.is_two_level:
            out["w"] = cluster_level_values(d, spec.cluster_covariates, "cluster_covariates", fix)
            out["wb"] = cluster_level_values(d, self.between_covariates, "between_covariates", fix)
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
        # categorical outcomes: one-hot selectors of the observed category's thresholds
        thr_item, thr_k = [], []
        for p, it in enumerate(self.cat_items):
            thr_item += [p] * (it.n_categories - 1)
            thr_k += list(range(it.n_categories - 1))
        self.thr_item, self.thr_k = np.array(thr_item, dtype=int), np.array(thr_k, dtype=int)
        n_thr = len(thr_item)
        pc = len(self.cat_items)
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
        out.update(sel_up=sel_up, sel_lo=sel_lo, has_up=has_up, has_lo=has_lo)
        self._check_constant(x, out)
        self._moments(y, obs, x, out["w"])
        return out

    def _check_constant(self, x, out):
        """A predictor without variation is confounded with an intercept (and would
        give a prior scale of 1e12): refuse it before compiling."""
        spec = self.spec
        for names, values, level in ((spec.covariates, x, "persons"),
                                     (spec.cluster_covariates, out["w"], "clusters"),
                                     (self.between_covariates, out["wb"], "clusters"),
                                     (spec.class_covariates, out["xc"],
                                      "clusters" if spec.class_level == "between" else "persons")):
            for q, name in enumerate(names):
                if values.shape[0] > 1 and np.ptp(values[:, q]) == 0:
                    raise DataError(f"{name}: the column is constant ({values[0, q]:g}) over all {level}; it "
                                    "cannot be separated from the intercept. Fix: drop it from the model.")

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
        self._nutpie_cache = None  # nutpie compiled the old data in

    # ------------------------------------------------------------------ parameters
    def _coords(self):
        d, spec, k = self.data, self.spec, self.spec.n_classes
        persons = list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons))
        coords = {dims.CLASS: list(range(1, k + 1)), dims.PERSON: persons, dims.OUTCOME: self.outcome_names}
        if self.cont_idx.size:
            coords[dims.CONTINUOUS_OUTCOME] = self.outcome_names[: self.cont_idx.size]
        if self.cat_items:
            coords[dims.THRESHOLD] = [f"{it.name}${kk + 1}" for it in self.cat_items
                                      for kk in range(it.n_categories - 1)]
        if spec.covariates:
            coords[dims.COVARIATE] = list(spec.covariates)
        if d.is_two_level:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        if k > 1:
            coords[dims.CLASS_LOGIT] = list(range(1, k))
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
        if self.alpha_random:
            coords[dims.RE] = [f"alpha_{c}" for c in range(1, k)]
            coords[dims.RE_BIS] = coords[dims.RE]
            if k > 2:
                r, c = np.tril_indices(k - 1, -1)
                coords[dims.RE_OFFDIAG] = [f"L[{i + 1},{j + 1}]" for i, j in zip(r, c)]
        if spec.n_between > 1:
            coords[dims.CLASS_BETWEEN] = list(range(1, spec.n_between + 1))
            coords[dims.CLASS_BETWEEN_LOGIT] = list(range(1, spec.n_between))
            if self.between_covariates:
                coords["between_covariate"] = list(self.between_covariates)
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
        spec, k = self.spec, self.spec.n_classes
        sd_y = self.outcome_scale
        free = []
        if self.cont_idx.size:
            free.append(ParameterInfo("mu", (dims.CLASS, dims.CONTINUOUS_OUTCOME),
                                      pm.Normal.dist(self.y_mean, 3 * self.y_sd), "class-specific intercepts, eq. (19)"))
        if self.cat_items:
            ordinal = max(it.n_categories for it in self.cat_items) > 2
            free.append(ParameterInfo("tau_raw" if ordinal else "tau", (dims.CLASS, dims.THRESHOLD),
                                      pm.Normal.dist(0.0, 5.0 if spec.link == "logit" else 3.0), "thresholds, eq. (1)"))
        if spec.covariates:
            scale = 2.5 * sd_y[:, None] / self.x_sd[None, :]
            free.append(ParameterInfo("beta", (dims.CLASS, dims.OUTCOME, dims.COVARIATE),
                                      pm.Normal.dist(0.0, scale), "class-specific slopes, eq. (19)"))
        if self.cont_idx.size:
            free.append(ParameterInfo("log_theta", (dims.CONTINUOUS_OUTCOME,),
                                      pm.Normal.dist(np.log(self.y_sd**2), 2.0), "log residual variances"))
        if spec.random:
            vd = self._v_dims()
            free.append(ParameterInfo("v_log_sd", (*vd, dims.RE_COEF),
                                      pm.Normal.dist(np.log(0.5 * self._re_scale()), 2.0),
                                      "log Cholesky diagonal of V, the random-coefficient covariance (eq. 5)"))
            if spec.re_cov == "full" and len(self.re_terms) > 1:
                free.append(ParameterInfo("v_offdiag", (*vd, dims.RE_COEF_OFFDIAG), pm.Normal.dist(0.0, 1.0),
                                          "below-diagonal Cholesky elements of V"))
        if spec.cluster_covariates:
            scale = 2.5 * self._re_scale()[:, None] / self.w_sd[None, :]
            free.append(ParameterInfo("gamma", (dims.RE_COEF, dims.CLUSTER_COVARIATE), pm.Normal.dist(0.0, scale),
                                      "random effects on cluster-level covariates, eq. (5)"))
        if k > 1:
            free.append(ParameterInfo("alpha", (dims.CLASS_LOGIT,), pm.Normal.dist(0.0, 3.0),
                                      "class-logit intercepts, eq. (4)/(17)"))
            if spec.class_covariates:
                free.append(ParameterInfo("beta_class", (dims.CLASS_LOGIT, dims.CLASS_COVARIATE),
                                          pm.Normal.dist(0.0, 2.5), "class-logit slopes, eq. (4)/(17)"))
        if self.alpha_random:
            free.append(ParameterInfo("chol_log_diag", (dims.RE,), pm.Normal.dist(0.0, 1.5),
                                      "log Cholesky diagonal of Var(alpha_cj)"))
            if k > 2:
                free.append(ParameterInfo("chol_offdiag", (dims.RE_OFFDIAG,), pm.Normal.dist(0.0, 1.0),
                                          "below-diagonal Cholesky elements of Var(alpha_cj)"))
        free += self._between_parameters()
        self.free = free

    def _between_parameters(self) -> list:
        """The between class D_j of section 6 (``within_between``); none here."""
        if self.spec.n_between == 1:
            return []
        from bayesmix.families.within_between import between_parameters

        return between_parameters(self)

    def _re_scale(self) -> np.ndarray:
        """Scale of each random coefficient: outcome sd (intercepts) or sd_y / sd_x (slopes)."""
        cov = list(self.spec.covariates)
        return np.array([self.outcome_scale[p] / (1.0 if t == "intercept" else self.x_sd[cov.index(t)])
                         for p, t in self.re_terms])

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        spec, k = self.spec, self.spec.n_classes
        q = dict(p)
        reported = []
        if self.cont_idx.size:
            q["theta"] = pm.Deterministic("theta", pt.exp(p["log_theta"]), dims=(dims.CONTINUOUS_OUTCOME,))
            reported += ["mu"]
        if self.cat_items:
            if "tau_raw" in p:
                first = self.thr_k == 0
                steps = pt.where(first[None, :], p["tau_raw"], pt.exp(p["tau_raw"]))
                cs = pt.cumsum(steps, axis=-1)
                cs0 = pt.concatenate([pt.zeros((k, 1)), cs], axis=-1)
                start = np.searchsorted(self.thr_item, self.thr_item, side="left")
                q["tau"] = pm.Deterministic("tau", cs - cs0[:, start], dims=(dims.CLASS, dims.THRESHOLD))
            reported.append("tau")
        if spec.covariates:
            reported.append("beta")
        if self.cont_idx.size:
            reported.append("theta")
        if spec.random:
            vd = self._v_dims()
            n_batch = len(self.model.coords[vd[0]]) if vd else 0
            q["v_chol"] = self._chol_batch(p["v_log_sd"], p.get("v_offdiag"), len(self.re_terms), n_batch)
            pm.Deterministic("v", q["v_chol"] @ pt.swapaxes(q["v_chol"], -1, -2),
                             dims=(*vd, dims.RE_COEF, dims.RE_COEF_BIS))
            reported.append("v")
        if spec.cluster_covariates:
            reported.append("gamma")
        if k > 1:
            reported.append("alpha")
            if spec.class_covariates:
                reported.append("beta_class")
        if self.alpha_random:
            q["chol"] = chol_from_unconstrained(p["chol_log_diag"], p.get("chol_offdiag"), k - 1)
            pm.Deterministic("psi", q["chol"] @ q["chol"].T, dims=(dims.RE, dims.RE_BIS))
            reported.append("psi")
        reported += self._between_reported()

        names = [n for n, v in q.items() if v is not None and not n.startswith(("v_log", "v_off", "chol_", "log_"))
                 and n != "tau_raw"]
        self.likelihood_tensors = {n: q[n] for n in names}
        tensors = [pt.as_tensor(q[n]) for n in names]

        def logp(value, *params):
            # CustomDist adds a leading batch axis of length 1 to each parameter
            return self._unit_loglik({n: t[0] for n, t in zip(names, params)})

        signature = ",".join("(" + ",".join(f"d{i}_{j}" for j in range(t.ndim)) + ")"
                             for i, t in enumerate(tensors)) + "->()"
        n_units = self.data.n_clusters if self.is_two_level else self.data.n_persons
        pm.CustomDist(OBSERVED, *tensors, logp=logp, observed=np.arange(n_units), signature=signature,
                      dims=self.unit_dim)
        pm.Deterministic("class_share", self._class_share(self.likelihood_tensors), dims=(dims.CLASS,))
        reported.append("class_share")
        reported += self._between_shares(self.likelihood_tensors)
        self.reported = reported

    def _between_reported(self) -> list:
        if self.spec.n_between == 1:
            return []
        from bayesmix.families.within_between import between_reported

        return between_reported(self)

    def _between_shares(self, q) -> list:
        if self.spec.n_between == 1:
            return []
        from bayesmix.families.within_between import between_shares

        return between_shares(self, q)

    @staticmethod
    def _chol_batch(log_sd, offdiag, dim: int, n_batch: int):
        if offdiag is None and dim > 1:  # re_cov="diagonal"
            offdiag = pt.zeros((*([n_batch] if n_batch else []), dim * (dim - 1) // 2))
        if n_batch == 0:
            return chol_from_unconstrained(log_sd, offdiag, dim)
        return pt.stack([chol_from_unconstrained(log_sd[b], None if dim == 1 else offdiag[b], dim)
                         for b in range(n_batch)])

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

    def _class_logits(self, q, extra=None):
        """Fixed part of the class logits: (N, K-1) within, (J, K-1) between."""
        logits = q["alpha"][None, :]
        if self.spec.class_covariates:
            logits = logits + pt.dot(self.shared["xc"], q["beta_class"].T)
        if extra is not None:
            logits = logits + extra
        return logits

    def _between_prior(self, q):
        """(J, M) log P(D_j = d) (eq. 26), or None without a between class D."""
        if self.spec.n_between == 1:
            return None
        from bayesmix.families.within_between import between_log_prior

        return between_log_prior(self, q)

    def _d_terms(self, q, d):
        """Logit shift gamma_.d (K-1,) and random-coefficient mean shift kappa_d (Dc,)
        for between class d (section 6); (None, None) without D."""
        if self.spec.n_between == 1:
            return None, None
        from bayesmix.families.within_between import d_terms

        return d_terms(self, q, d)

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

    def _analytic(self, q, eta):
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

    def _cluster_class_posterior(self, q):
        """(J, K) log prior and log joint of the cluster's class."""
        ll = self._class_cluster_ll(q)
        k = self.spec.n_classes
        log_prior = class_log_prior(self._class_logits(q)) if k > 1 else pt.zeros((1, 1))
        return log_prior + ll

    # ---- within class (person level), possibly with a between class D (section 6)
    def _within_ll(self, q, d=None, want_integral=False):
        """Per-cluster (or per-person) log-likelihood given D_j = d (None: no D)."""
        gamma_d, kappa_d = self._d_terms(q, d)
        eta = self._fixed_eta(q, kappa_d)
        k = self.spec.n_classes
        logits = self._class_logits(q, gamma_d[None, :] if gamma_d is not None else None) if k > 1 else None
        dc = len(self.re_terms)

        def joint(u):
            if u is None:
                log_f = self._log_f(q, eta)
                return log_f + (class_log_prior(logits) if k > 1 else 0.0)
            log_f = self._log_f(q, eta[:, None] + self._random_eta(u[..., :dc])) if dc else \
                self._log_f(q, eta)[:, None]
            if self.alpha_random:
                return log_f + class_log_prior(logits[:, None, :] + u[..., dc:])
            return log_f + (class_log_prior(logits)[:, None, :] if k > 1 else 0.0)

        if self.path == "direct":
            person = pt.logsumexp(joint(None), axis=-1)
            if want_integral:
                return joint, None
            return segment_sum(person, self.data.cluster_idx, self.data.n_clusters) if self.is_two_level else person
        chol = self._joint_chol(q, d)
        integral = integrate_clusters(lambda u: pt.logsumexp(joint(u), axis=-1), self.spec.integration, chol,
                                      self.data.cluster_idx, self.data.n_clusters)
        return (joint, integral) if want_integral else integral.loglik

    def _joint_chol(self, q, d):
        """Block-diagonal Cholesky factor of (random coefficients, class-logit intercepts)."""
        blocks = []
        if self.spec.random:
            blocks.append(self._v_chol(q, d if d is not None and self.spec.n_between > 1 else 0))
        if self.alpha_random:
            blocks.append(q["chol"])
        if len(blocks) == 1:
            return blocks[0]
        sizes = [int(b.type.shape[0]) for b in blocks]
        out = pt.zeros((sum(sizes), sum(sizes)))
        i = 0
        for b, n in zip(blocks, sizes):
            out = pt.set_subtensor(out[i: i + n, i: i + n], b)
            i += n
        return out

    def _unit_loglik(self, q):
        if self.cluster_class and self.spec.n_between == 1:
            if not self.is_two_level:  # single level, one class or direct within
                return pt.logsumexp(self._log_f(q, self._fixed_eta(q)) + (
                    class_log_prior(self._class_logits(q)) if self.spec.n_classes > 1 else 0.0), axis=-1)
            return pt.logsumexp(self._cluster_class_posterior(q), axis=-1)
        between = self._between_prior(q)
        if between is None:
            return self._within_ll(q)
        per_d = pt.stack([self._within_ll(q, d) for d in range(self.spec.n_between)], axis=1)  # (J, M)
        return pt.logsumexp(between + per_d, axis=-1)

    # ------------------------------------------------------------------ membership
    def _within_membership_d(self, q, d=None):
        """(N, K) P(C_i = c | y_j, D_j = d)."""
        joint, integral = self._within_ll(q, d, want_integral=True)
        if integral is None:
            return pt.special.softmax(joint(None), axis=-1)
        cidx = self.data.cluster_idx
        u = integral.nodes[cidx] if self.spec.integration.adaptive else integral.nodes
        p_c = pt.special.softmax(joint(u), axis=-1)  # (N, Q, K)
        w = pt.exp(integral.log_post)[cidx]
        return pt.sum(w[:, :, None] * p_c, axis=1)

    def cluster_membership_graph(self, q):
        """(J, K) posterior class probabilities per cluster: of C_j (between) or of
        D_j (within_between)."""
        if self.spec.n_between > 1:
            per_d = pt.stack([self._within_ll(q, d) for d in range(self.spec.n_between)], axis=1)
            return pt.special.softmax(self._between_prior(q) + per_d, axis=-1)
        if self.spec.class_level != "between":
            raise SpecificationError("cluster_membership: this model has no between-level class; use "
                                     "MLResult.membership (per person).")
        return pt.special.softmax(self._cluster_class_posterior(q), axis=-1)

    def membership_graph(self, q):
        """(N, K) posterior class probabilities of each person (a between class:
        the cluster's)."""
        if self.spec.n_classes == 1:
            return pt.ones((self.data.n_persons, 1))
        if self.spec.class_level == "between":
            return self.cluster_membership_graph(q)[self.data.cluster_idx]
        if self.spec.n_between == 1:
            return self._within_membership_d(q)
        post_d = self.cluster_membership_graph(q)[self.data.cluster_idx]  # (N, M)
        return sum(post_d[:, d: d + 1] * self._within_membership_d(q, d) for d in range(self.spec.n_between))

    def _class_share(self, q):
        """Model-implied class proportions: mean of P(C = c | predictors), over
        persons (within) or clusters (between), integrating alpha_cj (eq. 4)."""
        k = self.spec.n_classes
        if k == 1:
            return pt.ones((1,))
        if self.spec.n_between > 1:
            from bayesmix.families.within_between import within_share

            return within_share(self, q)
        if not self.alpha_random:
            return class_proportions(self._class_logits(q))
        # a fine fixed grid of its own: a cheap (persons x nodes) sum, accurate even
        # when Var(alpha) is huge (the class probability is then a near step in
        # alpha); (N x Q x K) stays bounded for K > 3 (41^(K-1) would not fit)
        integ = (Integration(rule="trapezoid", n_points=401 if k == 2 else 41, bound=8.0) if k <= 3
                 else Integration(rule="gauss_hermite", n_points=7))
        return class_proportions(self._class_logits(q), q["chol"], integ)

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random start in the style of Mplus: pooled OLS estimates perturbed class
        by class, equal class sizes, moderate random-effect sd."""
        spec, k = self.spec, self.spec.n_classes
        y, obs, x = self._y_obs
        pn, pt_ = self.cont_idx.size, {}
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
            pt_["mu"] = self.y_mean[None, :] + rng.uniform(-1.0, 1.0, size=(k, pn)) * self.y_sd[None, :]
            pt_["log_theta"] = np.log(resid_var * 0.7)
        if self.cat_items:
            ppf = stats.logistic.ppf if spec.link == "logit" else stats.norm.ppf
            tau = np.empty((k, len(self.thr_k)))
            for p, it in enumerate(self.cat_items):
                col = self.cat_idx[p]
                seen = self.data.observed[:, col]
                counts = np.bincount(self.data.y[seen, col].astype(int), minlength=it.n_categories) + 0.5
                base = ppf(np.cumsum(counts)[:-1] / counts.sum())
                for c in range(k):
                    tau[c, self.thr_item == p] = np.sort(base + rng.uniform(-1.5, 1.5, size=base.size))
            if "tau_raw" in self.free_names:
                raw = tau.copy()
                later = self.thr_k > 0
                raw[:, later] = np.log(np.maximum(np.diff(tau, axis=1)[:, later[1:]], 1e-3))
                pt_["tau_raw"] = raw
            else:
                pt_["tau"] = tau
        if spec.covariates:
            spread = self.outcome_scale[:, None] / self.x_sd[None, :]
            pt_["beta"] = slopes[None] + rng.uniform(-0.5, 0.5, size=(k, *slopes.shape)) * spread[None]
        if spec.random:
            vd = self._v_dims()
            lead = tuple(len(self.model.coords[n]) for n in vd)
            pt_["v_log_sd"] = np.broadcast_to(np.log(0.3 * self._re_scale()), (*lead, len(self.re_terms))).copy()
            if "v_offdiag" in self.free_names:
                pt_["v_offdiag"] = np.zeros((*lead, len(self.model.coords[dims.RE_COEF_OFFDIAG])))
        if spec.cluster_covariates:
            pt_["gamma"] = np.zeros((len(self.re_terms), len(spec.cluster_covariates)))
        if k > 1:
            pt_["alpha"] = rng.normal(0.0, 0.1, size=k - 1)
            if spec.class_covariates:
                pt_["beta_class"] = np.zeros((k - 1, len(spec.class_covariates)))
        if self.alpha_random:
            pt_["chol_log_diag"] = np.zeros(k - 1)
            if k > 2:
                pt_["chol_offdiag"] = np.zeros((k - 1) * (k - 2) // 2)
        if spec.n_between > 1:
            from bayesmix.families.within_between import between_start

            pt_.update(between_start(self, rng))
        return pt_

    def bounds(self, packing):
        """Thresholds in [-15, 15] (as ``lca``); log standard deviations of random
        effects in [-8, 6]: a variance estimated at 0 (Table 2, v = 0) or running
        to infinity (Model 6 on between-class data, Table 4 "huge") is held at the
        bound and reported as fixed, as Mplus does, instead of drifting forever."""
        low, high = super().bounds(packing)
        for name, lo, hi in (("tau", -TAU_BOUND, TAU_BOUND), ("tau_raw", -TAU_BOUND, TAU_BOUND),
                             ("v_log_sd", *LOG_SD_BOUNDS), ("chol_log_diag", *LOG_SD_BOUNDS)):
            if name in packing.names:
                i = packing.names.index(name)
                start = sum(packing.sizes[:i])
                low[start: start + packing.sizes[i]] = lo
                high[start: start + packing.sizes[i]] = hi
                if name == "tau_raw":
                    later = np.tile(self.thr_k > 0, self.spec.n_classes)
                    sl = slice(start, start + packing.sizes[i])
                    high[sl] = np.where(later, 3.5, TAU_BOUND)
        return low, high

    def permute_classes(self, values, perm):
        """New class c is old class perm[c]; reference-coded logits re-expressed."""
        perm = np.asarray(perm)
        out = dict(values)
        for name, axis in (("mu", -2), ("tau", -2), ("tau_raw", -2), ("beta", -3)):
            if name in values:
                out[name] = np.take(values[name], perm, axis=axis)
        if self.spec.class_specific_variance and self.spec.n_between == 1:  # V_c follows its class
            for name, axis in (("v_log_sd", -2), ("v_offdiag", -2)):
                if name in values:
                    out[name] = np.take(values[name], perm, axis=axis)
        return _classes.permute_logits(out, perm, names=("alpha", "beta_class"), extra=("gamma_cd",))

    signature_names = ("mu", "beta", "tau")
    item_noun = "outcomes"
    section_titles = {
        "mu": "Intercepts (class means of the outcome, eq. 19)",
        "beta": "Y ON X (regression slopes, eq. 19)",
        "theta": "Residual variances",
        "v": "Random-coefficient (co)variances V (eq. 5)",
        "gamma": "Random coefficients ON cluster covariates (eq. 5)",
        "beta_class": "C ON (class-logit slopes, eq. 4 / 17)",
        "alpha": "Means (class logits, eq. 4 / 17)",
        "alpha_between": "Means (logits of the between class D, eq. 26)",
        "beta_between": "D ON (eq. 26)",
        "gamma_cd": "C ON D (eq. 24)",
        "mu_between": "Random-coefficient means by D (eq. 25)",
        "class_between_share": "Between-class (D) proportions",
    }

    def describe_integration(self) -> str:
        """Which likelihood path this model takes (see the module docstring)."""
        if self.path == "direct":
            return "none (no random effects: exact sums over classes)"
        if self.path == "analytic":
            return "analytic normal marginal over the random coefficients (exact; no quadrature)"
        return self.spec.integration.describe(self.integration_dim)

    def class_signature(self, values):
        """Per class: standardised intercepts and slopes, threshold probabilities."""
        feats = []
        lead = None
        if "mu" in values:
            feats.append((values["mu"] - self.y_mean) / self.y_sd)
            lead = values["mu"].shape[:-1]
        if "beta" in values:
            b = values["beta"] * self.x_sd / self.outcome_scale[:, None]
            feats.append(b.reshape(*b.shape[:-2], -1))
        if "tau" in values:
            feats.append(stats.logistic.cdf(values["tau"]) if self.spec.link == "logit" else stats.norm.cdf(values["tau"]))
        if not feats:
            return np.zeros((*(lead or ()), self.spec.n_classes, 1))
        return np.concatenate(feats, axis=-1)

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator):
        """Replicate the outcomes for the analysed persons at natural parameters
        (same covariates and clusters); returns (y (N, P) in the data's column
        order, class (N,) 0-based)."""
        from bayesmix.simulate import draw_regression_outcomes

        return draw_regression_outcomes(self, natural, rng)

