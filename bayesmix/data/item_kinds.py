"""Item kinds (binary, ordinal, continuous): declared, or inferred from the codes.

Inference (``item_types=None`` or an item left out of the dict):
2 distinct values -> binary; integer codes with 3..``MAX_INFERRED_ORDINAL``
distinct values -> ordinal; anything else -> continuous. Some of these choices
change the model a great deal on a small accident of the data (one stray 0.5 in
a 0/1 item makes it continuous; an 11-point rating scale becomes continuous),
so every inference that is not obvious gets a note (``ItemInfo.note``), listed
in ``PreparedData.summary()`` and in one ``ItemTypeWarning`` that says what was
inferred, why, and how to force the other choice. Obvious inferences (two
small integer codes such as 0/1, 1/2 or -1/1, 3..7 integer codes,
values that are mostly non-integer) stay silent.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bayesmix.data.codes import _fmt_values, _scalar, missing_code_fix, missing_codes
from bayesmix.exceptions import DataError

ITEM_KINDS = ("binary", "ordinal", "continuous")
CATEGORICAL_KINDS = ("binary", "ordinal")
# Inference: integer codes with 3..MAX_INFERRED_ORDINAL distinct values are
# ordinal; more distinct values are far more often a score than a rating scale.
MAX_INFERRED_ORDINAL = 10
# An inferred ordinal item with more categories than this is reported: each
# class then carries that many thresholds minus one per item.
MANY_CATEGORIES = 7
# Two integer values no larger than this in absolute value are plainly binary codes.
SMALL_CODE = 10
# Where the factories take item types: the hint names both spellings.
FORCE_ARGUMENT = "item_types (outcome_types in mixture_regression / within_between)"


@dataclass(frozen=True)
class ItemInfo:
    """One observed indicator.

    ``categories`` holds the sorted original values of a categorical item;
    code ``k`` in ``PreparedData.y`` stands for ``categories[k]``.  It is empty
    for a continuous item.  ``name`` is the column label as given.  ``note``
    says why an inferred kind is not obvious (empty when it is, or when the kind
    was declared); it takes no part in comparisons.
    """

    name: str
    kind: str
    categories: tuple = ()
    note: str = field(default="", compare=False)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def is_categorical(self) -> bool:
        return self.kind in CATEGORICAL_KINDS


# --------------------------------------------------------------------------- declared kinds


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


# --------------------------------------------------------------------------- inference


def _infer(col, obs: np.ndarray, uniq: np.ndarray, integral: bool, index) -> tuple[str, str]:
    """(kind, note) of an item whose kind was not declared; the note is empty
    when the inference is obvious."""
    force = lambda kind: f"item_types={{{col!r}: {kind!r}}}"  # noqa: E731
    if uniq.size == 2:
        # small integer codes (0/1, 1/2, -1/1, 1/5) are a binary item; 0.5/1.5 or 10/20 may be a measurement
        if integral and np.max(np.abs(uniq)) <= SMALL_CODE:
            return "binary", ""
        return "binary", (
            f"inferred 'binary' because it takes only 2 distinct values ({_fmt_values(uniq)}), which are not "
            f"small integer codes; if it is a measurement, declare {force('continuous')}")
    if integral and uniq.size <= MAX_INFERRED_ORDINAL:
        if uniq.size <= MANY_CATEGORIES:
            return "ordinal", ""
        return "ordinal", (
            f"inferred 'ordinal' from {uniq.size} integer codes ({_fmt_values(uniq, limit=3)}), i.e. "
            f"{uniq.size - 1} thresholds per class; to treat it as a score, declare {force('continuous')}")
    if integral:
        return "continuous", (
            f"inferred 'continuous' because its {uniq.size} distinct integer values are more than "
            f"{MAX_INFERRED_ORDINAL} (taken for a score, not a rating scale); if it is a rating scale, declare "
            f"{force('ordinal')} (the codes must be consecutive integers)")
    stray = obs != np.round(obs)
    ints = np.unique(obs[~stray])
    if 2 <= ints.size <= MAX_INFERRED_ORDINAL and stray.sum() < (~stray).sum():
        first = np.flatnonzero(stray)[0]
        return "continuous", (
            f"inferred 'continuous' because {int(stray.sum())} of its {obs.size} values are not integers (e.g. "
            f"{_scalar(obs[first])!r} at index {index[first]!r}) among the integer codes {_fmt_values(ints)}; "
            f"if it is categorical, correct those values (the right code, or NaN if missing); if it is "
            f"continuous, declare {force('continuous')}")
    return "continuous", ""


def item_info(col, values: np.ndarray, declared: str | None, n_kept: int, index) -> ItemInfo:
    """Check one item over the kept rows (``values``, labelled by ``index``) and
    return its kind, categories and inference note."""
    seen = ~np.isnan(values)
    obs = values[seen]
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
    note = ""
    if declared is None:
        kind, note = _infer(col, obs, uniq, integral, index[seen])
        where = f"items: column {col!r} was inferred as {kind!r}"
        if kind == "ordinal":
            where += f" (integer codes with 3 to {MAX_INFERRED_ORDINAL} distinct values)"
        subject = "it"
        alt = f", or declare item_types={{{col!r}: 'continuous'}}"
    else:
        kind = declared
        where = f"item_types[{col!r}] is {kind!r}"
        subject = f"column {col!r}"
        alt = ""
    # A missing-value code among the codes must become NaN, not a category: the
    # hint then replaces the recoding that would have kept it as one.
    miss = missing_codes(uniq) if kind in CATEGORICAL_KINDS else []
    miss_fix = (f"{_fmt_values(miss)} look(s) like a missing-value code; set it to NaN (not a category): "
                f"{missing_code_fix(col, miss)}") if miss else ""

    if kind == "binary" and uniq.size > 2:
        fix = miss_fix or (f"declare it 'ordinal' (item_types={{{col!r}: 'ordinal'}}) or recode it to two values")
        raise DataError(
            f"{where} but {subject} has {uniq.size} distinct values "
            f"({_fmt_values(uniq)}). Fix: {fix}."
        )
    if kind == "ordinal":
        if not integral:
            bad = uniq[uniq != np.round(uniq)][0]
            fix = (f"recode it to consecutive integer codes, e.g. df[{col!r}] = "
                   f"df[{col!r}].rank(method='dense'), or declare it 'continuous'")
            raise DataError(
                f"{where} but {subject} holds non-integer values (e.g. "
                f"{_scalar(bad)!r}). Fix: {miss_fix + '; then ' if miss_fix else ''}{fix}."
            )
        expected = np.arange(uniq[0], uniq[-1] + 1)
        gaps = np.setdiff1d(expected, uniq)
        if gaps.size:
            fix = miss_fix or (f"recode them to consecutive integers, e.g. "
                               f"df[{col!r}] = df[{col!r}].rank(method='dense'){alt}")
            raise DataError(
                f"{where} but {subject} skips code(s) {_fmt_values(gaps)} "
                f"(observed codes: {_fmt_values(uniq, limit=12)}); ordinal codes must be "
                f"consecutive integers. Fix: {fix}."
            )
    categories = tuple(_scalar(v) for v in uniq) if kind in CATEGORICAL_KINDS else ()
    return ItemInfo(name=col, kind=kind, categories=categories, note=note)


def inference_message(infos) -> str | None:
    """The text of the one ``ItemTypeWarning`` (None when every inference is obvious)."""
    noted = [it for it in infos if it.note]
    if not noted:
        return None
    lines = [f"  - {it.name!r}: {it.note}." for it in noted]
    return (f"{len(noted)} item type(s) were inferred from the data where the choice is not obvious; check "
            f"them (declared types are not inferred: set them with {FORCE_ARGUMENT}):\n" + "\n".join(lines))
