"""Column contents of wide data: numeric codes, missing-value codes, cluster labels.

Helpers of ``prepare_wide`` (``validate.py``) that look at the values of one
column: conversion to float with an error that says how to convert, detection
of common missing-value codes (-9, 999, '.') that would otherwise become a
category or a number, and the cluster labels, refused when two of them would
collide (``0`` and ``'0'``; ``1``, ``1.0`` and ``True``).

Hints never propose a recoding that could change what the data mean: a label
whose code the package cannot know is shown with a ``<code>`` placeholder.
Pure numpy/pandas: this module must stay importable without PyMC.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from bayesmix.exceptions import DataError

# Text that conventionally marks a missing response (SPSS/SAS/Stata exports, Excel).
MISSING_TEXT = frozenset({"", ".", "-", "?", "na", "n/a", "nan", "null", "none", "missing", "#n/a", ".a", "-9",
                          "-99", "-999", "99", "999", "9999"})
# Numeric codes that conventionally mark a missing response. A value is only
# suspected when it lies apart from the other values (see ``missing_codes``), so
# 9 on a 0..10 scale or 99 among ages 18..100 are not flagged.
MISSING_NUMBERS = (-9, -8, -7, -99, -98, -97, -88, -999, -998, -9999, 8, 9, 88, 97, 98, 99, 998, 999, 9999)


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


# --------------------------------------------------------------------------- missing-value codes


def missing_codes(uniq: np.ndarray) -> list:
    """The values of ``uniq`` (sorted distinct observed values of one column) that
    look like missing-value codes: one of ``MISSING_NUMBERS`` lying apart from the
    other values. Apart means, when the others are integers, not adjacent to
    their range (1..5 and 9; 0/1 and -9); otherwise outside their range by more
    than the range itself, or negative when all others are >= 0."""
    uniq = np.asarray(uniq, dtype=float)
    cand = np.isin(uniq, MISSING_NUMBERS)
    others = uniq[~cand]
    if not cand.any() or others.size < 2:
        return []
    integral = bool(np.all(others == np.round(others)))
    span = others.max() - others.min()
    suspects = list(uniq[cand])
    # a candidate next to the accepted values is accepted and widens their range
    # (ages 18..99 hold 88, 97, 98 and 99, each next to the one before)
    lo, hi = others.min(), others.max()
    changed = True
    while changed:
        changed = False
        for c in list(suspects):
            if integral:
                apart = c > hi + 1 or c < lo - 1
            else:
                apart = c > hi + span or c < lo - span or (c < 0 <= lo)
            if not apart:
                suspects.remove(c)
                lo, hi = min(lo, c), max(hi, c)
                changed = True
    return [_scalar(c) for c in suspects]


def missing_code_fix(col, codes) -> str:
    """The recoding that turns missing-value codes of column ``col`` into NaN."""
    mapping = ", ".join(f"{c!r}: np.nan" for c in codes)
    return f"df[{col!r}] = df[{col!r}].replace({{{mapping}}})"


def _counted(values: np.ndarray, codes) -> str:
    return ", ".join(f"{c!r} ({_plural(int(np.sum(values == c)), 'row')})" for c in codes)


def missing_code_note(col, role: str, values: np.ndarray, codes) -> str:
    """One line of the ``MissingCodeWarning`` for column ``col``."""
    return (f"{role} column {col!r}: {_counted(values, codes)}; if this marks a missing response, set it to NaN: "
            f"{missing_code_fix(col, codes)}")


# --------------------------------------------------------------------------- numeric codes


def _is_number_text(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _is_real(v) -> bool:
    # bool is accepted as 0/1; complex is not numbers.Real.
    return isinstance(v, (numbers.Real, np.bool_))


def _is_missing_text(v) -> bool:
    return isinstance(v, str) and v.strip().lower() in MISSING_TEXT


def _label_fix(series: pd.Series, col, text: list) -> str:
    """How to turn text labels into numeric codes without changing their meaning."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
        return (f"the categories are ordered ({_fmt_values(dtype.categories, limit=8)}); use their positions: "
                f"df[{col!r}] = df[{col!r}].cat.codes.where(df[{col!r}].notna())")
    text = sorted(text, key=str)
    if len(text) == 2:
        mapping = ", ".join(f"{v!r}: {i}" for i, v in enumerate(text))
        return (f"map the two labels to 0/1 (which one is 1 only sets the direction of the item), e.g. "
                f"df[{col!r}] = df[{col!r}].map({{{mapping}}})")
    shown = text[:8]
    mapping = ", ".join(f"{v!r}: <code>" for v in shown) + (", ..." if len(text) > 8 else "")
    return (f"map every label ({len(text)} in all) to its position on the scale, e.g. "
            f"df[{col!r}] = df[{col!r}].map({{{mapping}}}); an alphabetical numbering would not keep the order")


def _non_numeric_error(series: pd.Series, col, role: str, example) -> DataError:
    values = list(pd.unique(series.dropna()))
    missing = [v for v in values if _is_missing_text(v)]
    number_text = [v for v in values if isinstance(v, str) and not _is_missing_text(v) and _is_number_text(v)]
    numeric = [v for v in values if _is_real(v)]
    labels = [v for v in values if v not in missing and v not in number_text and v not in numeric]
    # show a value that needs fixing, not a number written as text
    example = next(iter(labels + missing), example)
    fixes = []
    if missing:
        mapping = ", ".join(f"{v!r}: np.nan" for v in missing)
        fixes.append(f"{_fmt_values(missing)} look(s) like a missing-value code; set it to NaN (not a category): "
                     f"df[{col!r}] = df[{col!r}].replace({{{mapping}}})")
    if role == "items":
        what = "item responses must be numeric codes"
        codes = numeric + number_text
        if labels and codes:
            # a stray label among numeric codes: only the user knows which code it means
            mapping = ", ".join(f"{v!r}: <code>" for v in labels[:6])
            fixes.append(f"the other values are numeric codes ({_fmt_values(sorted(codes, key=float))}); replace "
                         f"each label by the code it stands for, e.g. df[{col!r}] = df[{col!r}].replace("
                         f"{{{mapping}}}), or by np.nan if it marks a missing response")
        elif labels:
            fixes.append(_label_fix(series, col, labels))
    else:
        what = "covariates must be numeric"
        if labels:
            fixes.append(f"dummy-code it, e.g. d = pd.get_dummies(df[{col!r}], prefix={str(col)!r}, "
                         f"drop_first=True, dtype=float); df = df.join(d) and pass the columns of d as covariates")
    if number_text or (missing and not labels):
        fixes.append(f"convert the numbers written as text: df[{col!r}] = pd.to_numeric(df[{col!r}])")
    if not fixes:  # e.g. dates or complex numbers
        fixes.append(f"give {'numeric codes' if role == 'items' else 'numbers'} instead")
    return DataError(
        f"{role}: column {col!r} holds non-numeric values (e.g. {_scalar(example)!r}, "
        f"dtype {series.dtype}); {what}. Fix: " + "; ".join(fixes) + "."
    )


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


# --------------------------------------------------------------------------- cluster labels


def _label_key(v):
    """(kind, value) of a cluster label: pandas merges 1, 1.0 and True into one
    cluster, and str() would merge 0 and '0'; keys that differ are different labels."""
    v = v.item() if isinstance(v, np.generic) else v
    kind = "bool" if isinstance(v, bool) else type(v).__name__
    return kind, v


def cluster_codes(labels: pd.Series, cluster, n_kept: int):
    """(codes, labels) of the cluster column over the kept rows, in order of first
    appearance; a ``DataError`` for a single cluster or colliding labels."""
    codes, uniques = pd.factorize(labels, sort=False)
    if len(uniques) < 2:
        raise DataError(
            f"cluster: column {cluster!r} has a single cluster ({_scalar(uniques[0])!r}) "
            f"among the {n_kept} rows kept; a two-level model needs at least 2. "
            f"Fix: omit `cluster` for a single-level model."
        )
    fix = (f"Fix: give the column one type, e.g. df[{cluster!r}] = df[{cluster!r}].astype(str) after checking "
           f"that these are the same cluster, or relabel the clusters that differ.")
    if labels.dtype == object:
        # pandas hashes 1, 1.0 and True alike: they would become one cluster silently
        keys = {}
        for code, v in zip(codes, labels.to_numpy()):
            keys.setdefault(code, {}).setdefault(_label_key(v), v)
        for code, seen in keys.items():
            if len(seen) > 1:
                raise DataError(
                    f"cluster: column {cluster!r} holds labels of different types that pandas treats as one "
                    f"cluster ({', '.join(repr(v) for v in seen.values())}); they may be different clusters. "
                    + fix)
    text: dict = {}
    for v in uniques:
        text.setdefault(str(v), []).append(v)
    clash = next((vs for vs in text.values() if len(vs) > 1), None)
    if clash is not None:
        raise DataError(
            f"cluster: column {cluster!r} holds labels that are different values but the same text "
            f"({', '.join(repr(v) for v in clash)} are all {str(clash[0])!r}); they would collide in the "
            f"printed output and the model's coordinates. " + fix)
    return codes.astype(np.int64), np.asarray(list(uniques), dtype=object)
