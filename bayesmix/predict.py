"""Class membership for new data from a fitted model (issue 10, part 3).

``predict_classes(fit, new_data)`` rebuilds the fitted model on ``new_data``
through its recorded factory call (``families.calls``): the same validation as
fitting (a missing item column, bad codes, a cluster column that is not there
give the fitting errors), the fitted spec, and the model's own membership graphs
(``FamilyModel.membership_graphs``). For a person, P(C_i = c | y_i) is Bayes'
rule with the fitted class model (eq. 4) and item densities (eq. 1-2); in a
two-level model the cluster random effects are integrated with each (new)
cluster's posterior, exactly as in the fit, and a between-level class
(eq. 16-17) gets one row per cluster. A fitted ``MLResult`` is evaluated at its
theta; a posterior (``bayesmix.sample``, already relabelled to the ML labels)
at every draw and averaged (``per_draw=True`` keeps the draws).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import dims
from bayesmix.exceptions import DataError, SpecificationError
from bayesmix.families.base import FamilyModel
from bayesmix.fit.compiled import compiled
from bayesmix.fit.results import MLResult, membership_frame
from bayesmix.families.calls import no_call_error
from bayesmix.persist import check_format, rebuild, stored_items


@dataclass
class ClassPrediction:
    """Posterior class membership of new data.

    membership : DataFrame
        Per person: p_class1..K and the most likely class of the primary class
        variable (a between-level class: each person has the cluster's row), as
        ``MLResult.membership``.
    memberships : dict
        Class variable name -> its frame, one row per element of its membership
        dims (person, cluster, person x time, ...), as ``MLResult.memberships``.
    draws : dict or None
        With ``per_draw=True`` on a posterior: name -> DataArray (chain, draw,
        *membership dims, class) of the per-draw probabilities.
    model : the family object rebuilt on the new data (preceded by the fit's
        rows, labelled ``__fit__<i>``, when they were needed).
    """

    membership: pd.DataFrame
    memberships: dict
    draws: dict | None = None
    model: FamilyModel | None = field(default=None, repr=False)

    def cluster_membership(self) -> pd.DataFrame:
        """The first cluster-level class variable's frame (a between-level C, or D)."""
        for cv in self.model.class_variables:
            if cv.membership_dims == (dims.CLUSTER,):
                return self.memberships[cv.name]
        raise SpecificationError("cluster_membership: this model has no cluster-level class variable; use "
                                 "ClassPrediction.membership (one row per person).")


def _rebuilt(fit, model, new_data) -> tuple[FamilyModel, dict | None]:
    """The model rebuilt on ``new_data`` and checked against the fitted items and
    parameter shapes, with the per-dim masks of the new rows (None: all rows are
    new; else the fit's rows were added, see ``_beside_training``)."""
    if isinstance(fit, MLResult):
        model = fit.model
    elif not isinstance(fit, xr.DataTree):
        raise SpecificationError(f"predict_classes: fit: got {type(fit).__name__}; give an MLResult (bayesmix.fit_ml) "
                                 "or a posterior DataTree (bayesmix.sample, or bayesmix.load of a saved one).")
    fam = model.model if isinstance(model, MLResult) else model
    if fam is not None:
        if not isinstance(fam, FamilyModel):
            raise SpecificationError(f"predict_classes: model: got {type(fam).__name__}; give the sampled family "
                                     "object or its MLResult.")
        if fam.call is None:
            raise no_call_error(fam, "predict_classes")
        ref = compiled(fam).packing
        items = [(it.name, it.kind, tuple(it.categories)) for it in fam.data.items]
        free = list(zip(ref.names, ref.shapes))
        try:
            new = fam.call.replay(new_data, spec=fam.spec, quiet=False)
            _check_compatible(items, free, new)
            return new, None
        except DataError:
            # too few rows to build the model alone (a constant item, one cluster, a missing
            # category): the new rows beside the fit's own, which are then left out
            augmented = _beside_training(fam, new_data, items, free)
            if augmented is None:
                raise
            return augmented
    if "bayesmix_call" not in fit.attrs:
        raise SpecificationError("predict_classes: model: got None for a posterior that does not describe its model; "
                                 "give the sampled model, predict_classes(dt, new_data, model=model) (or its ML "
                                 "fit), or a posterior read with bayesmix.load.")
    attrs = dict(fit.attrs)
    check_format(attrs, "the posterior")
    new = rebuild(attrs, new_data, what="predict_classes", check_hash=False)
    post = fit["posterior"]
    free = [(n, tuple(post[n].shape[2:])) for n in compiled(new).packing.names if n in post.data_vars]
    _check_compatible(stored_items(attrs), free, new)
    return new, None


FIT_LABEL = "__fit__"


def _beside_training(fam, new_data, items, free):
    """(model on the fit's rows followed by ``new_data``'s, keep masks) or None.

    Persons are independent given the parameters, and so are clusters, so the
    memberships of the new rows do not depend on the rows beside them. The fit's
    rows get index labels (and cluster labels) of their own, ``__fit__<i>``, so
    that nothing merges with a new person or cluster; the result is used only if
    the combined model has exactly the fit's persons plus rows of ``new_data``
    (not so for long data, whose persons are a column: then None)."""
    train = fam.call.data
    if not isinstance(train, pd.DataFrame) or not isinstance(new_data, pd.DataFrame):
        return None
    train = train.copy()
    train.index = pd.Index([f"{FIT_LABEL}{i}" for i in range(len(train))], dtype=object)
    cluster = fam.data.cluster_name
    if cluster is not None and cluster in train.columns:
        train[cluster] = pd.Series([f"{FIT_LABEL}{v}" for v in train[cluster]], index=train.index, dtype=object)
    combined = pd.concat([train, new_data], join="inner")  # a column new_data lacks stays missing
    try:
        new = fam.call.replay(combined, spec=fam.spec, quiet=True)
        _check_compatible(items, free, new)
    except DataError:
        return None
    rows = new.data.row_index
    from_fit = np.array([isinstance(r, str) and r.startswith(FIT_LABEL) for r in rows])
    if from_fit.sum() != fam.data.n_persons or not set(rows[~from_fit]) <= set(new_data.index):
        return None
    keep = {dims.PERSON: ~from_fit}
    if new.data.cluster_labels is not None:
        keep[dims.CLUSTER] = np.array([not (isinstance(c, str) and c.startswith(FIT_LABEL))
                                       for c in new.data.cluster_labels])
    return new, keep


def _check_compatible(fitted_items, fitted_free, new: FamilyModel) -> None:
    """The rebuilt model must have the fitted parameters: same items with the same
    categories (a category not observed in the new data changes the thresholds)."""
    new_items = [(it.name, it.kind, tuple(it.categories)) for it in new.data.items]
    if fitted_items is not None and new_items != fitted_items:
        diff = [f"{a[0]!r}: {a[1]} {list(a[2])} in the fit, {b[1]} {list(b[2])} here"
                for a, b in zip(fitted_items, new_items) if a != b]
        raise DataError("predict_classes: new_data: the items differ from the fitted model's (" + "; ".join(diff)
                        + "). The fitted parameters apply only to items coded as in the fit: recode or drop "
                        "the rows with a category the fit did not have, and declare the kinds as in the fit "
                        "(item_types=...).")
    comp = compiled(new)
    got = list(zip(comp.packing.names, comp.packing.shapes))
    if got != fitted_free:
        raise DataError(f"predict_classes: new_data: the rebuilt model has parameters {got}, the fit {fitted_free}; "
                        "the new data must have the fitted items, categories and covariates.")


def _mask(fam, keep: dict, dim_names) -> np.ndarray:
    """Rows of a membership frame (C order over ``dim_names``) that belong to the new data."""
    mask = np.ones((), bool)
    for d in dim_names:
        mask = np.logical_and.outer(mask, keep.get(d, np.ones(len(fam.coord_index(d)), bool)))
    return mask.reshape(-1)


def _frames(fam, posts: dict, keep=None) -> tuple[pd.DataFrame, dict]:
    frames = {}
    for cv in fam.class_variables:
        frame = membership_frame(fam, cv, posts[cv.name])
        frames[cv.name] = frame if keep is None else frame[_mask(fam, keep, cv.membership_dims)]
    cv = fam.class_variables[0]
    person = posts[cv.name][fam.data.cluster_idx] if cv.membership_dims == (dims.CLUSTER,) else posts[cv.name]
    frame = membership_frame(fam, cv, person, person=True)
    return (frame if keep is None else frame[keep[dims.PERSON]]), frames


def predict_classes(fit, new_data, *, model=None, per_draw: bool = False) -> ClassPrediction:
    """Posterior class membership of the persons (and clusters) of ``new_data``.

    Parameters
    ----------
    fit : MLResult or xarray.DataTree
        An ML fit (evaluated at its estimates) or a posterior of
        ``bayesmix.sample`` (averaged over the draws).
    new_data : pandas.DataFrame
        The same columns as the fitted data (items, covariates, cluster); new
        persons and new clusters are allowed. It is validated as in fitting.
        Data too few to build the model alone (one person, one cluster, an item
        without every fitted category) are evaluated beside the fit's own rows,
        which the result leaves out (persons and clusters are independent given
        the parameters); not for long-format data (LTA with ``person``/``time``)
        or a posterior read from a file, which have no fit rows at hand.
    model : family object or MLResult, optional
        For a posterior straight from ``bayesmix.sample``: the sampled model
        (not needed for an MLResult or a posterior read by ``bayesmix.load``).
    per_draw : bool
        For a posterior: keep the per-draw probabilities in ``.draws``.

    Returns
    -------
    ClassPrediction
        ``membership`` (per person, primary class variable, as
        ``MLResult.membership``), ``memberships`` (every class variable, e.g.
        per cluster for a between-level class), ``draws``, ``model``.
        On the training data ``predict_classes(res, df).membership`` equals
        ``res.membership``.
    """
    new, keep = _rebuilt(fit, model, new_data)
    comp = compiled(new)
    if isinstance(fit, MLResult):
        membership, frames = _frames(new, comp.memberships(fit.theta), keep)
        return ClassPrediction(membership, frames, None, new)
    post = fit["posterior"]
    n_chain, n_draw = post.sizes[dims.CHAIN], post.sizes[dims.DRAW]
    flat = np.concatenate([post[n].to_numpy().reshape(n_chain, n_draw, -1) for n in comp.packing.names], axis=-1)
    per = [[comp.memberships(flat[c, d]) for d in range(n_draw)] for c in range(n_chain)]
    names = [cv.name for cv in new.class_variables]
    stacked = {n: np.stack([np.stack([per[c][d][n] for d in range(n_draw)]) for c in range(n_chain)]) for n in names}
    membership, frames = _frames(new, {n: v.mean(axis=(0, 1)) for n, v in stacked.items()}, keep)
    draws = None
    if per_draw:
        draws = {}
        for cv in new.class_variables:
            values, coords = stacked[cv.name], {}
            for axis, d in enumerate(cv.membership_dims):
                mask = (keep or {}).get(d, np.ones(len(new.coord_index(d)), bool))
                values, coords[d] = np.compress(mask, values, axis=2 + axis), new.coord_index(d)[mask]
            draws[cv.name] = xr.DataArray(
                values, dims=(dims.CHAIN, dims.DRAW, *cv.membership_dims, cv.dim),
                coords={dims.CHAIN: post[dims.CHAIN].values, dims.DRAW: post[dims.DRAW].values,
                        **{d: list(c) for d, c in coords.items()}, cv.dim: list(range(1, cv.n_classes + 1))})
    return ClassPrediction(membership, frames, draws, new)

