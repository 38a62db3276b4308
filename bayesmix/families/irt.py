"""The 3PL guessing IRT model as a special case of the FMA-GoM (paper section 9, eq. 42-50).

    P(y_ij = 1 | eta_j) = g_i + (1 - g_i) Psi(a_i (eta_j - b_i)),   eta_j ~ N(0, 1)     (42)

integrated per person over eta_j by quadrature (default 61 trapezoid points). Two
parameterisations of one likelihood:

* ``"direct"``: free gamma_i = logit g_i, a_i, b_i (``core.items.guessing_log_prob``);
* ``"fma_gom"``: the constrained two-class FMA-GoM of eq. (43)-(47). Class 1 is the
  guessing class, with the constraints alpha_1j = 0, lambda_i1 = 0 and tau_i1 = 15
  (paper sign) held as structural constants in the graph, not as parameters at a
  bound: P(y = 1 | C_ij = 1) = Psi(15) (eq. 45; 1 - 3.7e-51 in probit, 1 - 3.1e-7 in
  logit). Class 2 is ability-driven: P(y = 1 | C_ij = 2) = Psi(lambda_i2 eta_j - tau_i2)
  in the project's threshold sign (tau here = -tau of the paper, ``blocks.Thresholds``),
  eq. (46); P(C_ij = 1) = expit(gamma_i), eq. (47). Free: ``tau`` (class 2), ``lambda``,
  ``gamma``. The node table is the FMA-GoM's (``fma_gom.node_log_table``).

Both report g, a, b as Deterministics by eq. (48)-(50) (g = expit(gamma), a = lambda_i2,
b = -tau_paper / lambda = tau / lambda here), so ``fit_ml`` gives their delta-method SEs.
In probit the two LLs agree to ~1e-50 per response; in logit the fma_gom form gives a
guessed response a 3.1e-7 chance of being wrong, so its LL is lower by at most about
3.1e-7 g_i per incorrect response.

``guessing=False`` is the 2PL (g_i = 0, direct only; ``irt_2pl``).

Class variable: C_ij, the item-level class (1 = guessing, 2 = ability-driven); its
labels are fixed by the structure (class 1 answers correctly), so it is not
exchangeable (``ClassVariable.exchangeable=False``): nothing relabels it, and
``permute_classes`` accepts only the identity.
Memberships: the person's expected share of guessed items, mean_i P(C_ij = c | y_j).
The 2PL has one class (a K = 1 class variable).
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
from bayesmix.core.quadrature import Integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.blocks import TAU_BOUND
from bayesmix.families.examples import example_data
from bayesmix.families.fma_gom import (
    LOADING_AT_BOUND,
    LOADING_BOUND,
    binary_indicators,
    binary_log_probs,
    check_integration_rule,
    item_class_posterior,
    node_log_table,
    node_logliks,
)

PARAMETERIZATIONS = ("direct", "fma_gom")
GUESS_TAU = -TAU_BOUND  # tau_i1 = 15 of the paper in the project's sign: P(y = 1 | C = 1) = F(15)
GAMMA_AT_BOUND = "A guessing logit at its bound: g_i at (near) 0 or 1 (guessing is weakly identified)."
B_AT_BOUND = "A difficulty at its bound: the item's curve is flat in eta_j (a near 0) or beyond the sample."


@dataclass(frozen=True)
class IRTSpec:
    """Specification of a 2PL / 3PL model (frozen; stored with every fit)."""

    link: str = "logit"
    parameterization: str = "direct"
    guessing: bool = True
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()


def irt_3pl(data, items=None, *, link: str = "logit", parameterization: str = "direct", guessing: bool = True,
            integration="trapezoid", priors: dict | None = None) -> "IRTModel":
    """3PL (eq. 42; the constrained FMA-GoM of eq. 43-47 with ``parameterization="fma_gom"``).

    Parameters
    ----------
    data : pandas.DataFrame or PreparedData (binary items, missing cells allowed)
    items : list of str (``None``: every column)
    link : {"logit", "probit"}
    parameterization : {"direct", "fma_gom"}
    guessing : bool
        False: the 2PL (direct parameterisation only).
    integration : str, dict or Integration (fixed rule; default 61 trapezoid points)
    priors : dict, optional (names: ``a``, ``b``, ``gamma`` or ``tau``, ``lambda``, ``gamma``)
    """
    core_items.check_link(link)
    if parameterization not in PARAMETERIZATIONS:
        raise SpecificationError(f"parameterization: got {parameterization!r}; give 'direct' (g, a, b of eq. 42) "
                                 "or 'fma_gom' (the constrained FMA-GoM of eq. 43-47).")
    if not isinstance(guessing, (bool, np.bool_)):
        raise SpecificationError(f"guessing: got {guessing!r}; give True (3PL) or False (2PL).")
    if not guessing and parameterization == "fma_gom":
        raise SpecificationError("parameterization: got 'fma_gom' with guessing=False; without a guessing class "
                                 "the model is a one-class 2PL: use parameterization='direct'.")
    integration = check_integration_rule(integration, "irt_3pl")
    prepared = data if isinstance(data, PreparedData) else prepare_wide(
        data, list(data.columns) if items is None else items, item_types="binary")
    if prepared.cluster_idx is not None or prepared.covariates.shape[1]:
        raise SpecificationError("data: got a cluster or covariates; irt_3pl is a single-level model of the items "
                                 "alone: prepare the data without them.")
    spec = IRTSpec(link=link, parameterization=parameterization, guessing=bool(guessing), integration=integration,
                   prior_names=tuple(sorted(priors or {})))
    return IRTModel.build(prepared, spec, priors)


def irt_2pl(data, items=None, *, link: str = "logit", integration="trapezoid", priors=None) -> "IRTModel":
    """2PL: P(y_ij = 1) = Psi(a_i (eta_j - b_i)) (eq. 42 with g_i = 0)."""
    return irt_3pl(data, items, link=link, guessing=False, integration=integration, priors=priors)


class IRTModel(FamilyModel):
    """A built 2PL / 3PL."""

    @classmethod
    def build(cls, data: PreparedData, spec: IRTSpec, priors: dict | None) -> "IRTModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="irt_3pl")
        self.ind3 = binary_indicators(data, "irt_3pl")
        self.ind = self.ind3.reshape(data.n_persons, -1)
        self.k = 2 if spec.guessing else 1
        self.p_obs = np.nanmean(np.where(data.observed, data.y, np.nan), axis=0)
        self.model.add_coord(dims.PERSON, list(data.row_index) if data.row_index.is_unique
                             else list(range(data.n_persons)))
        self.model.add_coord(dims.ITEM, [it.name for it in data.items])
        self.model.add_coord(dims.CLASS, list(range(1, self.k + 1)))
        item = (dims.ITEM,)
        gamma = ParameterInfo("gamma", item, pm.Normal.dist(-1.5, 2.0), "guessing logits gamma_i = logit g_i, eq. (47)",
                              bounds=(-TAU_BOUND, TAU_BOUND), at_bound=GAMMA_AT_BOUND)
        if spec.parameterization == "direct":
            free = [ParameterInfo("a", item, pm.Normal.dist(1.0, 2.0), "discriminations a_i, eq. (42)",
                                  bounds=(-LOADING_BOUND, LOADING_BOUND), at_bound=LOADING_AT_BOUND),
                    ParameterInfo("b", item, pm.Normal.dist(0.0, 3.0), "difficulties b_i, eq. (42)",
                                  bounds=(-TAU_BOUND, TAU_BOUND), at_bound=B_AT_BOUND)]
        else:
            free = [ParameterInfo("tau", item, pm.Normal.dist(0.0, 5.0), "thresholds tau_i2 of the ability class, "
                                  "eq. (46) (project sign)", bounds=(-TAU_BOUND, TAU_BOUND),
                                  at_bound="A threshold at its bound: the ability class answers deterministically."),
                    ParameterInfo("lambda", item, pm.Normal.dist(1.0, 2.0), "loadings lambda_i2, eq. (46)",
                                  bounds=(-LOADING_BOUND, LOADING_BOUND), at_bound=LOADING_AT_BOUND)]
        self.free = free + ([gamma] if spec.guessing else [])
        self.register(priors)
        return self

    @property
    def integration_dim(self) -> int:
        return 1

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        label = "item-level class C_ij (1 = guessing, 2 = ability)" if self.k == 2 else "one class (2PL)"
        return (ClassVariable("C", dims.CLASS, self.k, (dims.PERSON,), "class_share", label=label,
                              exchangeable=False),)

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        guess = self.spec.guessing
        if self.spec.parameterization == "direct":
            a, b = p["a"], p["b"]
            q = {"a": a, "b": b, "gamma": p.get("gamma")}
            if guess:
                pm.Deterministic("g", pt.sigmoid(p["gamma"]), dims=dims.ITEM)
            self.reported = [Reported("a", "Discriminations a_i (eq. 42)"), Reported("b", "Difficulties b_i (eq. 42)")]
            self.reported += [Reported("gamma", "Guessing logits gamma_i"), Reported("g", "Guessing g_i (eq. 48)")] \
                if guess else []
        else:
            q = {"tau": p["tau"], "lambda": p["lambda"], "gamma": p["gamma"]}
            pm.Deterministic("g", pt.sigmoid(p["gamma"]), dims=dims.ITEM)  # (48)
            pm.Deterministic("a", p["lambda"], dims=dims.ITEM)  # (49)
            pm.Deterministic("b", p["tau"] / p["lambda"], dims=dims.ITEM)  # (50): -tau_paper / lambda
            self.reported = [Reported("tau", "Thresholds tau_i2 (eq. 46, project sign = -paper)"),
                             Reported("lambda", "Loadings lambda_i2 (eq. 46)"),
                             Reported("gamma", "Class logits gamma_i of the guessing class (eq. 47)"),
                             Reported("g", "Guessing g_i (eq. 48)"), Reported("a", "Discriminations a_i (eq. 49)"),
                             Reported("b", "Difficulties b_i (eq. 50)")]
        self.observe(q, self._unit_loglik)
        share = pt.stack([pt.mean(pt.sigmoid(p["gamma"])), 1.0 - pt.mean(pt.sigmoid(p["gamma"]))]) if guess \
            else pt.ones((1,))
        pm.Deterministic("class_share", share, dims=dims.CLASS)
        self.reported.append(Reported("class_share", "Mean share of guessed responses E P(C_ij = c)"))

    def _tables(self, q, eta):
        """log pi (1, P, K), log f (Q, K, P, 2), log M (Q, P, 2) at nodes eta (Q,)."""
        n_items = len(self.data.items)
        if self.spec.parameterization == "fma_gom":
            tau = pt.stack([pt.fill(q["tau"], GUESS_TAU), q["tau"]])  # tau_i1 = 15 (paper sign), constant
            lam = pt.stack([pt.zeros_like(q["lambda"]), q["lambda"]])  # lambda_i1 = 0, constant
            log_f = binary_log_probs(tau, lam, eta, self.spec.link)
            log_pi = class_log_prior(q["gamma"][None, :, None])  # alpha_1j = 0: (1, P, 2)
            return log_pi, log_f, node_log_table(log_pi, log_f)
        lin = q["a"][None, :] * (eta[:, None] - q["b"][None, :])  # (Q, P)
        log_f2 = pt.stack([core_items.log_cdf(-lin, self.spec.link), core_items.log_cdf(lin, self.spec.link)], -1)
        if not self.spec.guessing:
            return pt.zeros((1, n_items, 1)), log_f2[:, None], log_f2
        # log(g + (1 - g) F) with log g = -softplus(-gamma), log(1 - g) = -softplus(gamma)
        log_g, log_1mg = -pt.softplus(-q["gamma"]), -pt.softplus(q["gamma"])
        log_m = pt.stack([log_1mg[None] + log_f2[..., 0], pt.logaddexp(log_g[None], log_1mg[None] + log_f2[..., 1])],
                         axis=-1)
        log_pi = pt.stack([log_g, log_1mg], axis=-1)[None]  # (1, P, 2)
        ones = pt.zeros_like(log_f2)  # the guessing class: P(y = 1) = 1, P(y = 0) = 0 (log -inf)
        log_f_guess = pt.set_subtensor(ones[..., 0], -np.inf)
        return log_pi, pt.stack([log_f_guess, log_f2], axis=1), log_m

    def _integral(self, q):
        return integrate(lambda u: node_logliks(self.ind, self._tables(q, u[0, :, 0])[2]), self.spec.integration,
                         pt.eye(1))

    def _unit_loglik(self, q):
        return self._integral(q).loglik

    def item_class_graph(self, q):
        """(N, P, K) P(C_ij = c | y_j) (K = 2: guessing, ability)."""
        integral = self._integral(q)
        log_pi, log_f, log_m = self._tables(q, integral.nodes[0, :, 0])
        return item_class_posterior(self.ind3, self.data.observed.astype(float), log_pi, log_f, log_m,
                                    integral.log_post)

    def membership_graphs(self, q):
        if self.k == 1:
            return {"C": pt.ones((self.data.n_persons, 1))}
        return {"C": pt.mean(self.item_class_graph(q), axis=1)}

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """a ~ U(0.7, 1.5), b from the items' marginal proportions (probit approximation
        P(y = 1) = Phi(-a b / sqrt(1 + a^2)), with the logistic's 1.7 scale), g near 0.1."""
        n_items = len(self.data.items)
        a = rng.uniform(0.7, 1.5, size=n_items)
        scale = 1.7 if self.spec.link == "logit" else 1.0
        p = np.clip(self.p_obs, 0.02, 0.98)
        b = np.clip(-stats.norm.ppf(p) * np.sqrt(1 + (a / scale) ** 2) / (a / scale), -4, 4) + rng.normal(0, 0.2, n_items)
        out = {"a": a, "b": b} if self.spec.parameterization == "direct" else {"tau": a * b, "lambda": a}
        if self.spec.guessing:
            out["gamma"] = special.logit(0.1) + rng.normal(0.0, 0.3, size=n_items)
        return out

    def class_signature(self, values):
        """None: the classes are structural (``exchangeable=False``), nothing is relabelled."""
        return {}

    def permute_classes(self, values, perms):
        perm = self._perm_dict(perms).get("C", np.arange(self.k))
        if not np.array_equal(perm, np.arange(self.k)):
            raise SpecificationError(f"perms: got {list(perm)}; the 3PL's classes are structural (1 = guessing, "
                                     "2 = ability) and cannot be relabelled.")
        return dict(values)

    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Responses from eq. (42) by the class draw of eq. (45)-(47); the person's class
        is the majority of its items' classes (0 = guessing)."""
        d = self.data
        y, c_item = simulate_3pl(natural, d.n_persons, self.spec.link, rng)
        y[~d.observed] = np.nan
        return y, (c_item.mean(axis=1) < 0.5).astype(int) if self.k == 2 else np.zeros(d.n_persons, int)


def simulate_3pl(natural, n, link, rng):
    """(y (N, P), C_ij (N, P) 0-based: 0 = guessed) at natural ``a``, ``b`` and ``g`` (absent: 2PL)."""
    a, b = (np.asarray(natural[k], float) for k in ("a", "b"))
    g = np.asarray(natural.get("g", np.zeros_like(a)), float)
    eta = rng.standard_normal(n)
    lin = a[None] * (eta[:, None] - b[None])
    p = special.expit(lin) if link == "logit" else stats.norm.cdf(lin)
    guessed = rng.random((n, a.size)) < g[None]
    y = np.where(guessed, 1.0, (rng.random((n, a.size)) < p).astype(float))
    return y, np.where(guessed, 0, 1)


def example(two_level: bool = False) -> IRTModel | None:
    """A tiny 3PL (48 persons, 4 binary items) for the registry tests (single level)."""
    if two_level:
        return None
    return irt_3pl(example_data(), ["y1", "y2", "y3", "y4"], integration=Integration(n_points=21))
