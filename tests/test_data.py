"""Tests of bayesmix.data: shipped data sets and validation of wide data.

Expected values are computed independently of the code under test (the CSV
files are read back with the csv module; toy frames have hand-written answers).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix.data import (
    ItemInfo,
    PreparedData,
    dataset_items,
    list_datasets,
    load_dataset,
    prepare_wide,
)
from bayesmix.exceptions import DataError, DroppedRowsWarning, ItemTypeWarning

DATA_DIR = Path(__file__).resolve().parents[1] / "bayesmix" / "data" / "datasets"


def _csv(file: str) -> tuple[list[str], list[list[str]]]:
    with open(DATA_DIR / file, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture
def toy():
    """Clean frame: binary a, ordinal b (codes 1..3), continuous c, covariates, cluster."""
    return pd.DataFrame(
        {
            "a": [0, 1, 0, 1, 1, 0],
            "b": [1, 2, 3, 2, 1, 3],
            "c": [0.5, -1.2, 3.3, 0.0, 2.2, 1.1],
            "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
            "sex": ["F", "M", "F", "M", "F", "M"],
            "school": ["s1", "s1", "s2", "s2", "s3", "s3"],
        }
    )


# =========================================================================== data sets


def test_verbal_aggression_matches_csv():
    header, rows = _csv("verbalaggression_resp2.csv")
    df = load_dataset("verbal_aggression")
    items = dataset_items("verbal_aggression")
    assert df.shape == (316, 26)
    assert len(items) == 24 and len(set(items)) == 24
    assert set(items) | {"gender", "anger"} == set(df.columns)
    assert items == [h for h in header if h not in ("gender", "anger")]
    # every item cell is "0" or "1" in the file, none missing
    raw = np.array([[r[header.index(i)] for i in items] for r in rows])
    assert set(np.unique(raw)) == {"0", "1"}
    np.testing.assert_array_equal(df[items].to_numpy(), raw.astype(int))
    assert not df[items].isna().any().any()
    assert pd.api.types.is_integer_dtype(df["anger"])
    assert df["anger"].tolist() == [int(r[header.index("anger")]) for r in rows]
    assert df["gender"].astype(str).tolist() == [r[header.index("gender")] for r in rows]
    assert (df["gender"] == "female").sum() == 243  # documented: 243 women, 73 men


def test_ability_matches_csv_and_missing_count():
    header, rows = _csv("ability.csv")
    n_empty = sum(cell == "" for r in rows for cell in r)
    assert n_empty == 1143  # documented in the source README
    df = load_dataset("ability")
    assert df.shape == (1525, 16)
    assert dataset_items("ability") == header
    assert int(df.isna().sum().sum()) == n_empty
    obs = df.to_numpy()
    assert set(np.unique(obs[~np.isnan(obs)])) == {0.0, 1.0}


def test_exam_schools():
    header, rows = _csv("exam.csv")
    schools = {r[header.index("school")] for r in rows}
    df = load_dataset("exam")
    assert df.shape == (4059, 10)
    assert len(schools) == 65
    assert df["school"].nunique() == 65
    assert set(df["school"]) == schools  # string labels, not ints
    assert all(isinstance(s, str) for s in df["school"].head())
    assert dataset_items("exam") == ["normexam"]
    np.testing.assert_allclose(
        df["normexam"].to_numpy(), [float(r[header.index("normexam")]) for r in rows]
    )


def test_load_dataset_returns_fresh_copy():
    a = load_dataset("ability")
    a.iloc[0, 0] = 99.0
    a["new"] = 1
    b = load_dataset("ability")
    assert "new" not in b.columns
    assert b.iloc[0, 0] != 99.0


def test_list_datasets():
    table = list_datasets()
    assert list(table.columns) == ["name", "file", "n_rows", "n_columns", "description"]
    got = table.set_index("name")[["n_rows", "n_columns"]].to_dict("index")
    assert got == {
        "verbal_aggression": {"n_rows": 316, "n_columns": 26},
        "ability": {"n_rows": 1525, "n_columns": 16},
        "exam": {"n_rows": 4059, "n_columns": 10},
        "epi": {"n_rows": 948, "n_columns": 61},
    }
    for file in table["file"]:
        assert (DATA_DIR / file).is_file()


@pytest.mark.parametrize("func", [load_dataset, dataset_items])
def test_unknown_dataset_name(func):
    with pytest.raises(DataError, match=r"'abilty'.*'verbal_aggression', 'ability', 'exam', 'epi'"):
        func("abilty")


# =========================================================================== prepare_wide: success


def test_ability_keeps_rows_with_an_observed_item():
    header, rows = _csv("ability.csv")
    kept_pos = [i for i, r in enumerate(rows) if any(cell != "" for cell in r)]
    n_missing_kept = sum(cell == "" for i in kept_pos for cell in rows[i])
    df = load_dataset("ability")
    with pytest.warns(DroppedRowsWarning, match=r"16 of 1525 rows excluded \(16 no observed item"):
        p = prepare_wide(df, dataset_items("ability"))
    assert p.n_persons == len(kept_pos) == 1509
    assert list(p.row_index) == kept_pos
    assert p.n_dropped == 1525 - len(kept_pos)
    assert set(p.dropped["reason"]) == {"no observed item"}
    assert int((~p.observed).sum()) == n_missing_kept
    assert p.kinds == ("binary",) * 16
    assert not p.is_two_level and p.n_clusters is None and p.cluster_idx is None


def test_toy_dropped_rows_warning_and_indices():
    df = pd.DataFrame(
        {
            "a": [0, 1, np.nan, 1, 0, 1],
            "b": [1, np.nan, np.nan, 0, 1, 0],
            "x": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    with pytest.warns(DroppedRowsWarning) as rec:
        p = prepare_wide(df, ["a", "b"], covariates=["x"])
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "2 of 6 rows excluded" in msg
    assert "1 no observed item" in msg and "1 missing covariate x" in msg
    assert p.dropped["index"].tolist() == [12, 13]
    assert p.dropped["reason"].tolist() == ["no observed item", "missing covariate x"]
    assert list(p.row_index) == [10, 11, 14, 15]
    # the partially missing row (label 11) is kept, with b unobserved
    np.testing.assert_array_equal(
        p.observed, [[True, True], [True, False], [True, True], [True, True]]
    )
    assert np.isnan(p.y[1, 1])
    np.testing.assert_array_equal(p.y[:, 0], [0, 1, 0, 1])
    np.testing.assert_array_equal(p.covariates, [[1.0], [2.0], [5.0], [6.0]])
    assert p.covariate_names == ("x",)
    assert "rows dropped: 2" in p.summary()


def test_missing_cluster_row_dropped(toy):
    toy.loc[2, "school"] = None
    with pytest.warns(DroppedRowsWarning, match="1 missing cluster"):
        p = prepare_wide(toy, ["a", "b"], cluster="school")
    assert p.dropped.to_dict("list") == {"index": [2], "reason": ["missing cluster"]}
    assert list(p.row_index) == [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(p.cluster_idx, [0, 0, 1, 2, 2])


def test_no_warning_when_nothing_dropped(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = prepare_wide(toy, ["a", "b", "c"], covariates=["age"], cluster="school")
    assert p.n_dropped == 0
    assert list(p.dropped.columns) == ["index", "reason"]


def test_cluster_label_types_give_consistent_codes():
    expected_codes = [0, 1, 0, 2, 1, 2, 0]  # order of first appearance
    labels = {
        "str": (["c", "a", "c", "b", "a", "b", "c"], ["c", "a", "b"]),
        "float": ([2.5, 0.5, 2.5, 1.5, 0.5, 1.5, 2.5], [2.5, 0.5, 1.5]),
        "int": ([7, 3, 7, 5, 3, 5, 7], [7, 3, 5]),
        "categorical": (
            pd.Categorical(["c", "a", "c", "b", "a", "b", "c"], categories=["a", "b", "c"]),
            ["c", "a", "b"],
        ),
    }
    y = [0, 1, 1, 0, 1, 0, 1]
    for kind, (lab, first_seen) in labels.items():
        df = pd.DataFrame({"y": y, "g": lab})
        p = prepare_wide(df, ["y"], cluster="g")
        assert p.cluster_idx.tolist() == expected_codes, kind
        assert p.cluster_idx.dtype == np.int64
        assert list(p.cluster_labels) == first_seen, kind
        assert p.n_clusters == 3 and p.is_two_level and p.cluster_name == "g"


def test_exam_two_level():
    header, rows = _csv("exam.csv")
    first_seen = list(dict.fromkeys(r[header.index("school")] for r in rows))
    p = prepare_wide(load_dataset("exam"), ["normexam"], cluster="school", covariates=["standLRT"])
    assert p.n_clusters == 65 and p.n_persons == 4059
    assert list(p.cluster_labels) == first_seen
    assert p.kinds == ("continuous",)
    assert p.items[0].categories == () and p.items[0].n_categories == 0
    # cluster index reproduces the labels row by row
    school = [r[header.index("school")] for r in rows]
    assert [p.cluster_labels[k] for k in p.cluster_idx] == school


def test_ordinal_and_binary_codes():
    df = pd.DataFrame({"o": [1, 2, 3, 2, 1], "b": [1, 2, 2, 1, 2], "f": [0.5, 1.5, 0.5, 1.5, 0.5]})
    with pytest.warns(ItemTypeWarning, match=r"'f': inferred 'binary' .*\(0\.5, 1\.5\)"):
        p = prepare_wide(df, ["o", "b", "f"], item_types={"o": "ordinal"})
    np.testing.assert_array_equal(p.y[:, 0], [0, 1, 2, 1, 0])
    np.testing.assert_array_equal(p.y[:, 1], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(p.y[:, 2], [0, 1, 0, 1, 0])
    assert p.items[0] == ItemInfo("o", "ordinal", (1, 2, 3))
    assert p.items[1] == ItemInfo("b", "binary", (1, 2))
    assert p.items[2] == ItemInfo("f", "binary", (0.5, 1.5))
    assert p.items[0].n_categories == 3
    assert p.y.dtype == np.float64


def test_two_category_ordinal_keeps_kind():
    df = pd.DataFrame({"o": [3, 4, 4, 3]})
    p = prepare_wide(df, "o", item_types="ordinal")
    assert p.items[0] == ItemInfo("o", "ordinal", (3, 4))
    np.testing.assert_array_equal(p.y[:, 0], [0, 1, 1, 0])


def test_inference_of_kinds():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "bin": [0, 1] * 10,
            "bool": [True, False] * 10,
            "ord": [0, 1, 2, 3, 4] * 4,
            "many_ints": list(range(20)),  # 20 distinct integers -> continuous
            "cont": rng.normal(size=20),
            "ord_nullable": pd.array([1, 2, 3, None] * 5, dtype="Int64"),
        }
    )
    with pytest.warns(ItemTypeWarning) as rec:
        p = prepare_wide(df, list(df.columns))
    assert len(rec) == 1 and "'many_ints': inferred 'continuous'" in str(rec[0].message)
    assert "'cont'" not in str(rec[0].message)  # normal draws are plainly continuous
    assert p.kinds == ("binary", "binary", "ordinal", "continuous", "continuous", "ordinal")
    np.testing.assert_array_equal(p.categorical_mask, [True, True, True, False, False, True])
    np.testing.assert_array_equal(p.continuous_mask, [False, False, False, True, True, False])
    np.testing.assert_array_equal(p.y[:2, 1], [1, 0])  # True -> 1 -> code 1
    np.testing.assert_allclose(p.y[:, 4], df["cont"].to_numpy())  # raw values kept
    np.testing.assert_array_equal(p.observed[:, 5], [True, True, True, False] * 5)
    assert p.item_names == tuple(df.columns)


def test_partial_item_types_dict_and_numeric_categorical_item():
    df = pd.DataFrame(
        {"x": [1, 2, 3, 1], "z": pd.Categorical([10, 20, 20, 10]), "w": [0, 1, 1, 0]}
    )
    with pytest.warns(ItemTypeWarning, match=r"'z': inferred 'binary'"):
        p = prepare_wide(df, ["x", "z", "w"], item_types={"x": "continuous"})
    assert p.kinds == ("continuous", "binary", "binary")
    assert p.items[1].categories == (10, 20)
    np.testing.assert_array_equal(p.y[:, 1], [0, 1, 1, 0])


def test_arrays_read_only_and_summary(toy):
    p = prepare_wide(toy, ["a", "b", "c"], cluster="school", covariates=["age"])
    assert isinstance(p, PreparedData)
    with pytest.raises(ValueError):
        p.y[0, 0] = 5.0
    assert p.covariates.shape == (6, 1)
    text = p.summary()
    assert "6 persons in 3 clusters" in text
    assert "1 binary, 1 ordinal, 1 continuous" in text
    assert "missing item cells: 0 of 18" in text


def test_no_covariates_gives_empty_matrix(toy):
    p = prepare_wide(toy, ["a"])
    assert p.covariates.shape == (6, 0) and p.covariate_names == ()


# =========================================================================== prepare_wide: errors


def test_error_data_not_dataframe():
    with pytest.raises(DataError, match=r"data: got a ndarray.*pandas DataFrame"):
        prepare_wide(np.zeros((3, 2)), ["a"])


def test_error_items_wrong_type(toy):
    with pytest.raises(DataError, match=r"items: got a int"):
        prepare_wide(toy, 3)


def test_error_items_empty(toy):
    with pytest.raises(DataError, match=r"items: got an empty list"):
        prepare_wide(toy, [])


def test_error_items_duplicate(toy):
    with pytest.raises(DataError, match=r"items: column 'a' is listed more than once"):
        prepare_wide(toy, ["a", "b", "a"])


def test_error_unknown_item_with_close_match(toy):
    with pytest.raises(DataError, match=r"items: column 'agee' not found.*Did you mean 'age'"):
        prepare_wide(toy, ["a", "agee"])


def test_error_unknown_column_lists_available(toy):
    with pytest.raises(DataError, match=r"column 'zzz' not found.*Available columns: 'a', 'b'"):
        prepare_wide(toy, ["zzz"])


def test_error_unknown_covariate(toy):
    with pytest.raises(DataError, match=r"covariates: column 'sexx' not found.*'sex'"):
        prepare_wide(toy, ["a"], covariates=["sexx"])


def test_error_unknown_cluster(toy):
    with pytest.raises(DataError, match=r"cluster: column 'shool' not found.*'school'"):
        prepare_wide(toy, ["a"], cluster="shool")


def test_error_cluster_list(toy):
    with pytest.raises(DataError, match=r"cluster: got a list; expected a single column"):
        prepare_wide(toy, ["a"], cluster=["school"])


def test_error_duplicate_column_names():
    df = pd.DataFrame([[0, 1, 0], [1, 0, 1]], columns=["a", "a", "b"])
    with pytest.raises(DataError, match=r"several columns named 'a'"):
        prepare_wide(df, ["a", "b"])


def test_error_unhashable_column_name(toy):
    with pytest.raises(DataError, match=r"items: got \['a'\]"):
        prepare_wide(toy, [["a"]])


def test_error_item_also_covariate(toy):
    with pytest.raises(DataError, match=r"covariates: column 'b' is also listed in `items`"):
        prepare_wide(toy, ["a", "b"], covariates=["b"])


def test_error_cluster_also_item(toy):
    with pytest.raises(DataError, match=r"cluster: column 'a' is also listed in `items`"):
        prepare_wide(toy, ["a", "b"], cluster="a")


def test_error_cluster_also_covariate(toy):
    with pytest.raises(DataError, match=r"cluster: column 'age' is also listed in `covariates`"):
        prepare_wide(toy, ["a"], covariates=["age"], cluster="age")


def test_error_item_types_bad_string(toy):
    with pytest.raises(
        DataError,
        match=r"item_types: got 'binarry'; valid choices are 'binary', 'ordinal', 'continuous'",
    ):
        prepare_wide(toy, ["a"], item_types="binarry")


def test_error_item_types_bad_dict_value(toy):
    with pytest.raises(DataError, match=r"item_types\['b'\]: got 'nominal'; valid choices"):
        prepare_wide(toy, ["a", "b"], item_types={"a": "binary", "b": "nominal"})


def test_error_item_types_key_not_item(toy):
    with pytest.raises(DataError, match=r"item_types: key 'c' is not one of the items"):
        prepare_wide(toy, ["a", "b"], item_types={"c": "continuous"})


def test_error_item_types_wrong_type(toy):
    with pytest.raises(DataError, match=r"item_types: got a list"):
        prepare_wide(toy, ["a", "b"], item_types=["binary", "ordinal"])


def test_error_non_numeric_item_string(toy):
    toy["resp"] = ["no", "yes", "no", "yes", "no", "yes"]
    with pytest.raises(
        DataError, match=r"items: column 'resp' holds non-numeric values \(e\.g\. 'no'.*\.map\("
    ):
        prepare_wide(toy, ["a", "resp"])


def test_error_non_numeric_item_categorical(toy):
    toy["lvl"] = pd.Categorical(["low", "high", "low", "high", "low", "high"])
    with pytest.raises(DataError, match=r"column 'lvl' holds non-numeric values \(e\.g\. 'low'"):
        prepare_wide(toy, ["lvl"])


def test_error_non_numeric_item_object_mixed(toy):
    toy["m"] = pd.Series([0, 1, "x", 1, 0, None], dtype=object)
    with pytest.raises(DataError, match=r"column 'm' holds non-numeric values \(e\.g\. 'x'"):
        prepare_wide(toy, ["m"])


def test_error_numeric_text_item_suggests_to_numeric(toy):
    toy["t"] = ["0", "1", "0", "1", "0", "1"]
    with pytest.raises(DataError, match=r"column 't' holds non-numeric.*pd\.to_numeric"):
        prepare_wide(toy, ["t"])


def test_error_non_numeric_covariate(toy):
    with pytest.raises(
        DataError, match=r"covariates: column 'sex' holds non-numeric values \(e\.g\. 'F'.*get_dummies"
    ):
        prepare_wide(toy, ["a"], covariates=["sex"])


def test_error_binary_with_three_values(toy):
    with pytest.raises(
        DataError, match=r"item_types\['b'\] is 'binary' but column 'b' has 3 distinct values \(1, 2, 3\).*'ordinal'"
    ):
        prepare_wide(toy, ["b"], item_types={"b": "binary"})


def test_error_constant_item(toy):
    toy["k"] = [1, 1, 1, np.nan, 1, 1]
    with pytest.raises(DataError, match=r"column 'k' is constant \(every observed value is 1\).*drop"):
        prepare_wide(toy, ["a", "k"])


def test_error_ordinal_non_integer(toy):
    with pytest.raises(
        DataError, match=r"item_types\['c'\] is 'ordinal' but column 'c' holds non-integer values \(e\.g\. -1\.2\)"
    ):
        prepare_wide(toy, ["c"], item_types={"c": "ordinal"})


def test_error_ordinal_gap(toy):
    toy["g"] = [1, 2, 4, 5, 1, 2]
    with pytest.raises(
        DataError, match=r"item_types\['g'\] is 'ordinal' but column 'g' skips code\(s\) 3 .*consecutive"
    ):
        prepare_wide(toy, ["g"], item_types="ordinal")


def test_error_inferred_ordinal_gap(toy):
    toy["g"] = [0, 1, 3, 1, 0, 3]
    with pytest.raises(
        DataError, match=r"column 'g' was inferred as 'ordinal'.*skips code\(s\) 2 .*'continuous'"
    ):
        prepare_wide(toy, ["g"])


def test_error_too_few_observations(toy):
    toy["sparse"] = [np.nan, 1.0, np.nan, np.nan, np.nan, np.nan]
    with pytest.raises(DataError, match=r"column 'sparse' has 1 non-missing value\(s\)"):
        prepare_wide(toy, ["a", "sparse"])


def test_error_infinite_item(toy):
    toy["c"] = [0.5, np.inf, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(DataError, match=r"items: column 'c' holds 1 infinite value\(s\) \(e\.g\. inf at index 1"):
        prepare_wide(toy, ["a", "c"])


def test_error_infinite_covariate(toy):
    toy["age"] = [20.0, 30.0, -np.inf, 50.0, 60.0, 70.0]
    with pytest.raises(DataError, match=r"covariates: column 'age' holds 1 infinite value\(s\) \(e\.g\. -inf"):
        prepare_wide(toy, ["a"], covariates=["age"])


def test_error_single_cluster(toy):
    toy["one"] = "only"
    with pytest.raises(DataError, match=r"cluster: column 'one' has a single cluster \('only'\).*omit `cluster`"):
        prepare_wide(toy, ["a"], cluster="one")


def test_error_single_cluster_among_kept_rows(toy):
    # two labels in the frame, but the rows of 's2' have no observed item
    toy["g2"] = ["s1", "s1", "s1", "s1", "s2", "s2"]
    toy.loc[4:5, "a"] = np.nan
    with pytest.raises(DataError, match=r"cluster: column 'g2' has a single cluster \('s1'\)"):
        prepare_wide(toy, ["a"], cluster="g2")


def test_error_no_rows_remain():
    df = pd.DataFrame({"a": [np.nan, 1.0, 0.0], "x": [1.0, np.nan, np.nan]})
    with pytest.raises(DataError, match=r"no rows remain out of 3 \(1 no observed item, 2 missing covariate x\)"):
        prepare_wide(df, ["a"], covariates=["x"])


def test_error_raised_before_any_warning():
    # a row would be dropped, but the error must come first and no warning be issued
    df = pd.DataFrame({"a": [np.nan, 1, 0, 1], "b": [1, 1, 1, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="column 'b' is constant"):
            prepare_wide(df, ["a", "b"])


def test_row_with_several_problems_gets_first_reason_and_counts_in_fixed_order():
    df = pd.DataFrame(
        {
            "a": [1, 0, np.nan, 1, 0, 1, 0],
            "x": [1.0, np.nan, np.nan, 2.0, 3.0, 4.0, 5.0],
            "g": [np.nan, "u", "u", np.nan, "v", "w", "v"],
        }
    )
    with pytest.warns(
        DroppedRowsWarning,
        match=r"4 of 7 rows excluded \(1 no observed item, 1 missing covariate x, 2 missing cluster\)",
    ):
        p = prepare_wide(df, ["a"], covariates=["x"], cluster="g")
    # row 2 misses everything: the item check comes first, then covariates, then cluster
    assert p.dropped["reason"].tolist() == [
        "missing cluster",
        "missing covariate x",
        "no observed item",
        "missing cluster",
    ]
    assert p.dropped["index"].tolist() == [0, 1, 2, 3]
    assert list(p.row_index) == [4, 5, 6]
    assert list(p.cluster_labels) == ["v", "w"]
    assert p.cluster_idx.tolist() == [0, 1, 0]
    assert "rows dropped: 4 (1 no observed item, 1 missing covariate x, 2 missing cluster)" in (
        p.summary()
    )
