"""Factor mixture analysis (FMA, mixture IRT), single level (paper section 8, eq. 36-37).

A person-level class C_j (eq. 37) and a person-level factor eta_j; given both,
the items are independent:

    L_j = sum_c P(C_j = c | x_j) ∫ prod_i P(y_ij | C_j = c, eta) dN(eta; 0, psi_c).

Class model, eq. (37): P(C_j = c | x_j) = softmax_c(alpha_c + beta_c x_j), last
class the reference (alpha_K = beta_K = 0); covariates are optional, as in the LCA.

Items (binary or ordinal), threshold form with the project's sign convention
(``core.items``, Mplus'): y*_ij = lambda_ic eta_j + e_ij, e logistic (logit) or
standard normal (probit), y = k iff tau_ick < y* < tau_ic(k+1). For a binary item

    P(y_ij = 1 | C_j = c, eta_j) = F(lambda_ic eta_j - tau_ic),

which is eq. (36), Phi(tau_ic + lambda_ic eta_j), with the paper's tau equal to
-tau here (loadings unchanged). With lambda = 0 this is the LCA's
P(y = 1 | c) = F(-tau_c), and every LCA threshold keeps its meaning.

* ``loadings="invariant"`` (default; the restricted FMA of Table 6): lambda_ic = lambda_i;
  ``loadings="class"``: lambda_ic free per class.
* ``factor_variance="invariant"`` (default): eta_j ~ N(0, 1) in every class;
  ``factor_variance="class"``: Var(eta | C = c) = psi_c free for c < K and psi_K = 1
  (the reference class sets the scale of eta, as alpha_K = 0 sets the logits'),
  with free log standard deviations. With invariant loadings this is Table 6's
  56th parameter (36 thresholds + 18 loadings + 1 class logit + 1 variance for 18
  binary items, K = 2); with class-specific loadings psi_c is confounded with
  lambda_.c and is refused.
* K = 1 is the two-parameter (2PL / normal-ogive) IRT model.
* ``cluster=`` (K = 2): persons i in clusters j, with a cluster random intercept
  b_j ~ N(0, psi_between) in the class logit (eq. 20 on eq. 37); the person integral
  over eta_ij is nested inside the cluster integral over b_j (``fma_levels``).

Identification of the sign: eta -> -eta with lambda -> -lambda leaves the
likelihood unchanged (with class-specific loadings, separately in each class,
because eta | C = c is symmetric). No constraint is imposed: random starts and
``start_from_lca`` have positive loadings, and ML stays on that side when the items
are positively related; chains start at ML and stay in its mode. The class
signature used to relabel uses only sign-free features (P(y = 0 | c, eta = 0) and
|lambda_ic| sd_c), so a flipped sign never makes the relabelling swap classes.

The integral: eta = sd_c z with z ~ N(0, 1) in every class, so the class-specific
variance scales the loadings, lambda_ic sd_c, and z is integrated once per person
with ``core.integrate.integrate`` (default: 61 trapezoid points on [-5, 5];
adaptive Gauss-Hermite is allowed, the classes being summed inside the callback).
Missing items are all-zero indicator rows (full information).

Free parameters (real line) and default priors
----------------------------------------------
==============  ===================  ==========================================
``tau``         (class, threshold)   as the LCA (``tau_raw`` with ordinal items)
``lambda``      (item,) or (class, item)  Normal(0, 2.5) logit / Normal(0, 1.5) probit
``eta_log_sd``  (class_logit,)       Normal(0, 1): log sd of eta in class c < K
``alpha``       (class_logit,)       Normal(0, 3), eq. (37)
``beta``        (class_logit, covariate)  Normal(0, 2.5), with covariates
``log_sd_between``  ()               Normal(0, 1.5): log sd of b_j (two-level)
==============  ===================  ==========================================

Deterministics: ``tau``, ``eta_variance`` (class,) (``factor_variance="class"``),
``psi_between`` (re, re_bis) = Var(b_j) (two-level),
``class_share``, ``item_prob`` (class, response): P(y = k | c) averaged over
eta | C = c (the class's marginal response probabilities, comparable to an LCA's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.integrate import integrate
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.blocks import (
    LOG_SD_BOUNDS,
    ClassLogits,
    Thresholds,
    category_counts,
    check_n_classes,
    draw_classes,
)
from bayesmix.families import fma_levels
from bayesmix.families.examples import example_data
from bayesmix.families.levels import check_not_constant

LOADINGS = ("invariant", "class")
FACTOR_VARIANCES = ("invariant", "class")
# |lambda| <= 20: beyond it an item is a step in eta (F(20 * 0.2) is already 0.98 on the logit
# scale), i.e. a Guttman item; the bound keeps L-BFGS-B from drifting along that ridge.
LAMBDA_BOUND = 20.0
LAMBDA_START = (0.5, 1.5)  # random starts: loadings from U(0.5, 1.5), positive (the sign convention)
LAMBDA_AT_BOUND = ("A loading at its bound: the item is (near) a step function of eta_j in that class "
                   "(a Guttman item, or a class too small to estimate it).")
SD_AT_BOUND = ("A log standard deviation of eta_j at its bound: a class with (almost) no factor variance "
               "(an LCA class) or a huge one.")
# marginal item probabilities (item_prob) average over eta | c on a grid of their own
ITEM_PROB_RULE = Integration(rule="trapezoid", n_points=121, bound=8.0)


@dataclass(frozen=True)
class FMASpec:
    """Specification of an FMA model (frozen; stored with every fit)."""

    n_classes: int
    link: str = "logit"
    loadings: str = "invariant"
    factor_variance: str = "invariant"
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()
    two_level: bool = False  # a cluster random intercept b_j in the class logit (K = 2)


def fma(
    data,
    items=None,
    n_classes: int = 2,
    *,
    item_types=None,
    covariates=None,
    cluster: str | None = None,
    link: str = "logit",
    loadings: str = "invariant",
    factor_variance: str = "invariant",
    integration="trapezoid",
    priors: dict | None = None,
) -> "FMAModel":
    """Factor mixture model (eq. 36-37), single level or with clusters.

    Parameters
    ----------
    data : pandas.DataFrame
        Wide data, one row per person; missing items are allowed (full information).
    items : list of str
        Binary or ordinal item columns (``None``: every column not a covariate).
    n_classes : int
        K >= 1 person-level classes (K = 1: the 2PL IRT model).
    item_types : None, str or dict
        "binary" or "ordinal" (continuous items are not supported).
    covariates : list of str, optional
        Person-level predictors of the class logits (as the LCA, eq. 4).
    cluster : str, optional
        Two-level FMA (K = 2): persons in clusters, with a cluster random intercept
        b_j ~ N(0, psi_between) in the class logit (``fma_levels``).
    link : {"logit", "probit"}
        Link of the items (eq. 36 is the probit).
    loadings : {"invariant", "class"}
        lambda_ic = lambda_i (Table 6's restricted FMA) or class-specific.
    factor_variance : {"invariant", "class"}
        Var(eta | C = c) = 1 in every class, or free for c < K (psi_K = 1);
        needs invariant loadings and K >= 2.
    integration : str, dict or Integration
        Rule for the person integral over eta_j (default trapezoid, 61 points).
        Two-level: a product rule (trapezoid or gauss_hermite) with
        ``n_points=(person, cluster)`` (31 x 31 by default).
    priors : dict, optional
        Parameter name -> ``pm.X.dist(...)`` (names in the module docstring).
    """
    n_classes = check_n_classes(n_classes, hint=" (1 is the 2PL IRT model)")
    core_items.check_link(link)
    if loadings not in LOADINGS:
        raise SpecificationError(f"loadings: got {loadings!r}; give 'invariant' (lambda_ic = lambda_i, the "
                                 "restricted FMA) or 'class' (class-specific loadings).")
    if factor_variance not in FACTOR_VARIANCES:
        raise SpecificationError(f"factor_variance: got {factor_variance!r}; give 'invariant' (Var(eta) = 1 in "
                                 "every class) or 'class' (free in every class but the last).")
    if factor_variance == "class" and loadings == "class":
        raise SpecificationError("factor_variance: got 'class' with loadings='class'; a class-specific factor "
                                 "variance is confounded with class-specific loadings (not identified). Use "
                                 "loadings='invariant' or factor_variance='invariant'.")
    if factor_variance == "class" and n_classes == 1:
        raise SpecificationError("factor_variance: got 'class' with n_classes=1; one class has no free factor "
                                 "variance (it sets the scale of eta). Use factor_variance='invariant'.")
    integration = as_integration(integration)
    if cluster is not None:
        fma_levels.check_two_level(n_classes, integration, cluster)
    if isinstance(data, PreparedData):
        prepared = data
    else:
        if items is None:
            items = [c for c in getattr(data, "columns", []) if c not in set(covariates or []) | {cluster}]
        prepared = prepare_wide(data, items, item_types=item_types, covariates=covariates, cluster=cluster)
    if prepared.cluster_idx is not None and cluster is None:
        fma_levels.check_two_level(n_classes, integration, prepared.cluster_name)
    if n_classes > 1:
        check_not_constant(prepared.covariate_names, prepared.covariates, "persons",
                           "the class-logit intercept alpha")
    elif prepared.covariates.shape[1]:
        raise SpecificationError(f"covariates: got {list(prepared.covariate_names)} with n_classes=1; one class "
                                 "has no class logits to predict. Leave covariates out or use n_classes >= 2.")
    cont = [it.name for it, c in zip(prepared.items, prepared.categorical_mask) if not c]
    if cont:
        raise SpecificationError(f"item_types: items {cont} are continuous; this FMA takes binary and ordinal "
                                 "items only; give item_types='binary'/'ordinal' or leave those items out.")
    spec = FMASpec(n_classes=n_classes, link=link, loadings=loadings, factor_variance=factor_variance,
                   integration=integration, prior_names=tuple(sorted(priors or {})),
                   two_level=prepared.cluster_idx is not None)
    return FMAModel.build(prepared, spec, priors)


class FMAModel(FamilyModel):
    """A built FMA: ``.model`` is the plain ``pm.Model``."""

    @classmethod
    def build(cls, data: PreparedData, spec: FMASpec, priors: dict | None) -> "FMAModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="fma")
        k = spec.n_classes
        self.class_loadings = spec.loadings == "class"
        self.free_variance = spec.factor_variance == "class"
        self.two_level = spec.two_level
        self.thresholds = Thresholds(data.items, category_counts(data, np.arange(len(data.items))), spec.link, k)
        codes = np.where(data.observed, data.y, 0).astype(int)
        # (N, P M) one-hot of the observed category; a missing item is an all-zero block
        self.ind = core_items.indicator_matrix(codes, data.observed, self.thresholds.m_max)
        self.x = np.asarray(data.covariates, dtype="float64")
        self.logits_block = ClassLogits(k, self.x.shape[1], level_eq="eq. 37")
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        lam_dims = (dims.CLASS, dims.ITEM) if self.class_loadings else (dims.ITEM,)
        free = self.thresholds.parameters()
        free.append(ParameterInfo("lambda", lam_dims, pm.Normal.dist(0.0, 2.5 if spec.link == "logit" else 1.5),
                                  "loadings of the items on eta_j, eq. (36)",
                                  bounds=(-LAMBDA_BOUND, LAMBDA_BOUND), at_bound=LAMBDA_AT_BOUND))
        if self.free_variance:
            free.append(ParameterInfo("eta_log_sd", (dims.CLASS_LOGIT,), pm.Normal.dist(0.0, 1.0),
                                      "log sd of eta_j in class c < K (sd 1 in the reference class K)",
                                      bounds=LOG_SD_BOUNDS, at_bound=SD_AT_BOUND))
        self.free = free + self.logits_block.fixed_parameters()
        if self.two_level:
            self.free.append(ParameterInfo("log_sd_between", (), pm.Normal.dist(0.0, 1.5),
                                           "log sd of the cluster random intercept b_j of the class logit",
                                           bounds=LOG_SD_BOUNDS, at_bound=fma_levels.SD_AT_BOUND))
        self.register(priors)
        return self

    @property
    def integration_dim(self) -> int:
        """The person factor, + 1 for the cluster intercept (nested outside it)."""
        return 1 + int(self.two_level)

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        k = self.spec.n_classes
        return (ClassVariable("C", dims.CLASS, k, (dims.PERSON,), "class_share", label="latent class",
                              logit_intercept="alpha" if k > 1 else None,
                              logit_variance="psi_between" if self.two_level else None),)

    def analysis_lines(self):
        return super().analysis_lines() + [("Loadings", self.spec.loadings),
                                           ("Factor variance", self.spec.factor_variance)]

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        coords = {dims.CLASS: list(range(1, k + 1)),
                  dims.PERSON: list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons)),
                  dims.ITEM: [it.name for it in d.items]}
        coords.update(self.thresholds.coords())
        coords[dims.RESPONSE] = [f"{it.name}#{c:g}" if isinstance(c, (int, float, np.number)) else
                                 f"{it.name}#{c}" for it in d.items for c in it.categories]
        if self.x.shape[1]:
            coords[dims.COVARIATE] = list(d.covariate_names)
        coords.update(self.logits_block.coords())
        if self.two_level:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
            coords[dims.RE] = coords[dims.RE_BIS] = ["alpha_1"]
        return coords

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        tau = self.thresholds.tau(p)
        k = self.spec.n_classes
        eta_sd = None
        if self.free_variance:
            eta_sd = pt.exp(pt.concatenate([p["eta_log_sd"], pt.zeros((1,))]))  # sd_K = 1 (reference)
            pm.Deterministic("eta_variance", eta_sd**2, dims=(dims.CLASS,))
        q = {"tau": tau, "lambda": p["lambda"], "eta_sd": eta_sd, "alpha": p.get("alpha"), "beta": p.get("beta"),
             "log_sd_between": p.get("log_sd_between")}
        if self.two_level:
            pm.Deterministic("psi_between", pt.exp(2 * p["log_sd_between"]).reshape((1, 1)),
                             dims=(dims.RE, dims.RE_BIS))
        self.observe(q, self._unit_loglik)
        q = self.likelihood_tensors
        # two-level: E_b P(C = c | b) on the fine grid of the shares (blocks.share_integration)
        sd_b = pt.exp(q["log_sd_between"])[None, None] if self.two_level else None
        share = self.logits_block.share(self.logits_block.logits(q, self.x), sd_b) if k > 1 else pt.ones((1,))
        pm.Deterministic("class_share", share, dims=(dims.CLASS,))
        self._item_prob(q)
        self.reported = [*self.thresholds.reported(), Reported("lambda", "Loadings lambda on eta_j (eq. 36)")]
        if self.free_variance:
            self.reported.append(Reported("eta_variance", "Variance of eta_j given the class (1 in class K)"))
        self.reported += self.logits_block.reported_fixed()
        if self.two_level:
            self.reported.append(Reported("psi_between", "Variance of the cluster intercept b_j of the class logit",
                                          variance=True))
        self.reported.append(Reported("class_share", "Class proportions"))

    def _effective_loadings(self, q):
        """(K, P) lambda_ic sd_c: the loadings of the standard normal z (eta = sd_c z)."""
        k, n_items = self.spec.n_classes, len(self.data.items)
        lam = q["lambda"] if self.class_loadings else pt.broadcast_to(q["lambda"][None, :], (k, n_items))
        return lam * q["eta_sd"][:, None] if "eta_sd" in q else lam

    def _node_log_probs(self, q, z):
        """(K, Q, P, M) log P(y = m | c, z_q) at nodes z (Q,): thresholds shifted
        by -lambda_ic sd_c z (y* = lambda eta + e > tau)."""
        thr = self.thresholds
        shift = self._effective_loadings(q)[:, None, :, None] * z[None, :, None, None]  # (K, Q, P, 1)
        shifted = thr.padded(q["tau"])[:, None] - shift  # (K, Q, P, M-1)
        k, n_q, n_items = self.spec.n_classes, z.shape[0], len(self.data.items)
        lp = core_items.category_log_probs(shifted.reshape((k * n_q, n_items, -1)), thr.n_cat, self.spec.link)
        return lp.reshape((k, n_q, n_items, thr.m_max))

    def _log_f_at(self, q, u):
        """(N, Q, K) log f(y_j | C_j = c, z) at nodes u (B, Q, 1): one (N, P M) @
        (P M, K Q) product for shared nodes (B = 1); a broadcast sum over items for
        person-specific (adaptive) nodes."""
        n, k, m = self.data.n_persons, self.spec.n_classes, self.thresholds.m_max
        n_items = len(self.data.items)
        if u.type.shape[0] == 1:
            lp = self._node_log_probs(q, u[0, :, 0])  # (K, Q, P, M)
            n_q = lp.shape[1]
            log_f = pt.dot(self.ind, lp.reshape((k * n_q, n_items * m)).T)  # (N, K Q)
            return log_f.reshape((n, k, n_q)).dimshuffle(0, 2, 1)
        lam = self._effective_loadings(q)  # (K, P)
        shifted = (self.thresholds.padded(q["tau"])[None, None] -
                   lam[None, None, :, :, None] * u[:, :, :, None, None])  # (N, Q, K, P, M-1)
        n_q = u.shape[1]
        lp = core_items.category_log_probs(shifted.reshape((-1, n_items, max(m - 1, 1))), self.thresholds.n_cat,
                                           self.spec.link).reshape((n, n_q, k, n_items * m))
        return pt.sum(self.ind[:, None, None, :] * lp, axis=-1)

    def _log_prior(self, q):
        """(1 or N, K) log P(C_j = c | x_j), eq. (37); 0 with one class."""
        if self.spec.n_classes == 1:
            return pt.zeros((1, 1))
        return ClassLogits.log_prior(self.logits_block.logits(q, self.x))

    def _integral(self, q):
        log_prior = self._log_prior(q)

        def loglik_at(u):
            # classes summed inside the node: z ~ N(0, 1) in every class (the class
            # variance is in the loadings), so one integral serves all classes
            return pt.logsumexp(log_prior[:, None, :] + self._log_f_at(q, u), axis=-1)

        return integrate(loglik_at, self.spec.integration, pt.eye(1)), log_prior

    def _unit_loglik(self, q):
        if self.two_level:
            return fma_levels.nested_integral(self, q)[0].loglik
        return self._integral(q)[0].loglik

    def _posterior_weights(self, q):
        """(N, Q, K) P(z_q, C_j = c | y_j) per person (sums to 1) and (B, Q) the
        standard factor z at each node; two-level: over the (z, b) grid given the
        cluster's data (``fma_levels.posterior_weights``)."""
        if self.two_level:
            return fma_levels.posterior_weights(self, q)
        integral, log_prior = self._integral(q)
        p_c = pt.special.softmax(log_prior[:, None, :] + self._log_f_at(q, integral.nodes), axis=-1)  # (N, Q, K)
        return pt.exp(integral.log_post)[:, :, None] * p_c, integral.nodes[:, :, 0]

    def membership_graphs(self, q):
        """{"C": (N, K)} P(C_j = c | y_j) = E[P(C_j = c | y_j, z) | y_j], the
        per-node class posteriors averaged with the nodes' posterior weights
        (two-level: given the cluster's data, over the (z, b) grid)."""
        return {"C": pt.sum(self._posterior_weights(q)[0], axis=1)}

    def factor_score_graph(self, q):
        """(N, 2) posterior mean and sd of eta_j given y_j (EAP scores): eta = sd_c z
        at each node, weighted by the node's posterior weight and P(C_j = c | y_j, z)."""
        w, z = self._posterior_weights(q)  # (N, Q, K), (B, Q)
        sd = q["eta_sd"] if "eta_sd" in q else pt.ones((self.spec.n_classes,))
        eta = z[:, :, None] * sd[None, None, :]  # (B, Q, K)
        mean = pt.sum(w * eta, axis=(1, 2))
        var = pt.sum(w * (eta - mean[:, None, None]) ** 2, axis=(1, 2))
        return pt.stack([mean, pt.sqrt(var)], axis=1)

    def factor_scores(self, theta):
        """EAP factor scores: a DataFrame (persons) with the posterior mean ``eta`` and
        sd ``eta_sd`` of eta_j at a flat raw parameter vector (e.g. ``res.theta``);
        two-level: given the whole cluster's data."""
        import pandas as pd

        from bayesmix.fit.compiled import compiled, function

        comp = compiled(self)

        def build():
            graph = comp._to_theta([self.factor_score_graph(self.likelihood_tensors)])
            return function([comp.theta], graph, on_unused_input="ignore")

        out = np.asarray(comp._call("fma_factor_scores", build, np.asarray(theta, float))[0])
        return pd.DataFrame(out, index=self.data.row_index, columns=["eta", "eta_sd"])

    def _item_prob(self, q):
        """``item_prob`` (class, response): P(y = m | c) = E[P(y = m | c, eta) | c]."""
        z, logw = ITEM_PROB_RULE.nodes(1)
        lp = self._node_log_probs(q, pt.as_tensor(z[:, 0]))  # (K, Q, P, M)
        prob = pt.sum(np.exp(logw)[None, :, None, None] * pt.exp(lp), axis=1)  # (K, P, M)
        thr = self.thresholds
        valid = np.arange(thr.m_max)[None, :] < thr.n_cat[:, None]
        return pm.Deterministic("item_prob", prob[:, valid], dims=(dims.CLASS, dims.RESPONSE))

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random start: the LCA's perturbed marginal thresholds (``blocks`` policy),
        positive loadings from U(0.5, 1.5), sd of eta 1 in every class, class logits near 0."""
        k, n_items = self.spec.n_classes, len(self.data.items)
        start = dict(self.thresholds.start(rng))
        start["lambda"] = rng.uniform(*LAMBDA_START, size=(k, n_items) if self.class_loadings else n_items)
        if self.free_variance:
            start["eta_log_sd"] = np.zeros(k - 1)
        start.update(self.logits_block.start_fixed(rng))
        if self.two_level:
            start["log_sd_between"] = np.array(np.log(rng.uniform(0.3, 1.0)))
        return start

    def start_from_lca(self, lca_natural: dict, loading: float = 0.2) -> dict[str, np.ndarray]:
        """A start at an LCA solution (``lca_natural``: an LCA fit's ``natural`` on
        the same items, link and classes): its thresholds and class logits, every
        loading ``loading`` (small and positive: lambda = 0 is a stationary point
        of the LL in lambda, which is even in lambda), factor sd 1."""
        k, n_items = self.spec.n_classes, len(self.data.items)
        tau = np.asarray(lca_natural["tau"], float)
        if tau.shape != (k, len(self.thresholds.labels)):
            raise SpecificationError(f"start_from_lca: got thresholds of shape {tau.shape}; this FMA needs "
                                     f"{(k, len(self.thresholds.labels))} (an LCA with the same items and K).")
        if self.thresholds.ordinal:
            raw = tau.copy()
            later = self.thresholds.thr_k > 0
            raw[:, later] = np.log(np.maximum(np.diff(tau, axis=1)[:, later[1:]], 1e-3))
            start = {"tau_raw": raw}
        else:
            start = {"tau": tau}
        start["lambda"] = np.full((k, n_items) if self.class_loadings else n_items, float(loading))
        if self.free_variance:
            start["eta_log_sd"] = np.zeros(k - 1)
        if k > 1:
            start["alpha"] = np.asarray(lca_natural["alpha"], float)
            if self.x.shape[1]:
                start["beta"] = np.asarray(lca_natural.get("beta", np.zeros((k - 1, self.x.shape[1]))), float)
        if self.two_level:
            start["log_sd_between"] = np.array(np.log(0.5))
        return start

    def permute_classes(self, values, perms):
        """New class c is old class perm[c]: thresholds (and class-specific loadings)
        move with their class, alpha/beta are re-expressed against the new last class
        (``ClassLogits.permute``). With a free factor variance the new reference class
        K must have sd 1: eta is rescaled by s = sd_old[perm[K-1]], so sd'_c =
        sd_old[perm[c]] / s and the invariant loadings become lambda s (the LL is
        unchanged; s > 0 keeps the loadings' sign)."""
        perm = self._perm_dict(perms)["C"]
        out = self.logits_block.permute(self.thresholds.permute(dict(values), perm), perm)
        if self.class_loadings and "lambda" in values:
            out["lambda"] = np.take(values["lambda"], perm, axis=-2)
        if self.free_variance and "eta_log_sd" in values:
            log_sd = np.asarray(values["eta_log_sd"], float)
            full = np.concatenate([log_sd, np.zeros(log_sd.shape[:-1] + (1,))], axis=-1)[..., perm]
            out["eta_log_sd"] = full[..., :-1] - full[..., -1:]
            if "lambda" in values:
                out["lambda"] = np.asarray(values["lambda"]) * np.exp(full[..., -1:])
        return out

    def class_signature(self, values):
        """Per class: P(y = 0 | c, eta = 0) = F(tau) of every threshold and
        |lambda_ic| sd_c / (1 + |lambda_ic| sd_c), both free of the sign of eta."""
        k = self.spec.n_classes
        lam = np.abs(np.asarray(values["lambda"], float))
        if not self.class_loadings:
            lam = np.repeat(lam[..., None, :], k, axis=-2)
        if "eta_variance" in values:
            lam = lam * np.sqrt(np.asarray(values["eta_variance"], float))[..., :, None]
        return {"C": np.concatenate([self.thresholds.signature(values), lam / (1.0 + lam)], axis=-1)}

    def profile_table(self, natural):
        if "item_prob" not in natural:
            return super().profile_table(natural)
        return self.thresholds.profile_table(natural["item_prob"])

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw C_j, eta_j and the responses at natural values (tau, lambda,
        eta_variance, alpha, beta); missing cells stay missing. Returns (y (N, P), C (N,))."""
        d = self.data
        y, cls, _ = simulate_fma(natural, self.thresholds.thr_item, d.n_persons, self.spec.link, rng, x=self.x,
                                 cluster_idx=d.cluster_idx)
        y[~d.observed] = np.nan
        return y, cls


def simulate_fma(natural, thr_item, n, link, rng, x=None, cluster_idx=None):
    """(y (N, P), C (N,) 0-based, eta (N,)) drawn from the FMA at natural values:
    ``tau`` (K, T), ``lambda`` (P,) or (K, P), optional ``eta_variance`` (K,),
    ``alpha`` (K-1,), ``beta`` (K-1, Q) with ``x`` (N, Q), ``psi_between`` (1, 1) with
    ``cluster_idx`` (N,) (two-level: b_j added to the class logit of every person of
    cluster j); ``thr_item`` (T,) the item of each threshold column.
    y* = lambda_ic eta_j + e, y = #(thresholds below y*)."""
    tau = np.asarray(natural["tau"], float)
    k, n_items = tau.shape[0], int(np.max(thr_item)) + 1
    if k > 1:
        logits = np.broadcast_to(np.asarray(natural["alpha"], float), (n, k - 1)).copy()
        if x is not None and np.shape(x)[1] and "beta" in natural:
            logits += np.asarray(x, float) @ np.asarray(natural["beta"], float).T
        if cluster_idx is not None and "psi_between" in natural:
            sd_b = np.sqrt(float(np.ravel(natural["psi_between"])[0]))
            logits += (rng.standard_normal(int(np.max(cluster_idx)) + 1) * sd_b)[np.asarray(cluster_idx)][:, None]
        cls = draw_classes(logits, rng)
    else:
        cls = np.zeros(n, dtype=int)
    sd = np.sqrt(np.asarray(natural.get("eta_variance", np.ones(k)), float))
    eta = rng.standard_normal(n) * sd[cls]
    lam = np.broadcast_to(np.asarray(natural["lambda"], float), (k, n_items))
    dist = stats.logistic if link == "logit" else stats.norm
    y = np.empty((n, n_items))
    for p in range(n_items):
        ystar = lam[cls, p] * eta + dist.rvs(size=n, random_state=rng)
        y[:, p] = (ystar[:, None] > tau[cls][:, thr_item == p]).sum(axis=1)
    return y, cls, eta


def example(two_level: bool = False) -> FMAModel:
    """A tiny two-class FMA (48 persons, 4 binary items, invariant loadings; two-level:
    in 8 clusters, on a 15 x 15 grid to keep the registry tests fast) for the registry tests."""
    if two_level:
        return fma(example_data(), ["y1", "y2", "y3", "y4"], 2, cluster="cluster",
                   integration=Integration("trapezoid", n_points=15))
    return fma(example_data(), ["y1", "y2", "y3", "y4"], 2)


__all__ = ["FMAModel", "FMASpec", "fma", "simulate_fma"]
