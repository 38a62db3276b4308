"""Label switching, for any number of class variables: NUTS draws matched to the
ML solution, and simulation-study fits matched to the truth.

The family declares its class variables and their relabelling groups
(``ClassVariable.group``: the variables of one group share one permutation, as
the occasions of an LTA under measurement invariance), gives per group the
(..., K, F) class signature of natural values (``class_signature``) and
re-expresses raw values under a dict group -> permutation
(``permute_classes``). Nothing here knows a family.

* Draws: each draw's signature is matched to the ML signature, group by group
  in declaration order, by a Hungarian assignment on squared distances; draws
  whose permutation is not the identity are relabelled and their
  deterministics recomputed before the next group is matched; the counts are
  reported (never silent).
* Truth: every combination of permutations (K! per group, for K <= 5; a
  Hungarian assignment on the class-specific labels beyond) of the raw ML point
  is compared with the true values of the parameter table.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesmix import dims
from bayesmix.exceptions import LabelSwitchingWarning
from bayesmix.fit.compiled import compiled

MAX_EXHAUSTIVE_K = 5


def groups(model) -> dict[str, int]:
    """Relabelling group -> number of classes (groups with K >= 2 only)."""
    out = {}
    for cv in model.class_variables:
        if cv.n_classes > 1 and cv.exchangeable:
            out.setdefault(cv.relabel_group, cv.n_classes)
    return out


def _values(dt) -> dict[str, np.ndarray]:
    post = dt["posterior"]
    return {n: post[n].to_numpy().copy() for n in post.data_vars}


def match_perms(sig: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(..., K) permutations matching each draw's (..., K, F) signature to ``ref``
    (K, F): new class c of the draw is its old class perm[c]."""
    lead = sig.shape[:-2]
    k = ref.shape[0]
    cost = ((ref[None, :, None, :] - sig.reshape(-1, k, sig.shape[-1])[:, None, :, :]) ** 2).sum(-1)
    perms = np.empty((cost.shape[0], k), dtype=int)
    for i in range(cost.shape[0]):
        _, perms[i] = linear_sum_assignment(cost[i])
    return perms.reshape(*lead, k)


def relabel(model, dt, ml) -> dict:
    """Match each draw's classes to the ML classes, group by group in the order
    the family declares them (a later group's signature may depend on the labels
    of an earlier one, e.g. D's effects on the logits of C); relabel in place;
    return the report stored in ``posterior.attrs["label_switching"]``."""
    post = dt["posterior"]
    n_chain, n_draw = post.sizes[dims.CHAIN], post.sizes[dims.DRAW]
    sizes = groups(model)
    report = {"switched_draws_per_chain": [0] * n_chain, "permutations": {},
              "groups": {g: {"switched_draws_per_chain": [0] * n_chain, "permutations": {}} for g in sizes}}
    if not sizes:
        return report
    ref = model.class_signature(ml.natural)
    values = _values(dt)  # free values and deterministics, relabelled group by group
    comp = compiled(model)
    switched = np.zeros((n_chain, n_draw), bool)
    for g, k in sizes.items():
        perms = match_perms(model.class_signature(values)[g], ref[g])  # (chain, draw, K)
        moved = np.any(perms != np.arange(k), axis=-1)
        report["groups"][g]["switched_draws_per_chain"] = moved.sum(axis=1).tolist()
        if not moved.any():
            continue
        switched |= moved
        for perm in np.unique(perms[moved], axis=0):
            mask = np.all(perms == perm, axis=-1)
            report["groups"][g]["permutations"][str(perm.tolist())] = int(mask.sum())
            sub = model.permute_classes({n: values[n][mask] for n in model.free_names}, {g: perm})
            for n in model.free_names:
                values[n][mask] = sub[n]
        flat = np.concatenate([values[n].reshape(n_chain, n_draw, -1) for n in model.free_names], axis=-1)
        for c, d in zip(*np.nonzero(moved)):
            for name, val in comp.deterministics(flat[c, d]).items():
                values[name][c, d] = val
    report["switched_draws_per_chain"] = switched.sum(axis=1).tolist()
    by_group = {g: v["permutations"] for g, v in report["groups"].items()}
    report["permutations"] = next(iter(by_group.values())) if len(by_group) == 1 else by_group
    if not switched.any():
        return report
    for name, val in values.items():
        post[name] = post[name].copy(data=val)
    per_group = "; ".join(f"{g}: {report['groups'][g]['switched_draws_per_chain']}" for g in sizes)
    warnings.warn(
        f"Label switching: {int(switched.sum())} of {switched.size} draws had classes in another order than "
        f"the ML solution (per chain and class variable: {per_group}); they were relabelled to match it. "
        "See dt.posterior.attrs['label_switching'].", LabelSwitchingWarning, stacklevel=3)
    return report


# --------------------------------------------------------------------------- fits to the truth
def table_labels(model) -> list[str]:
    """Labels of the flat parameter table (cached on the model)."""
    if "table_labels" not in model.cache:
        model.cache["table_labels"] = list(model.labels(model.reported_names)["label"])
    return model.cache["table_labels"]


def align_to_truth(model, point: dict, truth: dict):
    """The class permutation(s) of the raw ML ``point`` whose reported parameters
    are closest to ``truth`` (sum of squared differences over its labels).

    Returns (perm, permuted point, distance): ``perm`` is a tuple (new class c is
    old class perm[c]) when the model has one relabelling group, a dict group ->
    tuple otherwise. Every permutation is tried for K <= 5 (all combinations
    over groups), a Hungarian assignment on the class-specific truth labels is
    used beyond. Ties keep the identity.
    """
    sizes = groups(model)
    ident = {g: tuple(range(k)) for g, k in sizes.items()}
    labels = table_labels(model)
    where = {lab: i for i, lab in enumerate(labels)}
    keys = [lab for lab in truth if lab in where]

    def result(perms, values, dist):
        if len(perms) == 1:
            return next(iter(perms.values())), values, dist
        return perms or tuple(range(model.n_classes)), values, dist

    if not sizes or not keys:
        return result(ident, point, float("nan"))
    comp = compiled(model)
    idx = np.array([where[lab] for lab in keys])
    target = np.array([truth[lab] for lab in keys], float)

    def dist(values):
        return float(np.sum((comp.flat_reported(comp.packing.pack(values))[idx] - target) ** 2))

    options = []
    for g, k in sizes.items():
        if k <= MAX_EXHAUSTIVE_K:
            options.append(list(itertools.permutations(range(k))))
        else:
            options.append([ident[g], _hungarian(model, comp, point, truth, labels, g, k)])
    best = (ident, point, dist(point))
    for combo in itertools.product(*options):
        perms = dict(zip(sizes, combo))
        if perms == ident:
            continue
        values = model.permute_classes(point, {g: np.array(p) for g, p in perms.items()})
        d = dist(values)
        if d < best[2] - 1e-12 * max(1.0, best[2]):
            best = ({g: tuple(int(c) for c in p) for g, p in perms.items()}, values, d)
    return result(*best)


def _hungarian(model, comp, point, truth, labels, group, k) -> tuple[int, ...]:
    """Assignment of fitted classes to true classes on the labels of the primary
    class dim (used for one group beyond ``MAX_EXHAUSTIVE_K`` classes)."""
    table = model.labels(model.reported_names)
    table["estimate"] = comp.flat_reported(comp.packing.pack(point))
    cost = np.zeros((k, k))
    by_key = {(r.parameter, r.term, r["class"]): r.estimate for _, r in table.iterrows()}
    for _, r in table[table["label"].isin(truth) & table["class"].notna()].iterrows():
        new = int(r["class"]) - 1
        for old in range(k):
            est = by_key.get((r.parameter, r.term, old + 1))
            if est is not None:
                cost[new, old] += (est - truth[r.label]) ** 2
    _, cols = linear_sum_assignment(cost)
    return tuple(int(c) for c in cols)
