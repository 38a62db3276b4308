"""Grade of membership (GoM), single level (paper section 7, eq. 27-35).

Each item of each person has its own latent class C_ij (eq. 28), drawn from the
person's membership probabilities (eq. 30 / 34)

    P(C_ij = c | alpha_j) = softmax_c(alpha_1j, ..., alpha_(K-1)j, 0),

items are conditionally independent given alpha_j, and the item-level class is
summed out item by item:

    L_j = ∫ prod_i sum_c P(C_ij = c | alpha_j) P(y_ij | C_ij = c) dN(alpha_j).

Measurement (``gom_items.ItemBlock``): class-specific thresholds of binary or
ordinal items (eq. 28 with a probit or logit link; an ordinal item has
class-specific category probabilities through its K sets of ordered thresholds,
the last paragraph of section 7) and, for continuous items, class-specific means
nu_ci with class-invariant variances theta_i (as the LCA's eq. 2). With
continuous items the class sum of each item is taken in log space.

The random class logits alpha_j = alpha + Lambda z_j, z_j ~ N(0, I_D):

* ``structure="unrestricted"`` (eq. 30 for K = 2, eq. 34): Lambda = L, the
  Cholesky factor of Var(alpha_j) = Psi (log diagonal + below-diagonal elements,
  as the LCA's random intercepts), D = K - 1 dimensions;
* ``structure="restricted"`` (eq. 35, Hedeker 2003 / Vermunt 2003):
  alpha_cj = alpha_c + lambda_c eta_j, Lambda = lambda (K-1, 1), D = 1 whatever K.
  For K = 2 it is the unrestricted model with sd = |lambda| (the sign of lambda
  is not identified: eta_j -> -eta_j).

The person integral over z_j uses ``core.integrate.integrate`` with each person
its own unit. LCA is the limit Var(alpha_j) -> infinity (stochastic restriction
eq. 16: P(C_ij = c | alpha_j) becomes 0/1 for the whole person).

Free parameters (real line) and default priors
----------------------------------------------
=================  ====================  ===================================
``tau``/``tau_raw``  (class, threshold)   as the LCA (``blocks.Thresholds``)
``nu``, ``log_theta`` (class, continuous_item), (continuous_item,): as the LCA
``alpha``          (class_logit,)         Normal(0, 3): E(alpha_cj) at x = 0
``beta``           (class_logit, covariate) Normal(0, 2.5): eq. (33), with covariates
``chol_log_diag``  (re,)                  Normal(0, 1.5)  (unrestricted)
``chol_offdiag``   (re_offdiag,)          Normal(0, 1)    (unrestricted, K > 2)
``lambda``         (class_logit,)         Normal(0, 3)    (restricted)
=================  ====================  ===================================

Deterministics: ``tau``, ``psi`` = Var(alpha_j), ``class_share`` (the mean
membership E P(C_ij = c), integrated on a fine grid), ``item_prob``.
Memberships (``membership_graphs``): the GoM scores E[P(C_ij = c | alpha_j) | y_j]
per person; ``item_class_probs`` gives P(C_ij = c | y_j) per person and item.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import optimize, special, stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.integrate import integrate
from bayesmix.core.marginal import class_log_prior
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.blocks import (
    LOG_SD_BOUNDS,
    ClassLogits,
    check_n_classes,
    reference_map,
    share_integration,
)
from bayesmix.families.examples import example_data
from bayesmix.families.gom_items import ItemBlock
from bayesmix.families.levels import check_not_constant

STRUCTURES = ("unrestricted", "restricted")
LAMBDA_BOUND = float(np.exp(LOG_SD_BOUNDS[1]))  # |lambda| <= 403, the sd bound of the unrestricted model
START_SD = (1.0, 3.0)  # random starts: sd of alpha_j (or |lambda|) drawn from U(1, 3)
LAMBDA_AT_BOUND = ("A loading of the membership factor at its bound: Var(alpha_j) running to infinity, "
                   "i.e. the LCA's person-level class (eq. 16).")
SD_AT_BOUND = ("A log standard deviation of alpha_j at its bound: a variance at 0 (every person has the same "
               "membership probabilities: items independent) or a huge one (the LCA limit, eq. 16).")


@dataclass(frozen=True)
class GoMSpec:
    """Specification of a GoM model (frozen; stored with every fit)."""

    n_classes: int
    link: str = "logit"
    structure: str = "unrestricted"
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()
    two_level: bool = False  # a cluster random intercept in the class logit (K = 2)
    item_logits: bool = False  # item-specific class-logit intercepts gamma_ci (eq. 44)


def gom(
    data,
    items=None,
    n_classes: int = 2,
    *,
    item_types=None,
    covariates=None,
    cluster: str | None = None,
    link: str = "logit",
    structure: str = "unrestricted",
    item_logits: bool = False,
    integration="trapezoid",
    priors: dict | None = None,
) -> "GoMModel":
    """Grade of membership model (eq. 28, 30, 34, 35), single level.

    Parameters
    ----------
    data : pandas.DataFrame
        Wide data, one row per person; missing items are allowed (full information).
    items : list of str
        Binary or ordinal item columns (``None``: every column).
    n_classes : int
        K >= 2 item-level classes.
    item_types : None, str or dict
        "binary", "ordinal" or "continuous" (class-specific means, class-invariant
        variances: ``gom_items``), for all items or per item; inferred by default.
    covariates : list of str, optional
        Person-level predictors of the class logits, eq. (33):
        alpha_cj = alpha_c + beta_c x_j + (Lambda z_j)_c (standardise them).
    cluster : str, optional
        Two-level GoM (K = 2): persons i in clusters j, with a cluster random
        intercept in the class logit, alpha_1ij = alpha_1 + beta x_ij + w_ij + b_j,
        w_ij ~ N(0, psi), b_j ~ N(0, psi_between) (module docstring, "Two-level").
    link : {"logit", "probit"}
        Link of the items (eq. 28 is the probit); the class model is logit (eq. 30).
    structure : {"unrestricted", "restricted"}
        Var(alpha_j) free (K-1 dimensions, eq. 34) or the one-factor model of
        eq. (35) (one dimension).
    item_logits : bool
        Item-specific covariates of the class logit as item indicators (eq. 44):
        logit P(C_ij = c | alpha_j) = gamma_ci + beta_c x_j + (Lambda z_j)_c, one
        intercept per item and class (``gamma``); the common mean alpha_c is then
        absorbed by gamma (E(Lambda z_j) = 0) and not a parameter.
    integration : str, dict or Integration
        Rule for the person integral over alpha_j (default trapezoid, 61 points
        in one dimension, 31 per dimension in two). Two-level: a product rule
        (trapezoid or gauss_hermite; ``n_points=(person, cluster)`` allowed) whose
        first dimension is the person integral nested inside the cluster integral
        of the second (31 x 31 points by default).
    priors : dict, optional
        Parameter name -> ``pm.X.dist(...)`` (names in the module docstring).
    """
    n_classes = check_n_classes(n_classes, low=2, hint=" (a GoM needs two classes or more; K = 1 is "
                                                        "independence, fit bm.lca(..., n_classes=1))")
    core_items.check_link(link)
    if structure not in STRUCTURES:
        raise SpecificationError(f"structure: got {structure!r}; give 'unrestricted' (eq. 34) or 'restricted' "
                                 "(the one-factor model of eq. 35).")
    integration = as_integration(integration)
    if cluster is not None:
        if n_classes != 2:
            raise SpecificationError(f"cluster: the two-level GoM has a cluster random intercept in the class logit "
                                     f"of K = 2 (got n_classes={n_classes}); fit n_classes=2 or leave cluster out.")
        if integration.rule not in ("trapezoid", "gauss_hermite"):
            raise SpecificationError(
                f"integration: got rule {integration.rule!r} with cluster={cluster!r}; the person integral is nested "
                "inside the cluster integral (one inner integral per cluster node), which needs a fixed product "
                "rule: 'trapezoid' or 'gauss_hermite' (adaptive nodes cannot be placed per outer node).")
    if n_classes > 3 and structure == "unrestricted" and integration.rule in ("trapezoid", "gauss_hermite") \
            and integration.n_points is None:
        raise SpecificationError(
            f"structure: 'unrestricted' with n_classes={n_classes} integrates {n_classes - 1} dimensions per "
            "person on a product grid; use structure='restricted' (eq. 35, one dimension) or "
            "integration=bm.Integration(rule='qmc') / explicit n_points.")
    if isinstance(data, PreparedData):
        prepared = data
    else:
        if items is None:
            items = [c for c in getattr(data, "columns", []) if c not in set(covariates or []) | {cluster}]
        prepared = prepare_wide(data, items, item_types=item_types, covariates=covariates, cluster=cluster)
    if prepared.cluster_idx is not None and n_classes != 2:
        raise SpecificationError(f"data: two-level prepared data need n_classes=2 (got {n_classes}).")
    check_not_constant(prepared.covariate_names, prepared.covariates, "persons", "the class-logit intercept alpha")
    if not isinstance(item_logits, (bool, np.bool_)):
        raise SpecificationError(f"item_logits: got {item_logits!r}; give True or False.")
    spec = GoMSpec(n_classes=n_classes, link=link, structure=structure, integration=integration,
                   item_logits=bool(item_logits),
                   prior_names=tuple(sorted(priors or {})), two_level=prepared.cluster_idx is not None)
    return GoMModel.build(prepared, spec, priors)


class GoMModel(FamilyModel):
    """A built GoM: ``.model`` is the plain ``pm.Model``."""

    @classmethod
    def build(cls, data: PreparedData, spec: GoMSpec, priors: dict | None) -> "GoMModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="gom")
        k = spec.n_classes
        self.restricted = spec.structure == "restricted"
        self.dim = 1 if self.restricted else k - 1
        self.two_level = spec.two_level
        self.items = ItemBlock(data, spec.link, k)  # thresholds and / or normal items (gom_items)
        self.x = np.asarray(data.covariates, dtype="float64")  # (N, Q) predictors of alpha_j, eq. (33)
        self.logits_block = ClassLogits(k, self.x.shape[1], random=not self.restricted, level_eq="eq. 30/33/34")
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        free = self.items.parameters() + [p for p in self.logits_block.fixed_parameters()
                                          if not (spec.item_logits and p.name == "alpha")]
        if spec.item_logits:
            free.append(ParameterInfo("gamma", (dims.CLASS_LOGIT, dims.OBSERVED_ITEM), pm.Normal.dist(0.0, 3.0),
                                      "item-specific class-logit intercepts gamma_ci, eq. (44)"))
        if self.restricted:
            free.append(ParameterInfo("lambda", (dims.CLASS_LOGIT,), pm.Normal.dist(0.0, 3.0),
                                      "loadings of alpha_cj on the membership factor eta_j, eq. (35)",
                                      bounds=(-LAMBDA_BOUND, LAMBDA_BOUND), at_bound=LAMBDA_AT_BOUND))
        else:
            free += [dataclasses.replace(p, at_bound=SD_AT_BOUND, title=p.title + ", eq. (30)/(34)")
                     if p.name == "chol_log_diag" else p for p in self.logits_block.random_parameters()]
        if self.two_level:
            free.append(ParameterInfo("log_sd_between", (), pm.Normal.dist(0.0, 1.5),
                                      "log sd of the cluster random intercept b_j of the class logit (two-level)",
                                      bounds=LOG_SD_BOUNDS, at_bound=SD_AT_BOUND))
        self.free = free
        self.register(priors)
        return self

    @property
    def thresholds(self):
        """The categorical items' ``blocks.Thresholds`` (None without categorical items)."""
        return self.items.thresholds

    @property
    def integration_dim(self) -> int:
        """Person dimensions, + 1 for the cluster intercept (nested outside them)."""
        return self.dim + int(self.two_level)

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        return (ClassVariable("C", dims.CLASS, self.spec.n_classes, (dims.PERSON,), "class_share",
                              label="item-level class (GoM scores per person)",
                              logit_variance="psi",
                              logit_intercept=None if self.spec.item_logits else "alpha"),)

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        coords = {dims.CLASS: list(range(1, k + 1)),
                  dims.PERSON: list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons)),
                  dims.OBSERVED_ITEM: [str(it.name) for it in d.items]}  # every column (gamma, the data node)
        coords.update(self.items.coords())
        if self.x.shape[1]:
            coords[dims.COVARIATE] = list(d.covariate_names)
        if self.two_level:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        coords.update(self.logits_block.coords())
        coords[dims.RE] = [f"alpha_{c}" for c in range(1, k)]
        coords[dims.RE_BIS] = coords[dims.RE]
        return coords

    # ------------------------------------------------------------------ graph
    def _loading(self, q):
        """Lambda (K-1, D): alpha_j = alpha + Lambda z_j, z_j ~ N(0, I_D); two-level
        (K = 2): a last column sd(b_j) for the cluster dimension of z."""
        lam = q["lambda"][:, None] if self.restricted else q["chol"]
        if self.two_level:
            lam = pt.concatenate([lam, pt.exp(q["log_sd_between"]).reshape((1, 1))], axis=1)
        return lam

    def _build_graph(self, p: dict):
        measurement, reported = self.items.tensors(p)
        chol = None if self.restricted else self.logits_block.chol(p)  # adds ``psi``
        alpha = pt.zeros((self.spec.n_classes - 1,)) if self.spec.item_logits else p["alpha"]
        q = {**measurement, "alpha": alpha, "gamma": p.get("gamma"), "beta": p.get("beta"),
             "lambda": p.get("lambda"), "chol": chol,
             "log_sd_between": p.get("log_sd_between")}
        if self.restricted:
            lam = p["lambda"][:, None]
            pm.Deterministic("psi", lam @ lam.T, dims=(dims.RE, dims.RE_BIS))
        if self.two_level:
            pm.Deterministic("psi_between", pt.exp(2 * p["log_sd_between"]).reshape((1, 1)), dims=(dims.RE, dims.RE_BIS))
        self.observe(q, self._unit_loglik)
        pm.Deterministic("class_share", self._class_share(self.likelihood_tensors), dims=(dims.CLASS,))
        self.reported = [*reported, Reported("gamma", "Item-specific class-logit intercepts gamma_ci (eq. 44)")
                         if self.spec.item_logits else Reported("alpha", "Means of the class logits alpha_cj (eq. 30/34)")]
        if self.x.shape[1]:
            self.reported.append(Reported("beta", "alpha_cj ON (class-logit slopes, eq. 33)"))
        if self.restricted:
            self.reported.append(Reported("lambda", "Loadings of alpha_cj on eta_j (eq. 35)"))
        self.reported.append(Reported("psi", "Variances/covariances of alpha_cj (person level)", variance=True))
        if self.two_level:
            self.reported.append(Reported("psi_between", "Variance of the cluster intercept b_j of the class logit",
                                          variance=True))
        self.reported.append(Reported("class_share", "Mean membership E P(C_ij = c)"))

    def _membership_at(self, q, u):
        """(B, Q, P or 1, K) P(C_ij = c | alpha_j) at nodes u (B, Q, D) of z_j; B = N
        with covariates (eq. 33: the logits are person-specific); the item axis has
        length P with item-specific intercepts (eq. 44), else 1."""
        lam = self._loading(q)
        logits = self.logits_block.logits(q, self.x)[:, None, :]  # (1 or N, 1, K-1)
        logits = (logits + pt.sum(u[:, :, None, :] * lam[None, None, :, :], axis=-1))[:, :, None, :]
        if self.spec.item_logits:
            logits = logits + q["gamma"].T[None, None, :, :]  # (B, Q, P, K-1)
        return pt.exp(class_log_prior(logits))

    def _node_loglik(self, q, log_f, u):
        """(N, Q) log P(y_j | z_j = u_q): the items' class sums at nodes u (B, Q, D);
        ``log_f`` (N, P, K) from ``ItemBlock.log_f``."""
        pi = self._membership_at(q, u)  # (B, Q, P or 1, K)
        if self.items.has_continuous:
            # a normal density has no lower bound: sum the classes in log space
            joint = pt.log(pi) + log_f[:, None, :, :]  # (N, Q, P, K)
            return pt.sum(pt.logsumexp(joint, axis=-1), axis=-1)
        # P(y_ij | alpha) = sum_c pi_c f_ijc in probability space: f >= F(-15) > 0 (thresholds are
        # bounded) and sum_c pi_c = 1, so the sum is bounded away from 0 and its log is exact
        # (no logsumexp needed); memberships shared by all persons go through a table of
        # (item, category, node) logs, person-specific ones (covariates, adaptive nodes) through
        # a broadcast sum (N, Q, P, K) (no batched matmul: slow to compile).
        if not self.spec.integration.adaptive and self.x.shape[1] == 0:
            return self._shared_node_loglik(q, pi[0])
        f = pt.exp(log_f)
        p_item = pt.sum(pi * f[:, None, :, :], axis=-1)  # (N, Q, P)
        return pt.sum(pt.log(p_item), axis=-1)

    def _shared_node_loglik(self, q, pi):
        """(N, Q) node log-likelihood of categorical items when the memberships
        pi (Q, P or 1, K) are the same for every person (no covariates, fixed nodes).

        log P(y_ij = m | z_q) = log sum_c pi_c(z_q) P(y_ij = m | c) then depends on
        (item, category, node) only: a (P M, Q) table of logs, and the person's node
        log-likelihood is the (N, P M) one-hot of the observed categories times it
        (a missing item selects nothing: full information). This takes P M Q logs
        instead of N P Q (7326 x 17 x 61 -> 17 x 2 x 61 at the NLSY size), the same
        numbers to rounding. P(y = m | c) >= F(-15) > 0 (bounded thresholds) and the
        memberships sum to 1, so the class sum is in probability space; a padded
        category (log prob 0) gives log 1 = 0 and is never selected."""
        lp = self.items.category_log_probs(q)  # (K, P, M)
        prob = pt.exp(lp).dimshuffle(1, 2, 0)  # (P, M, K)
        table = pt.log(pt.sum(pi[:, :, None, :] * prob[None], axis=-1))  # (Q, P, M)
        return pt.dot(self.items.onehot, table.reshape((table.shape[0], -1)).T)

    def _level_rules(self):
        """Two-level: the 1-D rules of the person integral (inner) and of the cluster
        integral (outer), from the spec's 2-D product rule."""
        n_w, n_b = self.spec.integration.counts(2)
        return (dataclasses.replace(self.spec.integration, n_points=n_w),
                dataclasses.replace(self.spec.integration, n_points=n_b))

    def _integral(self, q):
        """(unit loglik, nodes (B, Q, D), log posterior weight of each node per person
        (N, Q), log f (N, P, K)).

        Two-level: L_j = ∫ prod_{i in j} [∫ prod_items sum_c pi_c(w, b) f dN(w)] dN(b): the
        person integral over w is evaluated at every node of the cluster intercept b (a
        kept axis of ``integrate``), the cluster integral sums the persons' logs. The
        person's posterior over the (w, b) grid is P(b | cluster data) P(w | b, y_i)."""
        f = self.items.log_f(q)
        if not self.two_level:
            integral = integrate(lambda u: self._node_loglik(q, f, u), self.spec.integration, pt.eye(self.dim))
            return integral.loglik, integral.nodes, integral.log_post, f
        inner_rule, outer_rule = self._level_rules()
        n_w, n_b = inner_rule.counts(1)[0], outer_rule.counts(1)[0]
        kept = {}

        def person_at(ub):  # (1, Q_b, 1) cluster-intercept nodes (standard scale)
            def within_at(uw):  # (1, Q_w, 1)
                grid = pt.stack([pt.repeat(uw[0, :, 0], n_b), pt.tile(ub[0, :, 0], n_w)], axis=-1)[None]
                kept["grid"] = grid  # (1, Q_w Q_b, 2), w major
                return self._node_loglik(q, f, grid).reshape((self.data.n_persons, n_w, n_b))

            kept["inner"] = integrate(within_at, inner_rule, pt.eye(1))  # loglik (N, Q_b)
            return kept["inner"].loglik

        outer = integrate(person_at, outer_rule, pt.eye(1), unit_idx=self.data.cluster_idx,
                          n_units=self.data.n_clusters)
        log_post = kept["inner"].log_post + outer.log_post[self.data.cluster_idx][:, None, :]  # (N, Q_w, Q_b)
        return outer.loglik, kept["grid"], log_post.reshape((self.data.n_persons, n_w * n_b)), f

    def _unit_loglik(self, q):
        return self._integral(q)[0]

    def membership_graphs(self, q):
        """{"C": (N, K)} GoM scores E[P(C_ij = c | alpha_j) | y_j]: the membership
        probabilities averaged over the person's posterior at the nodes."""
        _, nodes, log_post, _ = self._integral(q)
        pi = pt.mean(self._membership_at(q, nodes), axis=2)  # (B, Q, K), averaged over items (eq. 44)
        return {"C": pt.sum(pt.exp(log_post)[:, :, None] * pi, axis=1)}

    def item_class_graph(self, q):
        """(N, P, K) P(C_ij = c | y_j) = E[pi_c f_ijc / sum_c' pi_c' f_ijc' | y_j]."""
        _, nodes, log_post, log_f = self._integral(q)
        pi = self._membership_at(q, nodes)  # (B, Q, P or 1, K)
        joint = pt.log(pi) + log_f[:, None, :, :]  # (N, Q, P, K), log space (normal items)
        post = pt.exp(joint - pt.logsumexp(joint, axis=-1, keepdims=True))
        return pt.sum(pt.exp(log_post)[:, :, None, None] * post, axis=1)

    def item_class_probs(self, theta) -> np.ndarray:
        """(N, P, K) P(C_ij = c | y_j) at a flat raw parameter vector (e.g. ``res.theta``)."""
        from bayesmix.fit.compiled import compiled, function

        comp = compiled(self)

        def build():
            graph = comp._to_theta([self.item_class_graph(self.likelihood_tensors)])
            return function([comp.theta], graph, on_unused_input="ignore")

        return np.asarray(comp._call("gom_item_class", build, theta)[0])

    def _class_share(self, q):
        # mean membership E_alpha softmax(alpha + Lambda z), on the fine grid of the
        # shares (a near step in z when Var(alpha_j) is huge)
        z, logw = share_integration(self.integration_dim).nodes(self.integration_dim)
        u = pt.as_tensor(z)[None]  # (1, Q, D)
        pi = pt.mean(self._membership_at(q, u), axis=2)  # (1 or N, Q, K), averaged over items
        return pt.mean(pt.sum(np.exp(logw)[None, :, None] * pi, axis=1), axis=0)

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random start: the LCA's perturbed marginal thresholds, class logits
        near 0, sd of alpha_j (or lambda) from U(1, 3)."""
        k = self.spec.n_classes
        start = self.items.start(rng)
        start.update(self.logits_block.start_fixed(rng))
        if self.spec.item_logits:  # the common mean of the draw, spread a little over the items
            a = start.pop("alpha")
            start["gamma"] = a[:, None] + rng.normal(0.0, 0.3, size=(k - 1, len(self.data.items)))
        sd = rng.uniform(*START_SD, size=k - 1)
        if self.restricted:
            start["lambda"] = sd
        else:
            start["chol_log_diag"] = np.log(sd)
            if k > 2:
                start["chol_offdiag"] = np.zeros((k - 1) * (k - 2) // 2)
        if self.two_level:
            start["log_sd_between"] = np.array(np.log(rng.uniform(0.3, 1.0)))
        return start

    def start_from_lca(self, lca_natural, sd: float = 20.0) -> dict[str, np.ndarray]:
        """The paper's recommended start (section 7): the LCA solution with a large
        Var(alpha_j), where P(C_ij = c | alpha_j) is ~ 1 for the largest of
        (alpha_1j, ..., alpha_(K-1)j, 0): every item of a person in one class, the
        LCA's person-level class (eq. 16). ``lca_natural``: an LCA fit (MLResult) or
        its ``natural`` (``tau`` / ``nu``, ``theta``, ``class_share``) on the same
        items and link, with the same number of classes.

        The class logit means are chosen so that the shares of that limit are the
        LCA's class shares pi_c:

        * K = 2: P(alpha_j > 0) = Phi(alpha / s) = pi_1, alpha = s Phi^{-1}(pi_1);
        * restricted (eq. 35), K > 2: lambda_c = s (K - c), so along eta_j the
          classes follow one another K, K-1, ..., 1 (the LCA classes are put in
          that order by their mean item probability); the boundary of classes c+1
          and c lies at eta = (alpha_(c+1) - alpha_c) / s = Phi^{-1}(pi_K + ... + pi_(c+1));
        * unrestricted, K > 2: Psi = s^2 I and alpha = s a with a solving
          P(argmax(a + z, 0) = c) = pi_c, z ~ N(0, I_(K-1)) (a fixed normal sample,
          the argmax smoothed: a start, not an estimate)."""
        natural = getattr(lca_natural, "natural", lca_natural)
        lca_beta = natural.get("beta")
        k = self.spec.n_classes
        share = np.asarray(natural["class_share"], float)
        if share.shape != (k,):
            raise SpecificationError(f"start_from_lca: got an LCA with class_share of shape {share.shape}; this "
                                     f"GoM has n_classes={k}: fit bm.lca(..., n_classes={k}) on the same items.")
        share = np.clip(share, 1e-6, None) / np.clip(share, 1e-6, None).sum()
        order = np.arange(k)
        if k == 2:
            alpha = np.array([sd * stats.norm.ppf(share[0])])
        elif self.restricted:
            order = np.argsort(-self.items.severity(natural))  # most endorsed class first ... least
            share = share[order]
            alpha = np.zeros(k)  # alpha_K = 0 (reference)
            for c in range(k - 2, -1, -1):
                alpha[c] = alpha[c + 1] - sd * stats.norm.ppf(np.clip(share[c + 1:].sum(), 1e-6, 1 - 1e-6))
            alpha = alpha[:-1]
        else:
            alpha = sd * argmax_logit_means(share)
        natural = {name: np.take(np.asarray(natural[name], float), order, axis=0) if name in ("tau", "nu")
                   else natural[name] for name in ("tau", "nu", "theta") if name in natural}
        start = {"gamma": np.repeat(alpha[:, None], len(self.data.items), axis=1)} if self.spec.item_logits \
            else {"alpha": alpha}
        if self.x.shape[1]:
            # K = 2: P(C_j = 1 | x) = Phi((alpha + beta x) / s) against the LCA's expit(a + b x):
            # Phi^{-1}(expit(t)) ~ t / 1.7, so beta ~ s b / 1.7; K > 2: 0 (a start only)
            start["beta"] = sd * np.asarray(lca_beta, float) / 1.7 if k == 2 and lca_beta is not None \
                else np.zeros((k - 1, self.x.shape[1]))
        start.update(self.items.from_lca(natural))
        if self.restricted:
            start["lambda"] = sd * np.arange(k - 1, 0, -1, dtype=float)
        else:
            start["chol_log_diag"] = np.full(k - 1, np.log(sd))
            if k > 2:
                start["chol_offdiag"] = np.zeros((k - 1) * (k - 2) // 2)
        if self.two_level:
            start["log_sd_between"] = np.array(np.log(0.5))
        return start

    def permute_classes(self, values, perms):
        """New class c is old class perm[c]; alpha_j = alpha + Lambda z_j maps
        linearly (``reference_map``): alpha, the Cholesky factor (re-factored) or
        lambda are re-expressed against the new reference class."""
        perm = self._perm_dict(perms)["C"]
        out = self.items.permute(dict(values), perm)
        out = self.logits_block.permute(out, perm, extra=("gamma",))
        if self.restricted and "lambda" in values:
            out["lambda"] = np.asarray(values["lambda"]) @ reference_map(perm).T
        return out

    def class_signature(self, values):
        """Per class: item response probabilities F(tau), standardised means."""
        return {"C": self.items.signature(values)}

    def profile_table(self, natural):
        if "item_prob" not in natural:
            return super().profile_table(natural)
        return self.items.thresholds.profile_table(natural["item_prob"])

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw alpha_j, item-level classes C_ij and responses at natural values
        (tau / nu, theta, alpha, psi; lambda for the restricted model); missing cells
        stay missing. Returns (y (N, P), the most frequent class of each person (N,))."""
        d, k = self.data, self.spec.n_classes
        c_item = draw_item_classes(natural, d.n_persons, len(d.items), rng, x=self.x, cluster_idx=d.cluster_idx)
        y = self.items.draw(natural, c_item, rng)
        y[~d.observed] = np.nan
        counts = np.stack([(c_item == c).sum(axis=1) for c in range(k)], axis=1)
        return y, counts.argmax(axis=1)


def argmax_logit_means(share, n_draws: int = 20000, temperature: float = 20.0) -> np.ndarray:
    """a (K-1,) with P(argmax(a_1 + z_1, ..., a_(K-1) + z_(K-1), 0) = c) = share_c,
    z ~ N(0, I): the LCA limit of the unrestricted GoM (``start_from_lca``). The
    shares come from a fixed normal sample with the argmax replaced by a softmax of
    temperature 20 (smooth in a; error ~ 1e-2, enough for a start)."""
    share = np.asarray(share, float)
    k = share.size
    z = np.random.default_rng(0).standard_normal((n_draws, k - 1))

    def gap(a):
        u = np.concatenate([a[None, :] + z, np.zeros((n_draws, 1))], axis=1)
        return special.softmax(temperature * u, axis=1).mean(axis=0)[:-1] - share[:-1]

    a0 = special.logit(np.clip(share[:-1], 1e-6, 1 - 1e-6)) - special.logit(np.clip(share[-1], 1e-6, 1 - 1e-6))
    return optimize.root(gap, a0 / 1.7).x


def draw_item_classes(natural, n, n_items, rng, x=None, cluster_idx=None):
    """C_ij (N, P) 0-based: alpha_j from ``alpha`` (K-1,) and ``lambda`` (K-1,)
    (restricted, eq. 35) or ``psi`` (K-1, K-1), + ``beta`` (K-1, Q) x_j (eq. 33),
    + b_j ~ N(0, ``psi_between``) of the person's cluster (two-level); then a class
    per item from softmax(alpha_j, 0)."""
    alpha = np.asarray(natural["alpha"], float) if "alpha" in natural else \
        np.zeros(np.shape(natural["gamma"])[0])  # item_logits: E alpha_cj = 0, the items' gamma_ci added below
    if "lambda" in natural:
        a = alpha[None, :] + rng.standard_normal((n, 1)) * np.asarray(natural["lambda"], float)[None, :]
    else:
        a = rng.multivariate_normal(alpha, np.atleast_2d(natural["psi"]), size=n)
    if x is not None and np.shape(x)[1] and "beta" in natural:
        a = a + np.asarray(x, float) @ np.asarray(natural["beta"], float).T
    if cluster_idx is not None and "psi_between" in natural:
        b = rng.standard_normal(int(np.max(cluster_idx)) + 1) * np.sqrt(float(np.ravel(natural["psi_between"])[0]))
        a = a + b[np.asarray(cluster_idx)][:, None]
    k = alpha.size + 1
    a = np.broadcast_to(a[:, None, :], (n, n_items, k - 1))
    if "gamma" in natural:
        a = a + np.asarray(natural["gamma"], float).T[None]  # (N, P, K-1), eq. (44)
    pi = special.softmax(np.concatenate([a, np.zeros((n, n_items, 1))], axis=-1), axis=-1)  # (N, P, K)
    u = rng.random((n, n_items))
    return (pi.cumsum(axis=-1) <= u[:, :, None]).sum(axis=-1).clip(0, k - 1)


def simulate_gom(natural, thr_item, n, link, rng, x=None, cluster_idx=None):
    """(y (N, P), C_ij (N, P) 0-based) drawn from a GoM of categorical items at
    natural values (``draw_item_classes``; ``tau`` (K, T), ``thr_item`` (T,) the
    item of each threshold column)."""
    tau = np.asarray(natural["tau"], float)
    n_items = int(np.max(thr_item)) + 1
    c_item = draw_item_classes(natural, n, n_items, rng, x=x, cluster_idx=cluster_idx)
    dist = stats.logistic if link == "logit" else stats.norm
    y = np.empty((n, n_items))
    for p in range(n_items):
        thr = tau[c_item[:, p]][:, thr_item == p]  # (N, m-1)
        y[:, p] = (dist.rvs(size=n, random_state=rng)[:, None] > thr).sum(axis=1)
    return y, c_item


def example(two_level: bool = False) -> GoMModel | None:
    """A tiny two-class GoM (48 persons, 4 binary items; two-level: in 8 clusters,
    on a 15 x 15 grid to keep the registry tests fast) for the registry tests."""
    if two_level:
        return gom(example_data(), ["y1", "y2", "y3", "y4"], 2, cluster="cluster",
                   integration=Integration("trapezoid", n_points=15))
    return gom(example_data(), ["y1", "y2", "y3", "y4"], 2)
