"""Specification and data layout of latent transition analysis (``families/lta.py``).

The argument checks (every error before any graph), the frozen spec, the
long -> wide reshaping (one row per person, one column per item and occasion)
and the per-occasion arrays the likelihood uses:

* under measurement invariance (``invariance=True``) item p means the same
  item at every occasion: one set of thresholds / means (eqs. 6, 11), the
  categories being the union over occasions of the observed ones (a category
  nobody chose at one occasion keeps its code);
* otherwise every (item, occasion) column has its own parameters, and the
  occasions may have different numbers of items.

Either way the measurement block has "block items" (the invariant items, or
every column), and each occasion t gets (N, block items) codes and an
observed mask that is False outside its own columns, so that
log f(y_t | C_t = k) is one indicator-matrix product (ARCHITECTURE.md
decision 3) and a missing response, or a whole missing occasion, contributes 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesmix.core.quadrature import Integration
from bayesmix.data import ItemInfo
from bayesmix.exceptions import DataError, SpecificationError

DEPENDENCE = ("markov", "full")


@dataclass(frozen=True)
class LTASpec:
    """Everything ``LTAModel.build`` needs besides the prepared data (frozen)."""

    n_classes: int
    occasions: tuple  # occasion labels, in time order
    columns: tuple  # per occasion: its wide item columns (block item order under invariance)
    item_names: tuple  # names of the block items under invariance (else the columns)
    covariates: tuple = ()  # per occasion: covariate columns of its class logits (eq. 8 / 9)
    invariance: bool = True
    dependence: str = "markov"
    link: str = "logit"
    random_intercepts: bool = False
    integration: Integration = field(default_factory=Integration)
    prior_names: tuple[str, ...] = ()

    @property
    def n_occasions(self) -> int:
        return len(self.occasions)


# ------------------------------------------------------------------ arguments
def _name_list(value, what: str) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, pd.Index)) and all(isinstance(v, str) for v in value) and len(value):
        return list(value)
    raise SpecificationError(f"{what}: got {value!r}; give a non-empty list of column names.")


def wide_items(items) -> tuple[tuple, tuple]:
    """(occasion labels, per-occasion column lists) from ``items`` of wide data:
    a dict occasion -> columns, or a list of column lists (occasions 1..T)."""
    if isinstance(items, dict) and items:
        labels = tuple(str(k) for k in items)
        cols = tuple(tuple(_name_list(v, f"items[{k!r}]")) for k, v in items.items())
    elif isinstance(items, (list, tuple)) and items and all(isinstance(v, (list, tuple)) for v in items):
        labels = tuple(str(t + 1) for t in range(len(items)))
        cols = tuple(tuple(_name_list(v, f"items[{t}]")) for t, v in enumerate(items))
    else:
        raise SpecificationError(
            f"items: got {items!r}; for wide data give a dict occasion -> item columns, e.g. "
            "items={'t1': ['u1_1', 'u2_1'], 't2': ['u1_2', 'u2_2']}, or a list of such lists; for long data "
            "give the item columns and person='<id column>', time='<occasion column>'.")
    flat = [c for cs in cols for c in cs]
    dup = [c for c in dict.fromkeys(flat) if flat.count(c) > 1]
    if dup:
        raise SpecificationError(f"items: column {dup[0]!r} is listed at more than one occasion (or twice); each "
                                 "(item, occasion) is its own column.")
    return labels, cols


def occasion_covariates(covariates, labels: tuple) -> tuple:
    """Per occasion, the covariate columns of its class logits: None -> none, a
    list -> the same columns at every occasion, a dict occasion -> columns
    (occasion-specific covariates; occasions left out have none)."""
    if covariates is None:
        return tuple(() for _ in labels)
    if isinstance(covariates, dict):
        bad = [k for k in covariates if str(k) not in labels]
        if bad:
            raise SpecificationError(f"covariates: key {bad[0]!r} is not an occasion; the occasions are "
                                     f"{list(labels)}.")
        by = {str(k): tuple(_name_list(v, f"covariates[{k!r}]")) for k, v in covariates.items()}
        return tuple(by.get(t, ()) for t in labels)
    cols = tuple(_name_list(covariates, "covariates"))
    return tuple(cols for _ in labels)


def check_dependence(dependence) -> str:
    if dependence not in DEPENDENCE:
        raise SpecificationError(
            f"dependence: got {dependence!r}; valid choices are 'markov' (C_t depends on C_(t-1) only, the "
            "first-order Markov chain) and 'full' (C_t depends on every earlier C_s, eq. 9 with all of them as "
            "predictors).")
    return dependence


def check_two_level(n_classes: int, n_occasions: int, dependence: str) -> None:
    if n_classes < 2 or n_occasions != 2:
        raise SpecificationError(
            f"random_intercepts: got True with n_classes={n_classes} and {n_occasions} occasions; the two-level "
            "LTA of section 4 (alpha_2j = mu + beta alpha_1j + eps_j, eq. 15) is implemented for T = 2 occasions "
            "and K >= 2 classes. Fix: analyse two occasions (e.g. consecutive pairs), or random_intercepts=False "
            "(cluster sums without random effects).")
    if n_classes > 3:
        raise SpecificationError(
            f"random_intercepts: got True with n_classes={n_classes}; the cluster integral then has "
            f"{2 * (n_classes - 1)} dimensions, a product rule needs 5^6 or more nodes per person, more memory than "
            "a fit should take. Fix: n_classes <= 3, or random_intercepts=False.")


# ------------------------------------------------------------------ long data
def long_to_wide(data, items, person, time, covariates, cluster, item_types):
    """Reshape long data (one row per person and occasion) to wide.

    Returns (wide frame indexed by person, occasion labels, per-occasion
    columns, item names, per-occasion covariate columns, item_types for the
    wide columns). Column ``f"{item}_{occasion}"``; a person without a row at
    an occasion has that occasion missing (full information); a covariate is
    occasion-specific (its value at occasion t enters C_t's logits)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data: got a {type(data).__name__}; give a pandas DataFrame (long: one row per person "
                        "and occasion).")
    names = _name_list(items, "items")
    covs = [] if covariates is None else _name_list(covariates, "covariates")
    for what, cols in (("items", names), ("covariates", covs), ("person", [person]), ("time", [time]),
                       ("cluster", [] if cluster is None else [cluster])):
        for c in cols:
            if c not in data.columns:
                raise DataError(f"{what}: column {c!r} not found in data; available columns: "
                                f"{list(data.columns)[:12]}.")
    for what, col in (("person", person), ("time", time)):
        if data[col].isna().any():
            n = int(data[col].isna().sum())
            raise DataError(f"{what}: column {col!r} has {n} missing value(s); every row needs its person and "
                            "occasion. Fix: drop or fill those rows first.")
    dup = data.duplicated([person, time])
    if dup.any():
        first = data.loc[dup, [person, time]].iloc[0].tolist()
        raise DataError(f"person/time: {int(dup.sum())} duplicate (person, occasion) row(s), e.g. {first}; give "
                        "one row per person and occasion.")
    waves = sorted(pd.unique(data[time]))
    labels = tuple(str(w) for w in waves)
    persons = pd.Index(pd.unique(data[person]), name=person)
    wide = pd.DataFrame(index=persons)
    cols, cov_cols = [], []
    for w, lab in zip(waves, labels):
        rows = data[data[time] == w].set_index(person)
        cols.append(tuple(f"{it}_{lab}" for it in names))
        cov_cols.append(tuple(f"{c}_{lab}" for c in covs))
        for src, dst in zip(names + covs, cols[-1] + cov_cols[-1]):
            wide[dst] = rows[src].reindex(persons)
    if cluster is not None:
        per = data.groupby(person, sort=False)[cluster].nunique(dropna=False)
        if (per > 1).any():
            raise DataError(f"cluster: column {cluster!r} changes within person {per.index[per > 1][0]!r}; a "
                            "person belongs to one cluster. Fix: make the cluster constant within persons.")
        wide[cluster] = data.groupby(person, sort=False)[cluster].first().reindex(persons)
    if isinstance(item_types, dict):
        bad = [k for k in item_types if k not in names]
        if bad:
            raise DataError(f"item_types: key {bad[0]!r} is not one of the items {names}.")
        item_types = {f"{k}_{lab}": v for k, v in item_types.items() for lab in labels}
    return wide, labels, tuple(cols), tuple(names), tuple(cov_cols), item_types


# ------------------------------------------------------------------ measurement block
@dataclass
class Block:
    """The measurement block: block items (ItemInfo), and per occasion the
    (N, P) codes (categorical, union codes) or values (continuous) and observed
    masks of the block items (False outside the occasion's own columns)."""

    items: list
    values: np.ndarray  # (T, N, P)
    observed: np.ndarray  # (T, N, P) bool
    column_of: np.ndarray  # (T, P) wide column index of block item p at occasion t, -1 if none

    @property
    def categorical(self) -> np.ndarray:
        return np.array([it.is_categorical for it in self.items], dtype=bool)


def measurement_block(data, spec: LTASpec) -> Block:
    """Block items and per-occasion arrays (see the module docstring)."""
    col_index = {it.name: j for j, it in enumerate(data.items)}
    n_t, n = spec.n_occasions, data.n_persons
    if spec.invariance:
        sizes = {len(c) for c in spec.columns}
        if len(sizes) > 1:
            raise SpecificationError(
                f"invariance: got True but the occasions have {[len(c) for c in spec.columns]} items; measurement "
                "invariance needs the same items at every occasion. Fix: give the same number of items in the "
                "same order, or invariance=False (occasion-specific item parameters).")
        column_of = np.array([[col_index[c] for c in cols] for cols in spec.columns])
        items = []
        for p, name in enumerate(spec.item_names):
            infos = [data.items[j] for j in column_of[:, p]]
            kinds = {it.is_categorical for it in infos}
            if len(kinds) > 1:
                raise SpecificationError(
                    f"invariance: item {name!r} is continuous at some occasions and categorical at others "
                    f"({[it.name + ': ' + it.kind for it in infos]}). Fix: declare item_types consistently, or "
                    "invariance=False.")
            if infos[0].is_categorical:
                cats = tuple(sorted(set().union(*[it.categories for it in infos])))
                kind = "binary" if len(cats) == 2 else "ordinal"
                items.append(ItemInfo(name=name, kind=kind, categories=cats))
            else:
                items.append(ItemInfo(name=name, kind="continuous"))
    else:
        flat = [c for cols in spec.columns for c in cols]
        items = [data.items[col_index[c]] for c in flat]
        column_of = np.full((n_t, len(flat)), -1)
        p = 0
        for t, cols in enumerate(spec.columns):
            for c in cols:
                column_of[t, p] = col_index[c]
                p += 1
    values = np.zeros((n_t, n, len(items)))
    observed = np.zeros((n_t, n, len(items)), dtype=bool)
    for t in range(n_t):
        for p, it in enumerate(items):
            j = column_of[t, p]
            if j < 0:
                continue
            seen = data.observed[:, j]
            col = np.where(seen, data.y[:, j], 0.0)
            if it.is_categorical:  # the column's own code -> the block item's (union) code
                own = np.asarray(data.items[j].categories, dtype=float)
                col = np.where(seen, np.searchsorted(np.asarray(it.categories, float), own[col.astype(int)]), 0)
            values[t, :, p] = col
            observed[t, :, p] = seen
    return Block(items, values, observed, column_of)


def covariate_index(data, spec: LTASpec) -> tuple:
    """Per occasion, the indices of its covariates in ``data.covariates``."""
    pos = {c: q for q, c in enumerate(data.covariate_names)}
    return tuple(np.array([pos[c] for c in cols], dtype=int) for cols in spec.covariates)
