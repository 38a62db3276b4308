"""Latent transition analysis, single- and two-level (paper sections 3 and 4).

A person has a latent class C_t at each occasion t = 1..T (K classes each).
Measurement, eq. (6) with no factors (eq. 11 for binary items): given C_t = k,
the items of occasion t are independent, categorical with thresholds ``tau``
(logit or probit, as the LCA) or normal with means ``nu`` and variances
``theta``; with ``invariance=True`` (default) one set of item parameters serves
every occasion.

Class model, reference class K (alpha_K = gamma_K. = gamma_.K = 0):

* eq. (8): logit P(C_1 = k) = alpha_1k + beta_1k x_1;
* eq. (9): logit P(C_t = k | C_(t-1) = j) = alpha_tk + gamma_kj + beta_tk x_t, with
  ``gamma_{t-1}_{t}`` (K-1, K-1), rows the class k of C_t and columns the
  earlier class j, as the paper's gamma_dc; ``dependence="full"``: C_t depends
  on every earlier C_s, eq. (9) with all of them as predictors, a
  ``gamma_{s}_{t}`` for each s < t (main effects, the recursive system of logit
  models of section 3). x_t are the occasion's covariates.

The likelihood sums the K^T class paths by the forward recursion
(``core.chains.markov_loglik``; by explicit enumeration for full dependence).

Two-level (section 4, T = 2, any K >= 2): the class-logit intercepts are
cluster random effects, alpha_1j = alpha_1 + u_1j and eq. (15)
alpha_2j = mu + beta alpha_1j + eps_j (vectors of the K-1 logits, beta a
(K-1, K-1) matrix for K > 2), integrated per cluster by the model's rule over
2(K-1) dimensions (``families/lta_between.py``: the structural Cholesky factor,
relabelling).

Free parameters: ``tau`` / ``tau_raw``, ``nu``, ``log_theta`` (as the LCA),
``alpha_1``, ``beta_1``, ``alpha_t`` (``mu`` for t = 2 when two-level),
``beta_t``, ``gamma_s_t``, and two-level ``beta``, ``log_sd`` (log Cholesky
diagonals of Var(alpha_1j) and Var(eps_j)) and, for K > 2, ``chol_offdiag``. Deterministics: ``var_alpha1``, ``var_eps``, ``psi``
(covariance of alpha_1j, alpha_2j), ``alpha_2`` (E alpha_2j), ``class_share_Ct``
(model-implied P(C_t = k)), ``transition_prob`` (P(C_t = k | C_(t-1) = j), averaged
over persons and random effects), ``item_prob``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.quadrature import as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import BayesmixWarning, SpecificationError
from bayesmix.families import lta_spec as ls
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.levels import check_not_constant
from bayesmix.families.blocks import (LOGIT_START_SD, TAU_BOUND, ClassLogits, NormalItems, Thresholds,
                                      check_n_classes, measurement_tensors)
from bayesmix.families.lta_between import BetweenIntercepts
from bayesmix.families.lta_graph import LTAGraph
from bayesmix.families.lta_spec import LTASpec

INTERCEPT_AT_BOUND = ("A class-logit intercept at its bound: a class (nearly) never entered at that occasion, "
                      "or, for t > 1, never reached from the reference earlier class.")
# Intercepts are bounded at +-TAU_BOUND as thresholds are (decision 9; Mplus bounds
# logits at +-15): a transition of probability 0 from the reference class would
# otherwise drift to -25 or beyond unflagged, with a meaningless SE.
# gamma_kj is a contrast of two rows' logits (eq. 9): each row's logit is kept within
# +-TAU_BOUND, so the contrast needs twice that. A transition that never happens from
# one earlier class but does from another (alpha_2k at -15, alpha_2k + gamma_kj of
# order 1) is then reachable; with +-15 the K = 3 EPI fit stopped 0.02 below EM's LL.
GAMMA_BOUND = 2 * TAU_BOUND
GAMMA_AT_BOUND = ("A transition logit gamma at its bound: a transition that (nearly) never or always happens "
                  "for persons of that earlier class.")


def lta(data, items, n_classes: int = 2, *, person=None, time=None, invariance: bool = True,
        dependence: str = "markov", item_types=None, link: str = "logit", covariates=None, cluster=None,
        random_intercepts: bool | None = None, integration="trapezoid", priors: dict | None = None) -> "LTAModel":
    """Latent transition analysis (eqs. 6-9; two-level: eqs. 10, 15).

    Parameters
    ----------
    data : pandas.DataFrame
        Wide (one row per person; ``items`` a dict occasion -> columns, or a list
        of column lists) or long (one row per person and occasion; ``items`` the
        item columns, with ``person`` and ``time``).
    n_classes : int
        Classes K >= 1 at every occasion.
    person, time : str, optional
        Long data: the person and occasion columns (occasions sorted by value;
        a person without a row at an occasion has it missing, full information).
    invariance : bool
        One set of item parameters for all occasions (the same items in the
        same order at each); False: occasion-specific parameters.
    dependence : {"markov", "full"}
        C_t on C_(t-1) only, or on every earlier C_s (eq. 9).
    covariates : list or dict, optional
        Predictors of the class logits: a list (the same columns at every
        occasion; in long data the occasion's value), or a dict occasion ->
        columns (occasion-specific; occasion 1's enter eq. 8, the others eq. 9).
    item_types, link :
        As ``bayesmix.lca`` (item_types keyed by wide column, or by item name for
        long data); ``link`` of the categorical items, "logit" or "probit".
    cluster : str, optional
        Cluster column: two-level with random intercepts (T = 2) by default.
    random_intercepts : bool, optional
        Cluster random intercepts alpha_1j, alpha_2j (eq. 15); False with a
        cluster sums the persons' log-likelihoods per cluster.
    integration : str, dict or Integration
        Rule of the 2(K-1)-dimensional cluster integral (default: trapezoid with
        31 x 31 points for K = 2, 9 per dimension for K = 3; checked after the fit).
    priors : dict, optional
        Parameter name -> ``pm.X.dist(...)`` replacing a default prior (NUTS only).
    """
    n_classes = check_n_classes(n_classes)
    core_items.check_link(link)
    dependence = ls.check_dependence(dependence)
    integration = as_integration(integration)
    if not isinstance(invariance, bool):
        raise SpecificationError(f"invariance: got {invariance!r}; give True or False.")
    if (person is None) != (time is None):
        raise SpecificationError(f"person/time: got person={person!r}, time={time!r}; long data need both "
                                 "columns, wide data neither.")
    if person is not None:
        data, labels, cols, names, covs, item_types = ls.long_to_wide(data, items, person, time, covariates,
                                                                      cluster, item_types)
    else:
        labels, cols = ls.wide_items(items)
        names = cols[0]
        covs = ls.occasion_covariates(covariates, labels)
    if random_intercepts is None:
        random_intercepts = cluster is not None and n_classes > 1
    if random_intercepts:
        if cluster is None:
            raise SpecificationError("random_intercepts: got True without a cluster; give cluster='<column>' "
                                     "or random_intercepts=False.")
        ls.check_two_level(n_classes, len(labels), dependence)
    all_covs = list(dict.fromkeys(c for cs in covs for c in cs))
    prepared = prepare_wide(data, [c for cs in cols for c in cs], item_types=item_types, cluster=cluster,
                            covariates=all_covs or None)
    if n_classes > 1:  # a constant predictor is confounded with the intercept of its occasion's logits
        for t, cs in enumerate(covs):
            pos = [all_covs.index(c) for c in cs]
            check_not_constant(cs, prepared.covariates[:, pos], "persons",
                               f"the class-logit intercept of C{t + 1} (eq. {8 if t == 0 else 9})")
    spec = LTASpec(n_classes=n_classes, occasions=labels, columns=cols, item_names=tuple(names),
                   covariates=covs, invariance=invariance, dependence=dependence, link=link,
                   random_intercepts=bool(random_intercepts), integration=integration,
                   prior_names=tuple(sorted(priors or {})))
    return LTAModel.build(prepared, spec, priors)


class LTAModel(LTAGraph, FamilyModel):
    """A built LTA; fit with ``bayesmix.fit_ml`` or ``bayesmix.sample``."""

    @classmethod
    def build(cls, data: PreparedData, spec: LTASpec, priors: dict | None) -> "LTAModel":
        self = cls(model=pm.Model(), data=data, spec=spec, family="lta")
        self.block = ls.measurement_block(data, spec)  # raises before any graph
        self._arrays()
        for name, values in self._coords().items():
            self.model.add_coord(name, values)
        self.free = self._parameters()
        self.register(priors)
        return self

    # ------------------------------------------------------------------ layout
    @property
    def n_t(self) -> int:
        return self.spec.n_occasions

    @property
    def integration_dim(self) -> int:
        return self.between.dim if self.spec.random_intercepts else 0

    def _deps(self, t: int) -> list[int]:
        """Earlier occasions (0-based) whose class enters C_t's logits (eq. 9)."""
        return list(range(t)) if self.spec.dependence == "full" else [t - 1]

    def _gammas(self, t: int) -> list[str]:
        return [f"gamma_{s + 1}_{t + 1}" for s in self._deps(t)]

    def _arrays(self):
        d, k, b = self.data, self.spec.n_classes, self.block
        cat = b.categorical
        self.cat_items = [it for it, c in zip(b.items, cat) if c]
        self.cont_items = [it for it, c in zip(b.items, cat) if not c]
        self.thresholds = self.normal = None
        if self.cat_items:
            codes, obs = b.values[:, :, cat].astype(int), b.observed[:, :, cat]
            counts = [np.bincount(codes[:, :, p][obs[:, :, p]], minlength=it.n_categories)
                      for p, it in enumerate(self.cat_items)]
            self.thresholds = Thresholds(self.cat_items, counts, self.spec.link, k)
            m = self.thresholds.m_max
            # rows ordered person-major (n * T + t): one product gives (N, T, K)
            self.indicators = np.stack([core_items.indicator_matrix(codes[t], obs[t], m) for t in range(self.n_t)],
                                       axis=1).reshape(d.n_persons * self.n_t, -1)
        if self.cont_items:
            self.y_cont, self.obs_cont = b.values[:, :, ~cat], b.observed[:, :, ~cat]
            yc = np.where(self.obs_cont, self.y_cont, np.nan).reshape(-1, len(self.cont_items))
            self.normal = NormalItems("nu", dims.CONTINUOUS_ITEM, (np.nanmean(yc, 0), np.nanstd(yc, 0) + 1e-12), k)
        self.x = [d.covariates[:, idx] for idx in ls.covariate_index(d, self.spec)]
        two = self.spec.random_intercepts
        self.between = BetweenIntercepts(k) if two else None
        self.logits = [ClassLogits(k, self.x[t].shape[1], intercept=("mu" if two and t == 1 else f"alpha_{t + 1}"),
                                   slope=f"beta_{t + 1}", covariate_dim=dims.per_occasion(dims.COVARIATE, t + 1),
                                   level_eq=("eq. 8" if t == 0 else "eq. 15" if two else "eq. 9") + f", C{t + 1}",
                                   symbol=f"C{t + 1}", intercept_bounds=(-TAU_BOUND, TAU_BOUND),
                                   at_bound=INTERCEPT_AT_BOUND) for t in range(self.n_t)]

    def _coords(self):
        d, k = self.data, self.spec.n_classes
        persons = list(d.row_index) if d.row_index.is_unique else list(range(d.n_persons))
        coords = {dims.CLASS: list(range(1, k + 1)), dims.PERSON: persons,
                  dims.OCCASION: list(self.spec.occasions)}
        if self.cat_items:
            coords[dims.ITEM] = [it.name for it in self.cat_items]
            coords.update(self.thresholds.coords())
            coords[dims.RESPONSE] = [f"{it.name}#{c}" for it in self.cat_items for c in it.categories]
        if self.cont_items:
            coords[dims.CONTINUOUS_ITEM] = [it.name for it in self.cont_items]
        if k > 1:
            coords[dims.CLASS_LOGIT] = list(range(1, k))
            coords[dims.CLASS_FROM_LOGIT] = list(range(1, k))
            for t, cols in enumerate(self.spec.covariates):
                if cols:
                    coords[dims.per_occasion(dims.COVARIATE, t + 1)] = list(cols)
        if self.n_t > 1:
            occ = self.spec.occasions
            coords[dims.TRANSITION] = [f"{occ[t - 1]}->{occ[t]}" for t in range(1, self.n_t)]
            coords[dims.CLASS_FROM] = list(range(1, k + 1))
        if d.cluster_idx is not None:
            coords[dims.CLUSTER] = [str(c) for c in d.cluster_labels]
        if self.spec.random_intercepts:
            coords.update(self.between.coords())
        return coords

    def _parameters(self) -> list[ParameterInfo]:
        free = self.thresholds.parameters() if self.cat_items else []
        if self.cont_items:
            free += [self.normal.mean_parameter(), self.normal.variance_parameter()]
        for t, block in enumerate(self.logits):
            free += block.fixed_parameters()
            if t and block.active:
                free += [ParameterInfo(g, (dims.CLASS_LOGIT, dims.CLASS_FROM_LOGIT), pm.Normal.dist(0.0, 3.0),
                                       f"effect of C{g.split('_')[1]} on the logits of C{t + 1}, eq. (9)",
                                       bounds=(-GAMMA_BOUND, GAMMA_BOUND), at_bound=GAMMA_AT_BOUND)
                         for g in self._gammas(t)]
        if self.spec.random_intercepts:
            free += self.between.parameters()
        return free

    # ------------------------------------------------------------------ graph
    def _build_graph(self, p: dict):
        k, chol = self.spec.n_classes, None
        tau, theta, reported = measurement_tensors(self.thresholds, self.normal, p)
        for t, block in enumerate(self.logits):
            reported += block.reported_fixed()
            if t and block.active:
                reported += [Reported(g, f"C{t + 1} ON C{g.split('_')[1]} (gamma, eq. 9)") for g in self._gammas(t)]
        if self.spec.random_intercepts:
            chol = self.between.chol(p)
            reported += self.between.reported()
        tensors = {"tau": tau, "nu": p.get("nu"), "theta": theta, "chol": chol}
        tensors.update({n: p[n] for n in self.free_names if n not in ("tau", "tau_raw", "nu", "log_theta", "log_sd",
                                                                        "chol_offdiag")})
        self.observe(tensors, self._unit_loglik)
        shares, pairs = self._prior_summaries(self.likelihood_tensors)
        for t, cv in enumerate(self.class_variables):
            pm.Deterministic(cv.share, shares[t], dims=(dims.CLASS,))
            reported.append(Reported(cv.share, f"Class proportions at occasion {self.spec.occasions[t]}"))
        if self.n_t > 1 and k > 1:
            pm.Deterministic("transition_prob", pairs / pt.sum(pairs, axis=-1, keepdims=True),
                             dims=(dims.TRANSITION, dims.CLASS_FROM, dims.CLASS))
            reported.append(Reported("transition_prob", "Transition probabilities P(C_t = class | C_(t-1) = class_from)"))
        if self.cat_items:
            self.thresholds.item_prob(tau, self.spec.link)
        self.reported = reported

    def membership_graphs(self, q):
        """{"C_t": (N, K)} posterior class probabilities P(C_t = k | data) for each
        occasion, integrating the random intercepts with the cluster's posterior."""
        log_emit = self._log_emit(q)
        names = [cv.name for cv in self.class_variables]
        if self.spec.n_classes == 1:
            return {n: pt.ones((self.data.n_persons, 1)) for n in names}
        if not self.spec.random_intercepts:
            marg = self._posterior_marginals(q, log_emit)[0]
        else:
            integral = self._integral(q, log_emit)
            u = integral.nodes[self.data.cluster_idx] if self.spec.integration.adaptive else integral.nodes
            at_nodes = self._posterior_marginals(q, log_emit, u)[0]  # (N, Q, T, K)
            w = pt.exp(integral.log_post)[self.data.cluster_idx]  # (N, Q)
            marg = pt.sum(w[:, :, None, None] * at_nodes, axis=1)
        return {n: marg[:, t, :] for t, n in enumerate(names)}

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        k, two = self.spec.n_classes, self.spec.random_intercepts
        return tuple(ClassVariable(f"C{t + 1}", dims.CLASS, k, (dims.PERSON,), f"class_share_C{t + 1}",
                                   group="C" if self.spec.invariance else "",
                                   label=f"latent class at occasion {occ}",
                                   logit_variance="psi" if two and t == 0 else None,
                                   logit_intercept="alpha_1" if k > 1 and t == 0 else None)
                     for t, occ in enumerate(self.spec.occasions))

    def analysis_lines(self):
        rows = super().analysis_lines()
        rows.insert(1, ("Number of occasions", self.n_t))
        rows += [("Measurement invariance", "yes" if self.spec.invariance else "no"),
                 ("Class dependence", "first-order Markov" if self.spec.dependence == "markov" or self.n_t < 3
                  else "full (C_t on every earlier C_s)")]
        return rows

    def summary_sections(self, res):
        """The transition matrices with SEs (``lta_derived.transition_lines``)."""
        if self.n_t < 2 or self.spec.n_classes < 2:
            return [], set()
        from bayesmix.families.lta_derived import transition_lines
        return transition_lines(res), {"transition_prob"}

    def profile_table(self, natural):
        if "item_prob" not in natural:
            return super().profile_table(natural)
        return self.thresholds.profile_table(natural["item_prob"])

    # ------------------------------------------------------------------ relabelling
    def _occasion_columns(self, t: int):
        """Threshold columns and continuous-item columns of occasion t's items
        (every column under invariance)."""
        owned = self.block.column_of[t] >= 0
        cat = self.block.categorical
        thr = np.flatnonzero(np.isin(self.thresholds.thr_item, np.flatnonzero(owned[cat]))) if self.cat_items else None
        cont = np.flatnonzero(owned[~cat]) if self.cont_items else None
        return thr, cont

    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Marginal thresholds and means perturbed class by class (``blocks``' policy),
        logits near 0, random-intercept sd 0.5 and beta 0."""
        start, k = {}, self.spec.n_classes
        if self.cat_items:
            start.update(self.thresholds.start(rng))
        if self.cont_items:
            start["nu"] = self.normal.start_mean(rng)
            start["log_theta"] = np.log(self.normal.sd**2)
        for t, block in enumerate(self.logits):
            start.update(block.start_fixed(rng))
            if t and block.active:
                start.update({g: rng.normal(0.0, LOGIT_START_SD, size=(k - 1, k - 1)) for g in self._gammas(t)})
        if self.spec.random_intercepts:
            start.update(self.between.start())
        return start

    def permute_classes(self, values, perms):
        """New class c of C_t is old class perm[c] (its group's permutation): item
        parameters, the logits of C_t (eq. 8/9, against the new reference) and the
        gamma columns of later occasions (the new reference earlier class moves its
        gamma into their intercepts); with random intercepts the sign of beta follows."""
        pd_ = self._perm_dict(perms)
        perm = [pd_[cv.relabel_group] for cv in self.class_variables]
        out = dict(values)
        if self.spec.invariance:
            if self.thresholds is not None:
                out = self.thresholds.permute(out, perm[0])
            if self.normal is not None:
                out = self.normal.permute(out, perm[0])
        else:
            for t in range(self.n_t):
                thr, cont = self._occasion_columns(t)
                for name, cols in (("tau", thr), ("tau_raw", thr), ("nu", cont)):
                    if name in values and cols is not None:
                        arr = np.array(out[name], dtype=float, copy=True)
                        arr[..., :, cols] = np.take(values[name][..., :, cols], perm[t], axis=-2)
                        out[name] = arr
        if self.spec.n_classes == 1:
            return out
        for t, block in enumerate(self.logits):  # C_t's own logits (to-axis)
            out = block.permute(out, perm[t], extra=self._gammas(t) if t else ())
        for t in range(1, self.n_t):  # the earlier class of each gamma (from-axis)
            for s, g in zip(self._deps(t), self._gammas(t)):
                gf = np.concatenate([out[g], np.zeros(out[g].shape[:-1] + (1,))], axis=-1)
                ref = gf[..., perm[s][-1]]
                out[g] = gf[..., perm[s][:-1]] - ref[..., None]
                name = self.logits[t].intercept
                out[name] = out[name] + ref
        if self.spec.random_intercepts:  # alpha_tj -> A_t alpha_tj: beta and the covariances follow
            out = self.between.permute(out, perm[0], perm[1])
        return out

    def class_signature(self, values):
        """Per relabelling group: item response probabilities and standardised means
        of the group's occasions' items."""
        out = {}
        for t, cv in enumerate(self.class_variables):
            if cv.relabel_group in out:
                continue
            thr, cont = self._occasion_columns(t)
            feats = []
            if self.cat_items:
                feats.append(self.thresholds.signature(values)[..., thr])
            if self.cont_items:
                feats.append(self.normal.signature(values)[..., cont])
            out[cv.relabel_group] = np.concatenate(feats, axis=-1)
        return out

    # ------------------------------------------------------------------ simulation
    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Classes C_1..C_T and item responses for the analysed persons at natural
        parameters; missing cells stay missing. Returns (y (N, P) in the data's
        column codes / values, C_1 (N,) 0-based)."""
        from bayesmix.families.lta_sim import simulate_lta

        y, classes, unseen = simulate_lta(self, natural, rng)
        if unseen:
            warnings.warn(f"simulate: {unseen} simulated response(s) fell in a category not observed in their "
                          "column at that occasion; they are returned as missing (NaN).", BayesmixWarning)
        return y, classes[:, 0]


def example(two_level: bool = False) -> LTAModel:
    """A tiny two-class LTA: 48 persons, 3 binary items at 2 occasions (the
    registry data's y1-y3 then y2-y4 as occasion 2); 8 clusters of 6 with
    random intercepts (eq. 15) when ``two_level``."""
    from bayesmix.families.examples import example_data

    df = example_data()
    items = {"t1": ["y1", "y2", "y3"], "t2": ["y4", "y2b", "y3b"]}
    df["y2b"] = df["y2"].to_numpy()[::-1]
    df["y3b"] = df["y3"].to_numpy()[::-1]
    return lta(df, items, 2, cluster="cluster" if two_level else None,
               integration={"rule": "trapezoid", "n_points": 9} if two_level else "trapezoid")
