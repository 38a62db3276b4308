"""Validation of wide data and its conversion to the arrays the models use.

``prepare_wide`` takes one row per person (level-1 unit) and one column per
item, plus optional covariate columns and a cluster (level-2) column, and
returns a frozen :class:`PreparedData`.

The function works in four phases, so that a ``DataError`` is raised before
anything else happens (no warning, no array is handed out):

1. arguments: types, column names, overlaps, ``item_types``;
2. column contents over *all* rows: numeric codes, no infinite values;
3. which rows are excluded (all items missing, missing covariate, missing
   cluster label); nothing is dropped silently;
4. item and cluster contents over the *kept* rows (the rows the model sees):
   enough observations, kinds, category codes, at least two clusters.

Only then is the ``DroppedRowsWarning`` issued and the arrays built.  Pure
numpy/pandas: this module must stay importable without PyMC.
"""

from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmix.exceptions import DataError, DroppedRowsWarning

ITEM_KINDS = ("binary", "ordinal", "continuous")
CATEGORICAL_KINDS = ("binary", "ordinal")
# Inference: integer codes with 3..MAX_INFERRED_ORDINAL distinct values are
# ordinal; more distinct values are far more often a score than a rating scale.
MAX_INFERRED_ORDINAL = 10

REASON_NO_ITEM = "no observed item"
REASON_MISSING_CLUSTER = "missing cluster"


def _reason_missing_covariate(name) -> str:
    return f"missing covariate {name}"


def _reason_detail(reasons, covariate_names) -> str:
    """'2 no observed item, 1 missing covariate x' in a fixed order (the order of the checks)."""
    order = [REASON_NO_ITEM, *map(_reason_missing_covariate, covariate_names)]
    order.append(REASON_MISSING_CLUSTER)
    counts = pd.Series(list(reasons), dtype=object).value_counts()
    return ", ".join(f"{counts[r]} {r}" for r in order if r in counts.index)


@dataclass(frozen=True)
class ItemInfo:
    """One observed indicator.

    ``categories`` holds the sorted original values of a categorical item;
    code ``k`` in ``PreparedData.y`` stands for ``categories[k]``.  It is empty
    for a continuous item.  ``name`` is the column label as given.
    """

    name: str
    kind: str
    categories: tuple = ()

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def is_categorical(self) -> bool:
        return self.kind in CATEGORICAL_KINDS


# eq=False: the dataclass __eq__ would compare numpy arrays elementwise and fail.
@dataclass(frozen=True, eq=False)
class PreparedData:
    """Validated wide data; arrays are read-only (shared, never copied, by models)."""

    items: tuple[ItemInfo, ...]
    y: np.ndarray
    observed: np.ndarray
    covariates: np.ndarray
    covariate_names: tuple[str, ...]
    cluster_idx: np.ndarray | None
    cluster_labels: np.ndarray | None
    cluster_name: str | None
    row_index: pd.Index
    dropped: pd.DataFrame

    @property
    def n_persons(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_covariates(self) -> int:
        return len(self.covariate_names)

    @property
    def n_clusters(self) -> int | None:
        return None if self.cluster_labels is None else len(self.cluster_labels)

    @property
    def is_two_level(self) -> bool:
        return self.cluster_idx is not None

    @property
    def item_names(self) -> tuple:
        return tuple(it.name for it in self.items)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(it.kind for it in self.items)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([it.is_categorical for it in self.items], dtype=bool)

    @property
    def continuous_mask(self) -> np.ndarray:
        return ~self.categorical_mask

    @property
    def n_missing(self) -> int:
        return int((~self.observed).sum())

    def summary(self) -> str:
        lines = []
        if self.is_two_level:
            lines.append(
                f"{self.n_persons} persons in {self.n_clusters} clusters "
                f"(column {self.cluster_name!r})"
            )
        else:
            lines.append(f"{self.n_persons} persons (single level)")
        by_kind = [f"{self.kinds.count(k)} {k}" for k in ITEM_KINDS if k in self.kinds]
        lines.append(_plural(self.n_items, "item") + ": " + ", ".join(by_kind))
        if self.n_covariates:
            names = ", ".join(map(str, self.covariate_names))
            lines.append(_plural(self.n_covariates, "covariate") + ": " + names)
        cells = self.y.size
        pct = 100.0 * self.n_missing / cells if cells else 0.0
        lines.append(f"missing item cells: {self.n_missing} of {cells} ({pct:.1f}%)")
        if self.n_dropped:
            detail = _reason_detail(self.dropped["reason"], self.covariate_names)
            lines.append(f"rows dropped: {self.n_dropped} ({detail})")
        else:
            lines.append("rows dropped: 0")
        return "\n".join(lines)

    def __repr__(self) -> str:
        level = f"{self.n_clusters} clusters" if self.is_two_level else "single level"
        return (
            f"PreparedData({_plural(self.n_persons, 'person')}, "
            f"{_plural(self.n_items, 'item')}, {_plural(self.n_covariates, 'covariate')}, "
            f"{level}, {self.n_dropped} rows dropped)"
        )


# --------------------------------------------------------------------------- formatting


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _scalar(v):
    """numpy scalar -> Python scalar, integral floats -> int (for messages and categories)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _fmt_values(values, limit: int = 6) -> str:
    values = list(values)
    shown = ", ".join(repr(_scalar(v)) for v in values[:limit])
    if len(values) > limit:
        shown += f", ... ({len(values) - limit} more)"
    return shown


def _column_error(argname: str, col, columns: pd.Index) -> DataError:
    names = [str(c) for c in columns]
    close = difflib.get_close_matches(str(col), names, n=3, cutoff=0.6)
    hint = f" Did you mean {_fmt_values(close)}?" if close else ""
    return DataError(
        f"{argname}: column {col!r} not found in data.{hint} "
        f"Available columns: {_fmt_values(columns, limit=12)}."
    )


# --------------------------------------------------------------------------- phase 1


def _as_name_list(arg, argname: str, allow_empty: bool) -> list:
    if arg is None:
        names = []
    elif isinstance(arg, str):
        names = [arg]
    elif isinstance(arg, (list, tuple, pd.Index, np.ndarray)):
        names = list(arg)
    else:
        raise DataError(
            f"{argname}: got a {type(arg).__name__}; expected a list of column names "
            f"(or a single column name as a string)."
        )
    if not names and not allow_empty:
        raise DataError(f"{argname}: got an empty list; give at least one column name.")
    for n in names:
        if not isinstance(n, Hashable):  # e.g. a nested list
            raise DataError(
                f"{argname}: got {n!r} ({type(n).__name__}) as a column name; "
                f"expected column labels such as strings."
            )
    seen = set()
    dups = [n for n in names if n in seen or seen.add(n)]
    if dups:
        raise DataError(
            f"{argname}: column {dups[0]!r} is listed more than once; list each column once."
        )
    return names


def _check_columns(data: pd.DataFrame, names: list, argname: str) -> None:
    for col in names:
        if col not in data.columns:
            raise _column_error(argname, col, data.columns)
        if isinstance(data[col], pd.DataFrame):
            raise DataError(
                f"{argname}: data has several columns named {col!r}; "
                f"rename them so that each column name is unique."
            )


def _check_kind(kind, where: str) -> str:
    if not isinstance(kind, str) or kind not in ITEM_KINDS:
        close = difflib.get_close_matches(str(kind), ITEM_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"{where}: got {kind!r}; valid choices are {_fmt_values(ITEM_KINDS)}{hint}."
        )
    return kind


def _declared_kinds(item_types, items: list) -> dict:
    """item -> declared kind; items left out are inferred later."""
    if item_types is None:
        return {}
    if isinstance(item_types, str):
        kind = _check_kind(item_types, "item_types")
        return dict.fromkeys(items, kind)
    if isinstance(item_types, Mapping):
        extra = [k for k in item_types if k not in items]
        if extra:
            raise DataError(
                f"item_types: key {extra[0]!r} is not one of the items "
                f"({_fmt_values(items)}); remove it or add it to `items`."
            )
        return {k: _check_kind(v, f"item_types[{k!r}]") for k, v in item_types.items()}
    raise DataError(
        f"item_types: got a {type(item_types).__name__}; expected None (infer), one of "
        f"{_fmt_values(ITEM_KINDS)} for every item, or a dict item -> type."
    )


# --------------------------------------------------------------------------- phase 2


def _non_numeric_error(series: pd.Series, col, role: str, example) -> DataError:
    labels = list(pd.unique(series.dropna()))[:3]
    if role == "items":
        looks_numeric = all(isinstance(v, str) and _is_number_text(v) for v in labels)
        if looks_numeric:
            fix = f"convert it, e.g. df[{col!r}] = pd.to_numeric(df[{col!r}])"
        else:
            mapping = ", ".join(f"{_scalar(v)!r}: {i}" for i, v in enumerate(labels))
            fix = f"map the labels to numbers, e.g. df[{col!r}] = df[{col!r}].map({{{mapping}}})"
        what = "item responses must be numeric codes"
    else:
        fix = (
            f"dummy-code it, e.g. d = pd.get_dummies(df[{col!r}], prefix={str(col)!r}, "
            f"drop_first=True, dtype=float); df = df.join(d) and pass the columns of d "
            f"as covariates"
        )
        what = "covariates must be numeric"
    return DataError(
        f"{role}: column {col!r} holds non-numeric values (e.g. {_scalar(example)!r}, "
        f"dtype {series.dtype}); {what}. Fix: {fix}."
    )


def _is_number_text(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_real(v) -> bool:
    # bool is accepted as 0/1; complex is not numbers.Real.
    return isinstance(v, (numbers.Real, np.bool_))


def _to_float(series: pd.Series, col, role: str) -> np.ndarray:
    """Float64 copy of a column, NaN for missing; DataError on non-numeric codes."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        if pd.api.types.is_numeric_dtype(cats.dtype) and not pd.api.types.is_complex_dtype(
            cats.dtype
        ):
            codes = series.cat.codes.to_numpy()
            out = np.asarray(cats, dtype=float)[np.maximum(codes, 0)]
            out[codes < 0] = np.nan
            return out
        bad = series.dropna()
        raise _non_numeric_error(series, col, role, bad.iloc[0] if len(bad) else None)
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if dtype == object:
        values = series.to_numpy()
        missing = series.isna().to_numpy()
        for v, m in zip(values, missing):
            if not m and not _is_real(v):
                raise _non_numeric_error(series, col, role, v)
        out = np.full(len(values), np.nan)
        out[~missing] = [float(v) for v in values[~missing]]
        return out
    # str, datetime, timedelta, interval, complex, ...
    bad = series.dropna()
    raise _non_numeric_error(series, col, role, bad.iloc[0] if len(bad) else None)


def _check_finite(values: np.ndarray, col, role: str, index: pd.Index) -> None:
    inf = np.isinf(values)
    if inf.any():
        first = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{role}: column {col!r} holds {int(inf.sum())} infinite value(s) (e.g. "
            f"{values[first]} at index {index[first]!r}). Fix: replace them with NaN "
            f"(missing) or with finite values."
        )


# --------------------------------------------------------------------------- phase 4


def _item_info(col, values: np.ndarray, declared: str | None, n_kept: int) -> ItemInfo:
    """Check one item over the kept rows and return its kind and categories."""
    obs = values[~np.isnan(values)]
    if obs.size < 2:
        raise DataError(
            f"items: column {col!r} has {obs.size} non-missing value(s) among the "
            f"{n_kept} rows kept; at least 2 are needed. Fix: drop it from `items`."
        )
    uniq = np.unique(obs)
    if uniq.size < 2:
        raise DataError(
            f"items: column {col!r} is constant (every observed value is "
            f"{_scalar(uniq[0])!r}); a constant item cannot be estimated. "
            f"Fix: drop it from `items`."
        )
    integral = bool(np.all(uniq == np.round(uniq)))
    if declared is None:
        if uniq.size == 2:
            kind = "binary"
        elif integral and uniq.size <= MAX_INFERRED_ORDINAL:
            kind = "ordinal"
        else:
            kind = "continuous"
        where = (
            f"items: column {col!r} was inferred as {kind!r} (integer codes with 3 to "
            f"{MAX_INFERRED_ORDINAL} distinct values)"
        )
        subject = "it"
        alt = f", or declare item_types={{{col!r}: 'continuous'}}"
    else:
        kind = declared
        where = f"item_types[{col!r}] is {kind!r}"
        subject = f"column {col!r}"
        alt = ""

    if kind == "binary" and uniq.size > 2:
        raise DataError(
            f"{where} but {subject} has {uniq.size} distinct values "
            f"({_fmt_values(uniq)}). Fix: declare it 'ordinal' "
            f"(item_types={{{col!r}: 'ordinal'}}) or recode it to two values."
        )
    if kind == "ordinal":
        if not integral:
            bad = uniq[uniq != np.round(uniq)][0]
            raise DataError(
                f"{where} but {subject} holds non-integer values (e.g. "
                f"{_scalar(bad)!r}). Fix: recode it to consecutive integer codes, e.g. "
                f"df[{col!r}] = df[{col!r}].rank(method='dense'), or declare it 'continuous'."
            )
        expected = np.arange(uniq[0], uniq[-1] + 1)
        gaps = np.setdiff1d(expected, uniq)
        if gaps.size:
            raise DataError(
                f"{where} but {subject} skips code(s) {_fmt_values(gaps)} "
                f"(observed codes: {_fmt_values(uniq, limit=12)}); ordinal codes must be "
                f"consecutive integers. Fix: recode them to consecutive integers, e.g. "
                f"df[{col!r}] = df[{col!r}].rank(method='dense'){alt}."
            )
    categories = tuple(_scalar(v) for v in uniq) if kind in CATEGORICAL_KINDS else ()
    return ItemInfo(name=col, kind=kind, categories=categories)


# --------------------------------------------------------------------------- main


def prepare_wide(data, items, *, item_types=None, cluster=None, covariates=None) -> PreparedData:
    """Validate wide data and build the arrays of a (multilevel) mixture model.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per person.
    items : list of column names (a single name is accepted)
        The observed indicators.
    item_types : None, str or dict, optional
        ``"binary"``, ``"ordinal"`` or ``"continuous"``, for all items (str) or per
        item (dict; items left out are inferred).  ``None`` infers every kind:
        2 distinct values -> binary, integer codes with 3..10 distinct values ->
        ordinal, otherwise continuous.
    cluster : column name, optional
        Level-2 unit label (any type).  ``None`` gives a single-level model.
    covariates : list of column names, optional
        Numeric predictors (dummy-code categorical ones first).

    Rows whose items are all missing, or that miss a covariate or the cluster
    label, are excluded, listed in ``PreparedData.dropped`` and reported by one
    ``DroppedRowsWarning``.  Rows with some missing items are kept.
    """
    items, covariates, declared = _check_arguments(data, items, item_types, cluster, covariates)
    y_raw, x_raw = _raw_values(data, items, covariates)
    keep, reasons = _rows_to_exclude(data, y_raw, x_raw, covariates, cluster)
    infos, cluster_idx, cluster_labels = _kept_contents(data, y_raw, keep, items, declared, cluster)
    # all checks passed: report exclusions, then build arrays
    dropped = _report_dropped(data.index, keep, reasons, covariates, len(data))
    y = y_raw[keep].copy()
    for j, info in enumerate(infos):
        if info.is_categorical:
            col = y[:, j]
            seen = ~np.isnan(col)
            col[seen] = np.searchsorted(np.asarray(info.categories, dtype=float), col[seen])
    observed = ~np.isnan(y)
    x = np.ascontiguousarray(x_raw[keep])
    for arr in (y, observed, x, cluster_idx, cluster_labels):
        if arr is not None:
            arr.setflags(write=False)
    return PreparedData(
        items=infos,
        y=y,
        observed=observed,
        covariates=x,
        covariate_names=tuple(covariates),
        cluster_idx=cluster_idx,
        cluster_labels=cluster_labels,
        cluster_name=cluster,
        row_index=data.index[keep],
        dropped=dropped,
    )


def _check_arguments(data, items, item_types, cluster, covariates):
    """Phase 1: the arguments (types, columns, overlaps); returns the item and
    covariate name lists and the declared item kinds."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data: got a {type(data).__name__}; expected a pandas DataFrame with one row "
            f"per person. Fix: wrap it, e.g. pd.DataFrame(array, columns=[...])."
        )
    items = _as_name_list(items, "items", allow_empty=False)
    covariates = _as_name_list(covariates, "covariates", allow_empty=True)
    _check_columns(data, items, "items")
    _check_columns(data, covariates, "covariates")
    if cluster is not None:
        if isinstance(cluster, (list, tuple, pd.Index, np.ndarray)):
            raise DataError(
                f"cluster: got a {type(cluster).__name__}; expected a single column name."
            )
        _check_columns(data, [cluster], "cluster")
    both = [c for c in covariates if c in items]
    if both:
        raise DataError(
            f"covariates: column {both[0]!r} is also listed in `items`; a column is "
            f"either an item or a covariate. Fix: remove it from one of the two lists."
        )
    if cluster is not None and (cluster in items or cluster in covariates):
        where = "items" if cluster in items else "covariates"
        raise DataError(
            f"cluster: column {cluster!r} is also listed in `{where}`. Fix: remove it "
            f"from `{where}`."
        )
    return items, covariates, _declared_kinds(item_types, items)


def _raw_values(data, items, covariates):
    """Phase 2: numeric values of the items and covariates over all rows."""
    index = data.index
    y_raw = np.column_stack([_to_float(data[c], c, "items") for c in items])
    for j, c in enumerate(items):
        _check_finite(y_raw[:, j], c, "items", index)
    x_raw = np.empty((len(data), len(covariates)))
    for q, c in enumerate(covariates):
        x_raw[:, q] = _to_float(data[c], c, "covariates")
        _check_finite(x_raw[:, q], c, "covariates", index)
    return y_raw, x_raw


def _rows_to_exclude(data, y_raw, x_raw, covariates, cluster):
    """Phase 3: rows to exclude, one reason per row (the first applicable wins)."""
    reasons = np.full(len(data), "", dtype=object)
    excluded = np.isnan(y_raw).all(axis=1)
    reasons[excluded] = REASON_NO_ITEM
    tests = [
        (np.isnan(x_raw[:, q]), _reason_missing_covariate(c)) for q, c in enumerate(covariates)
    ]
    if cluster is not None:
        tests.append((data[cluster].isna().to_numpy(), REASON_MISSING_CLUSTER))
    for missing, reason in tests:
        hit = missing & ~excluded
        reasons[hit] = reason
        excluded |= hit
    keep = ~excluded
    if not keep.any():
        detail = _reason_detail(reasons, covariates)
        raise DataError(
            f"data: no rows remain out of {len(data)} ({detail or 'the frame is empty'}). "
            f"Fix: check that `items`, `covariates` and `cluster` name the right columns "
            f"and that they are not all missing."
        )
    return keep, reasons


def _kept_contents(data, y_raw, keep, items, declared, cluster):
    """Phase 4: item kinds and categories, and cluster codes, of the kept rows."""
    n_kept = int(keep.sum())
    y_kept = y_raw[keep]
    infos = tuple(
        _item_info(c, y_kept[:, j], declared.get(c), n_kept) for j, c in enumerate(items)
    )
    cluster_idx = cluster_labels = None
    if cluster is not None:
        codes, uniques = pd.factorize(data[cluster][keep], sort=False)
        if len(uniques) < 2:
            raise DataError(
                f"cluster: column {cluster!r} has a single cluster ({_scalar(uniques[0])!r}) "
                f"among the {n_kept} rows kept; a two-level model needs at least 2. "
                f"Fix: omit `cluster` for a single-level model."
            )
        cluster_idx = codes.astype(np.int64)
        cluster_labels = np.asarray(list(uniques), dtype=object)
    return infos, cluster_idx, cluster_labels


def _report_dropped(index, keep, reasons, covariates, n_rows) -> pd.DataFrame:
    """The excluded rows as a frame, reported by one ``DroppedRowsWarning``."""
    dropped = pd.DataFrame(
        {"index": pd.Series(index[~keep]), "reason": pd.Series(reasons[~keep], dtype=object)}
    )
    if len(dropped):
        detail = _reason_detail(dropped["reason"], covariates)
        # Rows without any item carry no information on the measurement model;
        # only covariate/cluster exclusions can be undone by the user.
        fix = "The excluded rows are listed in PreparedData.dropped"
        if (dropped["reason"] != REASON_NO_ITEM).any():
            fix += "; to keep them, impute or fix the missing covariate/cluster values first"
        warnings.warn(
            f"{len(dropped)} of {n_rows} rows excluded ({detail}). Rows with only some "
            f"items missing are kept (full-information likelihood). {fix}.",
            DroppedRowsWarning,
            stacklevel=3,
        )
    return dropped
