"""Explained variance of the LTA class variables (paper eq. 14 and section 4).

Everything is on the latent-logit scale: a binary class variable C_t (class 1
against the reference class 2) is the dichotomised latent response
C_t* = (its logit) + e_t, e_t logistic with variance pi^2/3, as eq. (14) takes
it. With I = I(C_1 = 1) and K = T = 2:

* single level, eq. (13)-(14): C_2* = alpha_2 + gamma I + e_2, and
  R^2(C_1 -> C_2) = gamma^2 Var(I) / (gamma^2 Var(I) + pi^2/3),
  Var(I) = P(C_1 = 1)(1 - P(C_1 = 1)), P(C_1 = 1) the model-implied share.
* two level, eqs. (12)-(13), (15): C_1* = alpha_1j + e_1 and
  C_2* = alpha_2j + gamma I + e_2, alpha_1j ~ N(alpha_1, v_1),
  alpha_2j = mu + beta alpha_1j + eps_j, Var(eps_j) = v_e.

  - ``C1_by_alpha1`` = v_1 / (v_1 + pi^2/3).
  - I is split into its linear projection on alpha_1j and a residual:
    I = P_1 + b (alpha_1j - alpha_1) + r, b = Cov(alpha_1j, I) / v_1, where
    P_1 = E expit(alpha_1j) and Cov(alpha_1j, I) = E[(alpha_1j - alpha_1)
    expit(alpha_1j)] (Gauss-Hermite over alpha_1j, 61 points); r is uncorrelated
    with alpha_1j, and Var(r) = P_1 (1 - P_1) - b^2 v_1. Then
    C_2* - const = (beta + gamma b)(alpha_1j - alpha_1) + gamma r + eps_j + e_2,
    four uncorrelated terms, so
    Var(C_2*) = (beta + gamma b)^2 v_1 + gamma^2 Var(r) + v_e + pi^2/3 and
    ``C2_by_alpha1``, ``C2_by_residual_C1``, ``C2_by_residual_alpha2`` are the
    first three terms over Var(C_2*); ``C2_total`` is their sum (exactly).
  - ``C2_by_C1_alone``: the squared correlation of C_2* with I,
    Cov(C_2*, I)^2 / (Var(I) Var(C_2*)), Cov(C_2*, I) = gamma Var(I) +
    beta Cov(alpha_1j, I): what C_1 explains on its own.
  - ``C2_added_by_alpha2`` = ``C2_total`` - ``C2_by_C1_alone``, the share the
    classroom effect alpha_2j adds to C_1 (the paper's 65% - 41% = 24%).
  With v_1 = v_e = 0 this is eq. (14). (The paper's 35 + 30 + 5 = 70 does not
  equal its total of 65%; here the three parts add to the total by construction.)

``lta_r_squared(res)`` takes an ``MLResult`` and returns a frame with the
delta-method SEs (central-difference Jacobian in the raw vector ``res.theta``,
with ``res.cov``); ``r_squared_values(values)`` takes natural values (the
reported names, optionally with leading draw axes) and returns arrays; on
posterior draws: ``r_squared_values({n: idata.posterior[n].values for n in
idata.posterior.data_vars})`` gives (chain, draw) arrays.

``most_likely_paths(res)`` (Viterbi) and ``pattern_probabilities(res)``
(P(path | y) or the prior P(path), per person) serve single-level Markov LTAs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from bayesmix.exceptions import SpecificationError

LOGISTIC_VAR = np.pi ** 2 / 3  # variance of the standard logistic residual (eq. 14)
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(61)
_GH_W = _GH_W / _GH_W.sum()  # probabilists' Hermite: E f(Z), Z ~ N(0, 1)


def _check_values(values: dict) -> None:
    if "gamma_1_2" not in values or np.shape(values["gamma_1_2"])[-2:] != (1, 1) or "gamma_1_3" in values:
        shape = np.shape(values.get("gamma_1_2")) if "gamma_1_2" in values else None
        raise SpecificationError(
            f"lta_r_squared: needs a Markov LTA with K = 2 classes and T = 2 occasions (one gamma, eq. 13); got "
            f"gamma_1_2 of shape {shape}. Fix: fit bm.lta(..., n_classes=2) on two occasions.")
    if any(k.startswith("beta_") for k in values):
        raise SpecificationError("lta_r_squared: the model has covariates of the class logits (beta_t); eq. (14) "
                                 "and section 4 are defined without them. Fix: fit the LTA without covariates.")


def r_squared_values(values: dict) -> dict[str, np.ndarray]:
    """R^2 pieces (module docstring) from natural values; leading axes are kept."""
    _check_values(values)
    gamma = np.asarray(values["gamma_1_2"], float)[..., 0, 0]
    if "var_alpha1" not in values:  # single level: eq. (14)
        p1 = np.asarray(values["class_share_C1"], float)[..., 0]
        explained = gamma ** 2 * p1 * (1 - p1)
        return {"C2_by_C1": explained / (explained + LOGISTIC_VAR)}
    v1 = np.asarray(values["var_alpha1"], float)
    ve = np.asarray(values["var_eps"], float)
    beta = np.asarray(values["beta"], float)
    a1 = np.asarray(values["alpha_1"], float)[..., 0]
    u = np.sqrt(v1)[..., None] * _GH_Z  # alpha_1j - alpha_1 at the nodes
    prob = special.expit(a1[..., None] + u)
    p1 = prob @ _GH_W
    cov_ai = (u * prob) @ _GH_W
    var_i = p1 * (1 - p1)
    # b = Cov / v_1; b^2 v_1 = Cov^2 / v_1 (0 when v_1 = 0, where Cov = 0 too)
    proj = np.divide(cov_ai ** 2, v1, out=np.zeros_like(cov_ai), where=v1 > 0)
    b = np.divide(cov_ai, v1, out=np.zeros_like(cov_ai), where=v1 > 0)
    part_a1 = (beta + gamma * b) ** 2 * v1
    part_c1 = gamma ** 2 * (var_i - proj)
    total_var = part_a1 + part_c1 + ve + LOGISTIC_VAR
    cov_c2i = gamma * var_i + beta * cov_ai
    out = {"C1_by_alpha1": v1 / (v1 + LOGISTIC_VAR),
           "C2_by_alpha1": part_a1 / total_var,
           "C2_by_residual_C1": part_c1 / total_var,
           "C2_by_residual_alpha2": ve / total_var}
    out["C2_total"] = out["C2_by_alpha1"] + out["C2_by_residual_C1"] + out["C2_by_residual_alpha2"]
    out["C2_by_C1_alone"] = cov_c2i ** 2 / (var_i * total_var)
    out["C2_added_by_alpha2"] = out["C2_total"] - out["C2_by_C1_alone"]
    return out


def lta_r_squared(res) -> pd.DataFrame:
    """R^2 pieces of a fitted LTA: an ``MLResult`` (delta-method SEs) or a
    posterior DataTree of one (posterior mean and sd), both from the one
    definition ``r_squared_values`` (``fit.derive``).

    Returns a frame indexed by piece name with ``estimate``, ``se`` (or ``sd``),
    ``lower`` and ``upper`` (95%).
    """
    from bayesmix.fit.derive import derive  # families/ may use fit/ lazily; fit/ never imports families
    from bayesmix.fit.results import MLResult

    is_tree = hasattr(res, "children") and "posterior" in res.children
    if is_tree:
        if res["posterior"].attrs.get("bayesmix_family") != "lta":
            raise SpecificationError("lta_r_squared: res: got a posterior of another family; give the DataTree of "
                                     "bm.sample or bm.fit_laplace on a bm.lta model.")
    elif not isinstance(res, MLResult) or res.model.family != "lta":
        raise SpecificationError(f"lta_r_squared: res: got {type(res).__name__}; give the MLResult of "
                                 "bm.fit_ml on a bm.lta model (or a posterior DataTree of one).")
    table = derive(res, r_squared_values)
    table.index.name = "r2"
    return table


# ------------------------------------------------------------------ class paths
def _markov_arrays(res):
    """(log_init (N, K), log_trans (N, T-1, K, K), log_emit (N, T, K)) of a
    single-level Markov LTA at ``res.theta`` (numpy, one compiled function kept
    in the model's cache)."""
    from bayesmix.fit.compiled import compiled, function  # lazily: fit/ never imports families

    fam = getattr(res, "model", None)
    if fam is None or getattr(fam, "family", None) != "lta":
        raise SpecificationError(f"res: got {type(res).__name__}; give the MLResult of bm.fit_ml on a bm.lta model.")
    spec = fam.spec
    if spec.random_intercepts or spec.n_occasions < 2 or spec.n_classes < 2 or (
            spec.dependence == "full" and spec.n_occasions > 2):
        raise SpecificationError(
            f"class paths: got an LTA with random_intercepts={spec.random_intercepts}, K = {spec.n_classes}, "
            f"T = {spec.n_occasions}, dependence={spec.dependence!r}; the most likely path and the pattern "
            "probabilities are implemented for single-level Markov models with K >= 2 and T >= 2. Fix: fit "
            "without random intercepts (or with dependence='markov').")
    comp = compiled(fam)
    n, k, n_t = fam.data.n_persons, spec.n_classes, spec.n_occasions
    key = "lta_markov_arrays"
    fn = fam.cache.get(key)
    if fn is None:
        q = fam.likelihood_tensors
        log_init, log_trans = fam._markov_parts(q)
        graphs = comp._to_theta([fam._log_emit(q), log_init, log_trans])
        fn = fam.cache[key] = function([comp.theta], graphs, on_unused_input="ignore")
    emit, init, trans = (np.asarray(v, float) for v in fn(np.asarray(res.theta, float)))
    return (np.broadcast_to(init, (n, k)), np.broadcast_to(trans, (n, n_t - 1, k, k)), emit)


def _person_index(fam):
    from bayesmix import dims
    return pd.Index(fam.model.coords[dims.PERSON], name=dims.PERSON)


def most_likely_paths(res) -> pd.DataFrame:
    """Most likely class path per person (Viterbi, ``core.chains.viterbi``):
    one column per occasion with the class (1..K) and ``log_joint`` =
    log P(path, y). Single-level Markov LTA."""
    from bayesmix.core.chains import viterbi

    init, trans, emit = _markov_arrays(res)
    path, log_joint = viterbi(init, trans, emit, time_varying=True)
    out = pd.DataFrame(path + 1, index=_person_index(res.model), columns=list(res.model.spec.occasions))
    out["log_joint"] = log_joint
    return out


def pattern_probabilities(res, posterior: bool = True) -> pd.DataFrame:
    """P(C_1 = c_1, ..., C_T = c_T | y) per person (``posterior=False``: the
    prior P(path), which varies by person only through covariates), one column
    per class pattern "c_1,...,c_T" (classes 1..K, last occasion fastest)."""
    from bayesmix.core.chains import all_patterns

    init, trans, emit = _markov_arrays(res)
    k, n_t = init.shape[1], emit.shape[1]
    pats = all_patterns(k, n_t)
    logp = init[:, pats[:, 0]]
    for t in range(1, n_t):
        logp = logp + trans[:, t - 1, pats[:, t - 1], pats[:, t]]
    if posterior:
        logp = logp + sum(emit[:, t, pats[:, t]] for t in range(n_t))
    prob = np.exp(logp - special.logsumexp(logp, axis=1, keepdims=True))
    cols = [",".join(str(c + 1) for c in p) for p in pats]
    return pd.DataFrame(prob, index=_person_index(res.model), columns=cols)


# ------------------------------------------------------------------ tables
def transition_table(res) -> pd.DataFrame:
    """Tidy transition probabilities P(C_t = to | C_(t-1) = from) of a fitted
    LTA (``MLResult``): columns ``transition``, ``class_from``, ``class_to``,
    ``estimate`` and ``se`` (delta method; averaged over persons and random
    intercepts, as the ``transition_prob`` Deterministic)."""
    if getattr(res, "model", None) is None or getattr(res.model, "family", None) != "lta":
        raise SpecificationError(f"transition_table: res: got {type(res).__name__}; give the MLResult of "
                                 "bm.fit_ml on a bm.lta model with T >= 2 occasions.")
    rows = res.params[res.params["parameter"] == "transition_prob"]
    if rows.empty:
        raise SpecificationError("transition_table: the model has no transitions (one occasion or one class).")
    fam = res.model
    occ, k = fam.spec.occasions, fam.spec.n_classes
    idx = pd.MultiIndex.from_product([[f"{occ[t - 1]}->{occ[t]}" for t in range(1, len(occ))],
                                      range(1, k + 1), range(1, k + 1)],
                                     names=["transition", "class_from", "class_to"])
    # params rows follow the Deterministic's (transition, class_from, class) C order
    return pd.DataFrame({"estimate": rows["estimate"].to_numpy(float), "se": rows["se"].to_numpy(float)},
                        index=idx).reset_index()


def transition_lines(res) -> list[str]:
    """The summary's section: the class shares per occasion, then one K x K matrix per transition, rows the earlier
    class (Mplus' "C1 classes (rows) by C2 classes (columns)"), SEs below."""
    table = transition_table(res)
    fam = res.model
    k, occ = fam.spec.n_classes, list(fam.spec.occasions)
    lines = ["", "CLASS PROPORTIONS BY OCCASION BASED ON THE ESTIMATED MODEL (S.E.)",
             "  class " + "".join(f"{str(o)[:14]:>16}" for o in occ)]
    shares = [res.params[res.params["parameter"] == cv.share] for cv in fam.class_variables]
    for c in range(k):
        lines.append(f"  {c + 1:>5} " + "".join(f"{s['estimate'].iloc[c]:>8.3f} ({s['se'].iloc[c]:.3f})".rjust(16)
                                                for s in shares))
    lines += ["", "LATENT TRANSITION PROBABILITIES BASED ON THE ESTIMATED MODEL (S.E.)"]
    for t, (name, grp) in enumerate(table.groupby("transition", sort=False), start=1):
        a, b = name.split("->")
        lines.append(f"  C{t} (occasion {a}) classes (rows) by C{t + 1} (occasion {b}) classes (columns)")
        lines.append("    from" + "".join(f"{'to ' + str(c):>16}" for c in range(1, k + 1)))
        est = grp["estimate"].to_numpy().reshape(k, k)
        se = grp["se"].to_numpy().reshape(k, k)
        for j in range(k):
            cells = "".join(f"{est[j, c]:>8.3f} ({se[j, c]:.3f})".rjust(16) for c in range(k))
            lines.append(f"  {j + 1:>6}" + cells)
    return lines
