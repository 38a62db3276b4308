"""Factor mixture grade of membership (FMA-GoM), single level (paper section 8, eq. 38-41, 44).

Each item of each person has its own latent class C_ij (as the GoM, section 7),
and the class-specific item probabilities also depend on a person factor eta_j ~ N(0, 1):

    P(y_ij = 1 | C_ij = c, eta_j) = F(lambda_ic eta_j - tau_ic)                    (38)
    P(C_ij = c | alpha_j) = softmax_c(alpha_1j + gamma_1i, ..., alpha_(K-1)j + gamma_(K-1)i, 0)   (39), (44)

with alpha_j = (alpha_1j, ..., alpha_(K-1)j) ~ N(alpha, Psi) and F the logistic or
normal CDF. Sign convention: the project's thresholds (``blocks.Thresholds``, Mplus)
give P(y = 1 | c) = 1 - F(tau) = F(-tau), so the paper's Phi(tau_ic + lambda_ic eta_j)
is this model with tau (here) = -tau (paper); loadings keep their sign.

    L_j = ∫∫ prod_i sum_c P(C_ij = c | alpha_j) P(y_ij | C_ij = c, eta_j) dN(eta_j) dN(alpha_j),

integrated per person on a product rule over (eta_j, z_j), alpha_j = alpha + L z_j
(eta first, then the K-1 membership dimensions: 2-D for K = 2). The item-level
class is summed out inside the item (as the GoM, ARCHITECTURE decision 22): at each
node the sum over classes depends only on the parameters and the observed category,
so a (nodes, item, category) table M_qik = sum_c P(C = c | node) P(y = k | c, node)
is built once (in log space, ``node_log_table``) and the person log-likelihood at
every node is one matrix product of the data's one-hot matrix with log M, as the LCA.

Options
-------
* ``loadings="invariant"`` (lambda_ic = lambda_i, the paper's Table 6) or ``"class"``.
* ``factor_variance="class"`` (invariant loadings only): class c's items load
  lambda_i s_c on eta_j, s_K = 1 (reference class, as the class logits) and
  log s_c free for c < K: a class-specific factor variance s_c^2 (Mplus frees the
  factor variance in all classes but one when the loadings are invariant). With
  ``"fixed"`` (default) Var(eta_j) = 1 for every class.
* ``item_logits=True``: a per-item intercept gamma_ci in the class logit (eq. 44 with
  item indicators as the X_qij); E(alpha_cj) is then fixed at 0 (alpha_c + gamma_ci
  has one redundant constant).

Parameter count (Table 6: 18 binary items, K = 2, invariant loadings): 36 thresholds
+ 18 loadings + 1 class logit alpha + 1 Var(alpha_1j) = 56 with ``factor_variance=
"fixed"``. The paper's FMA has 56 = 36 + 18 + 1 + 1 class-specific factor variance,
and its FMA-GoM "just one more parameter" (section 8): the 57th relative to the
fixed-variance parameterisation is that class-specific factor variance, so
``factor_variance="class"`` gives the paper's 57 (36 + 18 + 1 + 1 + 1).

Free parameters (real line) and default priors
----------------------------------------------
=================  ======================  ================================
``tau``            (class, threshold)      Normal(0, 5 or 3), eq. (38)
``lambda``         (item,) or (class, item) Normal(1, 2), eq. (38)
``log_eta_scale``  (class_logit,)          Normal(0, 1) (factor_variance="class")
``alpha``          (class_logit,)          Normal(0, 3) (not with item_logits)
``gamma``          (item, class_logit)     Normal(0, 2.5) (item_logits), eq. (44)
``chol_log_diag``/``chol_offdiag``         Var(alpha_j) = Psi, eq. (39)
=================  ======================  ================================

Deterministics: ``psi``, ``icc`` (K = 2: psi / (psi + pi^2/3), the paper's 86%),
``eta_variance`` (factor_variance="class"), ``class_share`` (mean membership),
``item_prob`` (at eta = 0). Memberships: the person's expected share of items in
class c, mean_i P(C_ij = c | y_j) (``item_class_probs`` gives each item's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

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
    Thresholds,
    category_counts,
    check_n_classes,
    reference_map,
    share_integration,
)
from bayesmix.families.examples import example_data
from bayesmix.families.gom import SD_AT_BOUND, START_SD

LOADINGS = ("invariant", "class")
FACTOR_VARIANCES = ("fixed", "class")
LOADING_BOUND = 15.0  # |lambda| <= 15: a slope of 15 on eta ~ N(0, 1) is already a step
LOADING_AT_BOUND = "A factor loading at its bound: the item is a (near) step function of eta_j."
SCALE_AT_BOUND = "A log factor scale at its bound: one class's items do not depend on eta_j, or are steps in it."


# ------------------------------------------------------------------ shared numerics (also irt.py)
def binary_log_probs(tau, lam, eta, link: str):
    """(Q, K, P, 2) log P(y = k | C = c, eta_q) of binary items: P(y = 1) = F(lam eta - tau)
    (``tau``, ``lam`` (K, P), ``eta`` (Q,)); both categories from the stable log F."""
    lin = lam[None] * eta[:, None, None] - tau[None]
    return pt.stack([core_items.log_cdf(-lin, link), core_items.log_cdf(lin, link)], axis=-1)


def node_log_table(log_pi, log_f):
    """(Q, P, 2) log sum_c P(C_i = c | node) P(y_i = k | c, node) from ``log_pi`` (Q or 1, P, K)
    and ``log_f`` (Q, K, P, 2), by logsumexp: exact when one class has a tiny probability."""
    return pt.logsumexp(log_pi[:, :, None, :] + log_f.dimshuffle(0, 2, 3, 1), axis=-1)


def node_logliks(ind, log_m):
    """(N, Q) person log-likelihood at each node: one-hot data ``ind`` (N, P*2) (missing item:
    zeros, so it contributes log 1) times the table ``log_m`` (Q, P, 2)."""
    return pt.dot(ind, log_m.reshape((log_m.shape[0], -1)).T)


def item_class_posterior(ind3, observed, log_pi, log_f, log_m, log_post):
    """(N, P, K) P(C_ij = c | y_j): at each node the class posterior of the observed category,
    P(C = c | y = k, node) = pi_c f_ck / M_k (a parameter table), averaged over the person's
    posterior node weights; a missing item gets the posterior mean of its prior pi."""
    q, k = log_f.shape[0], log_f.shape[1]
    ratio = pt.exp(log_pi[:, :, None, :] + log_f.dimshuffle(0, 2, 3, 1) - log_m[..., None])  # (Q, P, 2, K)
    w = pt.exp(log_post)  # (N, Q)
    n_items = ind3.shape[1]
    t = pt.dot(w, ratio.reshape((q, -1))).reshape((-1, n_items, 2, k))  # (N, P, 2, K)
    obs = pt.sum(ind3[:, :, :, None] * t, axis=2)
    pi = pt.broadcast_to(pt.exp(log_pi), (q, n_items, k))
    prior = pt.dot(w, pi.reshape((q, -1))).reshape((-1, n_items, k))
    return obs + (1.0 - observed[:, :, None]) * prior


def binary_indicators(data, name: str):
    """(N, P, 2) one-hot of binary responses (missing: zeros); refuses other items."""
    bad = [it.name for it in data.items if it.n_categories != 2]
    if bad:
        raise SpecificationError(f"item_types: items {bad} are not binary; {name} takes binary items only "
                                 "(give item_types='binary' with 0/1 data, or leave those items out).")
    codes = np.where(data.observed, data.y, 0).astype(int)
    return core_items.indicator_matrix(codes, data.observed, 2).reshape(data.n_persons, len(data.items), 2)


def check_integration_rule(integration, name: str) -> Integration:
    integration = as_integration(integration)
    if integration.adaptive:
        raise SpecificationError(f"integration: got rule 'adaptive'; {name} builds one node table shared by all "
                                 "persons and needs a fixed rule: give 'trapezoid' (default) or 'gauss_hermite'.")
    return integration


@dataclass(frozen=True)
class FMAGoMSpec:
    """Specification of an FMA-GoM model (frozen; stored with every fit)."""

    n_classes: int
    link: str = "probit"
    loadings: str = "invariant"
    factor_variance: str = "fixed"
    item_logits: bool = False
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()


def fma_gom(data, items=None, n_classes: int = 2, *, link: str = "probit", loadings: str = "invariant",
            factor_variance: str = "fixed", item_logits: bool = False, integration="trapezoid",
            priors: dict | None = None) -> "FMAGoMModel":
    """FMA-GoM (eq. 38-41, 44): item-level classes with a person factor eta_j.

    Parameters
    ----------
    data : pandas.DataFrame or PreparedData
        Wide data, one row per person, binary items (missing cells allowed).
    items : list of str (``None``: every column)
    n_classes : int
        K >= 2 item-level classes (K - 1 random class logits: 1 + K - 1 dimensions).
    link : {"probit", "logit"}
        Item link (the paper's eq. 38 is the probit).
    loadings : {"invariant", "class"}
    factor_variance : {"fixed", "class"}
        Class-specific factor scale (invariant loadings only; module docstring).
    item_logits : bool
        Per-item intercepts gamma_ci in the class logits (eq. 44); E(alpha_cj) = 0.
    integration : str, dict or Integration
        Product rule over (eta_j, alpha_j) (default trapezoid, 31 points per dimension
        for K = 2; ``n_points=(n_eta, n_alpha)`` per dimension).
    priors : dict, optional
    """
    n_classes = check_n_classes(n_classes, low=2, hint=" (an FMA-GoM needs two classes or more; with one "
                                                        "class it is a one-factor IRT model: bm.irt_3pl(..., "
                                                        "guessing=False))")
    core_items.check_link(link)
    if loadings not in LOADINGS:
        raise SpecificationError(f"loadings: got {loadings!r}; give 'invariant' (lambda_ic = lambda_i, Table 6) "
                                 "or 'class'.")
    if factor_variance not in FACTOR_VARIANCES:
        raise SpecificationError(f"factor_variance: got {factor_variance!r}; give 'fixed' or 'class'.")
    if factor_variance == "class" and loadings == "class":
        raise SpecificationError("factor_variance: got 'class' with loadings='class'; class-specific loadings "
                                 "already absorb a class-specific factor scale: use factor_variance='fixed'.")
    if not isinstance(item_logits, (bool, np.bool_)):
        raise SpecificationError(f"item_logits: got {item_logits!r}; give True or False.")
    integration = check_integration_rule(integration, "fma_gom")
    if n_classes > 3 and integration.n_points is None:
        raise SpecificationError(f"n_classes: got {n_classes}; the product rule over {n_classes} dimensions "
                                 "is too large by default: give integration=bm.Integration(n_points=...).")
    prepared = data if isinstance(data, PreparedData) else prepare_wide(
        data, list(data.columns) if items is None else items, item_types="binary")
    if prepared.cluster_idx is not None:
        raise SpecificationError("data: got two-level prepared data (a cluster); this FMA-GoM is single level; "
                                 "prepare the data without cluster.")
    if prepared.covariates.shape[1]:
        raise SpecificationError(f"data: got covariates {list(prepared.covariate_names)}; fma_gom has no "
                                 "person covariates (item_logits=True gives the item-specific ones of eq. 44).")
    spec = FMAGoMSpec(n_classes=n_classes, link=link, loadings=loadings, factor_variance=factor_variance,
                      item_logits=bool(item_logits), integration=integration, prior_names=tuple(sorted(priors or {})))
    return FMAGoMModel.build(prepared, spec, priors)


class FMAGoMModel(FamilyModel):
    """A built FMA-GoM (thresholds, class logits and relabelling as the GoM's, written
    here rather than inherited so that the GoM's own graph can change independently)."""

    @classmethod
    def build(cls, data: PreparedData, spec: FMAGoMSpec, priors: dict | None) -> "FMAGoMModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="fma_gom")
        k = spec.n_classes
        self.dim = k - 1  # membership dimensions (the GoM's unrestricted eq. 34)
        self.ind3 = binary_indicators(data, "fma_gom")
        self.ind = self.ind3.reshape(data.n_persons, -1)
        self.thresholds = Thresholds(data.items, category_counts(data, np.arange(len(data.items))), spec.link, k)
        self.logits_block = ClassLogits(k, 0, random=True, level_eq="eq. 39")
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        lam_dims = (dims.ITEM,) if spec.loadings == "invariant" else (dims.CLASS, dims.ITEM)
        free = self.thresholds.parameters()
        free.append(ParameterInfo("lambda", lam_dims, pm.Normal.dist(1.0, 2.0), "factor loadings on eta_j, eq. (38)",
                                  bounds=(-LOADING_BOUND, LOADING_BOUND), at_bound=LOADING_AT_BOUND))
        if spec.factor_variance == "class":
            free.append(ParameterInfo("log_eta_scale", (dims.CLASS_LOGIT,), pm.Normal.dist(0.0, 1.0),
                                      "log factor scale s_c of class c's items (s_K = 1)", bounds=LOG_SD_BOUNDS,
                                      at_bound=SCALE_AT_BOUND))
        if spec.item_logits:
            free.append(ParameterInfo("gamma", (dims.ITEM, dims.CLASS_LOGIT), pm.Normal.dist(0.0, 2.5),
                                      "item intercepts gamma_ci of the class logits, eq. (44)",
                                      bounds=(-15.0, 15.0), at_bound="An item's class logit at its bound: the "
                                      "item (almost) always belongs to one class."))
        else:
            free += self.logits_block.fixed_parameters()
        free += [ParameterInfo(p.name, p.dims, p.prior, p.title + ", eq. (39)", p.bounds,
                               SD_AT_BOUND if p.name == "chol_log_diag" else p.at_bound)
                 for p in self.logits_block.random_parameters()]
        self.free = free
        self.register(priors)
        return self

    @property
    def integration_dim(self) -> int:
        return 1 + self.dim

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        return (ClassVariable("C", dims.CLASS, self.spec.n_classes, (dims.PERSON,), "class_share",
                              label="item-level class (expected share of items per person)",
                              logit_variance="psi", logit_intercept=None if self.spec.item_logits else "alpha"),)

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        coords = {dims.CLASS: list(range(1, k + 1)),
                  dims.PERSON: list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons)),
                  dims.ITEM: [it.name for it in d.items]}
        coords.update(self.thresholds.coords())
        coords[dims.RESPONSE] = [f"{it.name}#{c:g}" if isinstance(c, (int, float, np.number)) else
                                 f"{it.name}#{c}" for it in d.items for c in it.categories]
        coords.update(self.logits_block.coords())
        return coords

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        k, spec = self.spec.n_classes, self.spec
        chol = self.logits_block.chol(p)  # adds ``psi``
        q = {"tau": p["tau"], "lambda": p["lambda"], "log_eta_scale": p.get("log_eta_scale"),
             "alpha": p.get("alpha"), "gamma": p.get("gamma"), "chol": chol}
        self.observe(q, self._unit_loglik)
        lt = self.likelihood_tensors
        pm.Deterministic("class_share", self._class_share(lt), dims=(dims.CLASS,))
        self.thresholds.item_prob(p["tau"], spec.link)
        self.reported = [*self.thresholds.reported(), Reported("lambda", "Factor loadings lambda (eq. 38)")]
        if spec.factor_variance == "class":
            var = pt.concatenate([pt.exp(2.0 * p["log_eta_scale"]), pt.ones((1,))])
            pm.Deterministic("eta_variance", var, dims=(dims.CLASS,))
            self.reported.append(Reported("eta_variance", "Factor variance s_c^2 of class c's items (s_K = 1)"))
        if spec.item_logits:
            self.reported.append(Reported("gamma", "Item intercepts of the class logits gamma_ci (eq. 44)"))
        else:
            self.reported.append(Reported("alpha", "Means of the class logits alpha_cj (eq. 39)"))
        self.reported.append(Reported("psi", "Variances/covariances of alpha_cj (person level)", variance=True))
        if k == 2:
            psi = chol[0, 0] ** 2
            pm.Deterministic("alpha_icc", psi / (psi + np.pi**2 / 3))
            self.reported.append(Reported("alpha_icc", "ICC of alpha_1j, psi / (psi + pi^2/3)"))
        self.reported.append(Reported("class_share", "Mean membership E P(C_ij = c)"))

    def _loadings(self, q):
        """(K, P) effective loadings lambda_ic s_c."""
        lam = q["lambda"]
        k = self.spec.n_classes
        if lam.ndim == 1:
            lam = pt.repeat(lam[None], k, axis=0)
        if q.get("log_eta_scale") is not None:
            scale = pt.exp(pt.concatenate([q["log_eta_scale"], pt.zeros((1,))]))
            lam = lam * scale[:, None]
        return lam

    def _log_pi(self, q, z):
        """(Q, P or 1, K) log P(C_ij = c | alpha_j) at membership nodes z (Q, K-1): alpha_j =
        alpha + L z (E alpha_j = 0 with item logits, which add gamma_ci per item)."""
        logits = pt.dot(z, q["chol"].T)[:, None, :]  # (Q, 1, K-1)
        if q.get("gamma") is not None:
            logits = logits + q["gamma"][None]
        else:
            logits = logits + q["alpha"][None, None, :]
        return class_log_prior(logits)

    def _tables(self, q, u):
        """log pi (Q, ., K), log f (Q, K, P, 2), log M (Q, P, 2) at product nodes u (1, Q, 1 + K-1)."""
        eta, z = u[0, :, 0], u[0, :, 1:]
        log_f = binary_log_probs(q["tau"], self._loadings(q), eta, self.spec.link)
        log_pi = self._log_pi(q, z)
        return log_pi, log_f, node_log_table(log_pi, log_f)

    def _integral(self, q):
        # (eta_j, z_j) ~ N(0, I): the loadings and L carry the scales, so the nodes are constants
        return integrate(lambda u: node_logliks(self.ind, self._tables(q, u)[2]), self.spec.integration,
                         pt.eye(1 + self.dim))

    def _unit_loglik(self, q):
        return self._integral(q).loglik

    def item_class_graph(self, q):
        """(N, P, K) P(C_ij = c | y_j)."""
        integral = self._integral(q)
        log_pi, log_f, log_m = self._tables(q, integral.nodes)
        return item_class_posterior(self.ind3, self.data.observed.astype(float), log_pi, log_f, log_m,
                                    integral.log_post)

    def membership_graphs(self, q):
        """{"C": (N, K)} the expected share of the person's items in class c, mean_i P(C_ij = c | y_j)."""
        return {"C": pt.mean(self.item_class_graph(q), axis=1)}

    def item_class_probs(self, theta) -> np.ndarray:
        """(N, P, K) P(C_ij = c | y_j) at a flat raw parameter vector (e.g. ``res.theta``)."""
        from bayesmix.fit.compiled import compiled, function

        comp = compiled(self)

        def build():
            graph = comp._to_theta([self.item_class_graph(self.likelihood_tensors)])
            return function([comp.theta], graph, on_unused_input="ignore")

        return np.asarray(comp._call("fma_gom_item_class", build, theta)[0])

    def _class_share(self, q):
        z, logw = share_integration(self.dim).nodes(self.dim)
        pi = pt.exp(self._log_pi(q, pt.as_tensor(z)))  # (Q, P or 1, K)
        return pt.sum(np.exp(logw)[:, None] * pt.mean(pi, axis=1), axis=0)

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Perturbed marginal thresholds (as the LCA), loadings U(0.5, 1.5), class logits
        near 0, sd of alpha_j from U(1, 3) (as the GoM)."""
        k, n_items, spec = self.spec.n_classes, len(self.data.items), self.spec
        start = dict(self.thresholds.start(rng))
        shape = (n_items,) if spec.loadings == "invariant" else (k, n_items)
        start["lambda"] = rng.uniform(0.5, 1.5, size=shape)
        if spec.factor_variance == "class":
            start["log_eta_scale"] = rng.normal(0.0, 0.2, size=k - 1)
        if spec.item_logits:
            start["gamma"] = rng.normal(0.0, 0.1, size=(n_items, k - 1))
        else:
            start.update(self.logits_block.start_fixed(rng))
        start["chol_log_diag"] = np.log(rng.uniform(*START_SD, size=k - 1))
        if k > 2:
            start["chol_offdiag"] = np.zeros((k - 1) * (k - 2) // 2)
        return start

    def class_signature(self, values):
        """Per class: item response probabilities F(-tau) at eta = 0."""
        return {"C": self.thresholds.signature(values)}

    def profile_table(self, natural):
        if "item_prob" not in natural:
            return super().profile_table(natural)
        return self.thresholds.profile_table(natural["item_prob"])

    def permute_classes(self, values, perms):
        """As the GoM (tau, alpha, Psi), plus: class-specific loadings move with their class;
        the item logits gamma (P, K-1) map as alpha; the log factor scales are reference-coded
        (log s_K = 0): l' = A l, and the invariant loadings absorb the new reference's old scale."""
        perm = self._perm_dict(perms)["C"]
        out = self.logits_block.permute(self.thresholds.permute(dict(values), perm), perm)
        a_red = reference_map(perm)
        if "gamma" in values:
            out["gamma"] = np.asarray(values["gamma"]) @ a_red.T
        if "lambda" in values and self.spec.loadings == "class":
            out["lambda"] = np.take(values["lambda"], perm, axis=-2)
        if "log_eta_scale" in values:
            log_s = np.asarray(values["log_eta_scale"])
            full = np.concatenate([log_s, np.zeros(log_s.shape[:-1] + (1,))], axis=-1)
            out["log_eta_scale"] = log_s @ a_red.T
            out["lambda"] = np.asarray(values["lambda"]) * np.exp(full[..., perm[-1]])[..., None]
        return out

    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        d, k = self.data, self.spec.n_classes
        y, c_item = simulate_fma_gom(natural, d.n_persons, len(d.items), self.spec.link, rng)
        y[~d.observed] = np.nan
        counts = np.stack([(c_item == c).sum(axis=1) for c in range(k)], axis=1)
        return y, counts.argmax(axis=1)


def simulate_fma_gom(natural, n, n_items, link, rng):
    """(y (N, P), C_ij (N, P) 0-based) drawn at natural values ``tau`` (K, P), ``lambda`` (P,)
    or (K, P), optional ``eta_variance`` (K,), ``psi`` (K-1, K-1) and ``alpha`` (K-1,) or
    ``gamma`` (P, K-1)."""
    tau = np.asarray(natural["tau"], float)
    k = tau.shape[0]
    lam = np.broadcast_to(np.asarray(natural["lambda"], float), (k, n_items))
    if "eta_variance" in natural:
        lam = lam * np.sqrt(np.asarray(natural["eta_variance"], float))[:, None]
    eta = rng.standard_normal(n)
    a = rng.multivariate_normal(np.zeros(k - 1), np.atleast_2d(natural["psi"]), size=n)  # (N, K-1)
    fixed = np.asarray(natural["gamma"], float) if "gamma" in natural else np.asarray(natural["alpha"], float)[None]
    logits = a[:, None, :] + np.broadcast_to(fixed, (n_items, k - 1))[None]  # (N, P, K-1)
    pi = special.softmax(np.concatenate([logits, np.zeros((n, n_items, 1))], axis=-1), axis=-1)  # (N, P, K)
    c_item = (pi.cumsum(axis=-1) <= rng.random((n, n_items, 1))).sum(axis=-1).clip(0, k - 1)
    lin = np.take_along_axis(lam.T[None] * eta[:, None, None] - tau.T[None], c_item[..., None], -1)[..., 0]
    p1 = special.expit(lin) if link == "logit" else stats.norm.cdf(lin)
    return (rng.random((n, n_items)) < p1).astype(float), c_item


def example(two_level: bool = False) -> FMAGoMModel | None:
    """A tiny two-class FMA-GoM (48 persons, 4 binary items, class-specific factor
    variance) for the registry tests (None for two_level: single level)."""
    if two_level:
        return None
    return fma_gom(example_data(), ["y1", "y2", "y3", "y4"], 2, factor_variance="class")
