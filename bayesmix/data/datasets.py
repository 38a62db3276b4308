"""Public example data sets shipped with bayesmix (provenance: ``datasets/README.md``).

The CSV files are package data, read with :mod:`importlib.resources` so that
they are found in an installed wheel as well as in a source checkout.  Each
file is parsed once (cached) and every call returns a deep copy, so a caller
can modify its frame without affecting the next call.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

from bayesmix.exceptions import DataError

# Verbal aggression items, in file order: situation S1..S4, then behaviour
# (Curse, Scold, Shout), then mode (Want, Do), e.g. "S1WantCurse", "S1DoCurse".
_VA_ITEMS = [
    f"S{s}{mode}{behaviour}"
    for s in range(1, 5)
    for behaviour in ("Curse", "Scold", "Shout")
    for mode in ("Want", "Do")
]

_ABILITY_ITEMS = [
    "reason.4", "reason.16", "reason.17", "reason.19",
    "letter.7", "letter.33", "letter.34", "letter.58",
    "matrix.45", "matrix.46", "matrix.47", "matrix.55",
    "rotate.3", "rotate.4", "rotate.6", "rotate.8",
]  # fmt: skip

# Eysenck Personality Inventory: the items chosen for the LTA example (five
# neuroticism items of moderate endorsement, few missing; datasets/README.md).
_EPI_ITEMS = ["V2", "V9", "V16", "V40", "V50"]

# R factors are rebuilt as pandas Categoricals with the level order of the
# source package, so that the first level is the usual reference category
# (e.g. for pd.get_dummies(..., drop_first=True)).
_BANDS = ["bottom 25%", "mid 50%", "top 25%"]


@dataclass(frozen=True)
class _Dataset:
    file: str
    description: str
    items: list[str]
    # column -> dtype passed to read_csv ("str" keeps id labels such as "01" intact)
    read_dtypes: dict = field(default_factory=dict)
    # column -> level order of the R factor
    categoricals: dict = field(default_factory=dict)


_DATASETS: dict[str, _Dataset] = {
    "verbal_aggression": _Dataset(
        file="verbalaggression_resp2.csv",
        description=(
            "Verbal aggression questionnaire (De Boeck & Wilson, 2004): 316 persons, "
            "24 dichotomised items (0 = no, 1 = perhaps/yes), gender, trait anger"
        ),
        items=_VA_ITEMS,
        read_dtypes={c: "int64" for c in _VA_ITEMS} | {"anger": "int64"},
        categoricals={"gender": ["female", "male"]},
    ),
    "ability": _Dataset(
        file="ability.csv",
        description=(
            "ICAR/SAPA cognitive ability items (psychTools): 1525 persons, 16 items "
            "scored 1 correct / 0 incorrect, with missing responses"
        ),
        items=_ABILITY_ITEMS,
        read_dtypes={c: "float64" for c in _ABILITY_ITEMS},
    ),
    "exam": _Dataset(
        file="exam.csv",
        description=(
            "Inner-London exam scores (mlmRev::Exam): 4059 students in 65 schools; "
            "outcome normexam, student covariate standLRT, cluster school"
        ),
        # A two-level mixture regression models one continuous outcome.
        items=["normexam"],
        read_dtypes={"school": "str", "student": "str"},
        categoricals={
            "schgend": ["mixed", "boys", "girls"],
            "vr": _BANDS,
            "intake": _BANDS,
            "sex": ["F", "M"],
            "type": ["Mxd", "Sngl"],
        },
    ),
    "epi": _Dataset(
        file="epi.csv",
        description=(
            "Eysenck Personality Inventory given twice (psychTools::epiR): 474 persons x 2 "
            "occasions (long, column time), 57 items coded 1/2; LTA items V2, V9, V16, V40, V50"
        ),
        items=_EPI_ITEMS,
        read_dtypes={"person": "str", "study": "str"},
    ),
}


def _spec(name) -> _Dataset:
    if not isinstance(name, str) or name not in _DATASETS:
        close = difflib.get_close_matches(str(name), list(_DATASETS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        valid = ", ".join(repr(n) for n in _DATASETS)
        raise DataError(f"name: got {name!r}; valid choices are {valid}.{hint}")
    return _DATASETS[name]


@functools.lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    spec = _DATASETS[name]
    resource = resources.files("bayesmix.data").joinpath("datasets", spec.file)
    with resource.open("rb") as fh:
        df = pd.read_csv(fh, dtype=spec.read_dtypes)
    for col, levels in spec.categoricals.items():
        converted = pd.Categorical(df[col], categories=levels)
        # A label outside `levels` would turn into NaN silently: refuse instead.
        if (pd.isna(converted) & df[col].notna().to_numpy()).any():
            raise RuntimeError(f"{spec.file}: unexpected labels in column {col!r}")
        df[col] = converted
    return df


def load_dataset(name: str) -> pd.DataFrame:
    """Return one of the shipped data sets as a new DataFrame.

    ``name`` is one of ``"verbal_aggression"``, ``"ability"``, ``"exam"``, ``"epi"`` (see
    :func:`list_datasets`).  Missing cells are NaN; labelled columns are
    Categoricals with the level order of the source R package, except id
    columns (``exam``'s ``school`` and ``student``), which are string labels.
    """
    _spec(name)
    return _read(name).copy(deep=True)


def dataset_items(name: str) -> list[str]:
    """Item (indicator) columns of a data set, in column order.

    For ``"exam"`` this is the outcome ``["normexam"]``, the single continuous
    indicator of a two-level mixture regression; for ``"epi"`` the five items of
    the LTA example (the file holds all 57, ``V1`` .. ``V57``).
    """
    return list(_spec(name).items)


def list_datasets() -> pd.DataFrame:
    """One row per shipped data set: name, file, n_rows, n_columns, description."""
    rows = []
    for name, spec in _DATASETS.items():
        df = _read(name)
        rows.append(
            {
                "name": name,
                "file": spec.file,
                "n_rows": df.shape[0],
                "n_columns": df.shape[1],
                "description": spec.description,
            }
        )
    return pd.DataFrame(rows)
