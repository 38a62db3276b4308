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
   enough observations, kinds, category codes, at least two clusters, cluster
   labels that do not collide.

Only then are the warnings issued (``ItemTypeWarning`` for inferred item kinds
that are not obvious, ``MissingCodeWarning`` for values that look like
missing-value codes, ``DroppedRowsWarning``) and the arrays built.  Column
contents are checked in ``codes.py``, item kinds in ``item_kinds.py``.  Pure
numpy/pandas: this module must stay importable without PyMC.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmix.data.codes import (
    _check_finite,
    _fmt_values,
    _plural,
    _to_float,
    cluster_codes,
    missing_code_note,
    missing_codes,
)
from bayesmix.data.item_kinds import (
    CATEGORICAL_KINDS,
    ITEM_KINDS,
    MAX_INFERRED_ORDINAL,
    ItemInfo,
    _declared_kinds,
    inference_message,
    item_info,
)
from bayesmix.exceptions import DataError, DroppedRowsWarning, ItemTypeWarning, MissingCodeWarning

__all__ = ["CATEGORICAL_KINDS", "ITEM_KINDS", "MAX_INFERRED_ORDINAL", "ItemInfo", "PreparedData", "prepare_wide"]

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
        for it in self.items:
            if it.note:
                lines.append(f"item {it.name!r}: {it.note}")
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


# --------------------------------------------------------------------------- phase 1


def _column_error(argname: str, col, columns: pd.Index) -> DataError:
    names = [str(c) for c in columns]
    close = difflib.get_close_matches(str(col), names, n=3, cutoff=0.6)
    hint = f" Did you mean {_fmt_values(close)}?" if close else ""
    return DataError(
        f"{argname}: column {col!r} not found in data.{hint} "
        f"Available columns: {_fmt_values(columns, limit=12)}."
    )


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
        ordinal, otherwise continuous.  Inferences that are not obvious (two
        values that are not consecutive integer codes, 8 to 10 ordinal codes,
        more than 10 integer codes, a few non-integer values among integer
        codes) are listed in one ``ItemTypeWarning`` and in ``summary()``.
    cluster : column name, optional
        Level-2 unit label (any type).  ``None`` gives a single-level model.
    covariates : list of column names, optional
        Numeric predictors (dummy-code categorical ones first).

    Rows whose items are all missing, or that miss a covariate or the cluster
    label, are excluded, listed in ``PreparedData.dropped`` and reported by one
    ``DroppedRowsWarning``.  Rows with some missing items are kept.  Values that
    look like missing-value codes (-9, 999, ... apart from the other values) get
    a ``MissingCodeWarning`` (or, where they would become a category, a
    ``DataError``) with the recoding that sets them to NaN.
    """
    items, covariates, declared = _check_arguments(data, items, item_types, cluster, covariates)
    y_raw, x_raw = _raw_values(data, items, covariates)
    keep, reasons = _rows_to_exclude(data, y_raw, x_raw, covariates, cluster)
    infos, cluster_idx, cluster_labels = _kept_contents(data, y_raw, keep, items, declared, cluster)
    # all checks passed: report inferred kinds, suspect codes and exclusions, then build arrays
    message = inference_message(infos)
    if message:
        warnings.warn(message, ItemTypeWarning, stacklevel=2)
    _report_missing_codes(infos, y_raw[keep], covariates, x_raw[keep])
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
        raise DataError(f"data: got a {_type_name(data)}; expected a pandas DataFrame with one row per person. "
                        f"Fix: {_frame_fix(data)}.")
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
    index = data.index[keep]
    infos = tuple(
        item_info(c, y_kept[:, j], declared.get(c), n_kept, index) for j, c in enumerate(items)
    )
    cluster_idx = cluster_labels = None
    if cluster is not None:
        cluster_idx, cluster_labels = cluster_codes(data[cluster][keep], cluster, n_kept)
    return infos, cluster_idx, cluster_labels


def _type_name(obj) -> str:
    module = type(obj).__module__.split(".")[0]
    return f"{module}.{type(obj).__name__}" if module not in ("builtins", "numpy") else type(obj).__name__


def _frame_fix(data) -> str:
    """How to turn ``data`` into a pandas DataFrame: other dataframe libraries
    (polars, pyarrow, modin, ...) have ``to_pandas``; the dataframe interchange
    protocol is read by ``pd.api.interchange.from_dataframe``."""
    if callable(getattr(data, "to_pandas", None)):
        return "convert it with data.to_pandas() (polars and pyarrow tables have it)"
    if hasattr(data, "__dataframe__"):
        return "convert it with pd.api.interchange.from_dataframe(data)"
    if isinstance(data, dict):
        return "wrap it, e.g. pd.DataFrame(data)"
    return "wrap it, e.g. pd.DataFrame(array, columns=[...])"


def _report_missing_codes(infos, y_kept, covariates, x_kept) -> None:
    """One ``MissingCodeWarning`` for the continuous items and the covariates that
    hold values looking like missing-value codes (categorical items with one
    raised a ``DataError`` already: there it would have become a category)."""
    columns = [("item", it.name, y_kept[:, j]) for j, it in enumerate(infos) if not it.is_categorical]
    columns += [("covariate", c, x_kept[:, q]) for q, c in enumerate(covariates)]
    notes = []
    for role, col, values in columns:
        codes = missing_codes(np.unique(values[~np.isnan(values)]))
        if codes:
            notes.append("  - " + missing_code_note(col, role, values, codes))
    if notes:
        warnings.warn(
            f"{len(notes)} column(s) hold values that look like missing-value codes (they lie apart from the other "
            "values and are used as numbers now):\n" + "\n".join(notes), MissingCodeWarning, stacklevel=3)


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
