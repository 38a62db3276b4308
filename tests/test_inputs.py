"""Inputs that used to change the model silently (issue 11, item 4) now warn or
fail clearly: inferred item kinds, colliding cluster labels, missing-value codes,
hints that must not change the meaning of the data, the ICC message of a
between-class fit, fit_ml/sample/run_simulation arguments and other dataframe
libraries. Expected texts and values are written by hand; nothing here compiles
a model (the only fit is behind ``slow``)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.checks import check_int, check_seed
from bayesmix.data import prepare_wide
from bayesmix.data.codes import missing_codes
from bayesmix.exceptions import DataError, ItemTypeWarning, MissingCodeWarning, SpecificationError
from bayesmix.fit.arguments import FittableModel, check_fit_ml, check_sample, check_start


def _quiet(df, *args, **kwargs):
    """prepare_wide with every warning an error: the obvious cases stay silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return prepare_wide(df, *args, **kwargs)


def _one_warning(category, df, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = prepare_wide(df, *args, **kwargs)
    hits = [w for w in caught if issubclass(w.category, category)]
    assert len(hits) == 1, [str(w.message) for w in caught]
    return p, str(hits[0].message)


# =========================================================================== item kinds


def test_stray_half_in_binary_item_is_reported():
    df = pd.DataFrame({"y": [0, 1, 1, 0, 0.5, 1, 0, 1]}, index=list("abcdefgh"))
    p, msg = _one_warning(ItemTypeWarning, df, ["y"])
    assert p.kinds == ("continuous",)
    assert "'y'" in msg and "inferred 'continuous'" in msg
    assert "1 of its 8 values are not integers" in msg and "0.5 at index 'e'" in msg
    assert "integer codes 0, 1" in msg and "item_types={'y': 'continuous'}" in msg
    assert "'y'" in p.summary() and "not integers" in p.summary()
    # declaring the kind is the way to silence it
    assert _quiet(df, ["y"], item_types="continuous").kinds == ("continuous",)


def test_eleven_point_scale_is_reported_with_the_ordinal_fix():
    df = pd.DataFrame({"r": list(range(11)) * 2})
    p, msg = _one_warning(ItemTypeWarning, df, ["r"])
    assert p.kinds == ("continuous",)
    assert "11 distinct integer values are more than 10" in msg
    assert "item_types={'r': 'ordinal'}" in msg and "outcome_types" in msg
    forced = _quiet(df, ["r"], item_types={"r": "ordinal"})
    assert forced.kinds == ("ordinal",) and forced.items[0].categories == tuple(range(11))


def test_many_ordinal_codes_are_reported():
    df = pd.DataFrame({"o": list(range(1, 10)) * 2})  # 9 codes -> 8 thresholds per class
    p, msg = _one_warning(ItemTypeWarning, df, ["o"])
    assert p.kinds == ("ordinal",)
    assert "9 integer codes" in msg and "8 thresholds per class" in msg
    assert "item_types={'o': 'continuous'}" in msg


def test_two_values_that_are_not_small_codes_are_reported():
    df = pd.DataFrame({"h": [0.5, 1.5] * 4, "k": [10, 20] * 4})
    p, msg = _one_warning(ItemTypeWarning, df, ["h", "k"])
    assert p.kinds == ("binary", "binary")
    assert msg.startswith("2 item type(s)")  # one warning for all items
    assert "'h': inferred 'binary'" in msg and "'k': inferred 'binary'" in msg
    assert "item_types={'h': 'continuous'}" in msg


def test_obvious_inferences_are_silent():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"b01": [0, 1] * 6, "b12": [1, 2] * 6, "pm": [-1, 1] * 6, "o": [1, 2, 3, 4, 5, 1] * 2,
                       "c": rng.normal(size=12), "bool": [True, False] * 6})
    p = _quiet(df, list(df.columns))
    assert p.kinds == ("binary", "binary", "binary", "ordinal", "continuous", "binary")
    assert all(it.note == "" for it in p.items)


# =========================================================================== cluster labels


@pytest.mark.parametrize("labels, shown", [
    ([0, "0", 0, "0", 1, 1], "0, '0'"),
    ([1, 1.0, True, 2, 2, 2], "1, 1.0, True"),
    ([1, "1", 2, 2, 3, 3], "1, '1'"),
])
def test_colliding_cluster_labels_are_refused(labels, shown):
    df = pd.DataFrame({"y": [0, 1, 1, 0, 1, 0], "g": pd.Series(labels, dtype=object)})
    with pytest.raises(DataError, match=r"cluster: column 'g' holds labels .*" + re.escape(shown)):
        prepare_wide(df, ["y"], cluster="g")


def test_pandas_would_merge_one_and_true():
    # the silent behaviour the check stops: factorize makes one cluster of 1, 1.0 and True
    codes, uniques = pd.factorize(pd.Series([1, 1.0, True, 2], dtype=object))
    assert len(uniques) == 2
    ok = pd.DataFrame({"y": [0, 1, 1, 0], "g": pd.Series([1, 1, 2, 2], dtype=object)})
    assert _quiet(ok, ["y"], cluster="g").n_clusters == 2


def test_lca_refuses_colliding_labels_before_building():
    df = pd.DataFrame({"y1": [0, 1] * 4, "y2": [1, 0, 0, 1] * 2, "g": pd.Series([0, "0"] * 4, dtype=object)})
    with pytest.raises(DataError, match="cluster: column 'g'"):
        bm.lca(df, ["y1", "y2"], 2, cluster="g")


# =========================================================================== missing-value codes


def test_missing_code_detection_by_hand():
    assert missing_codes(np.array([-9.0, 0.0, 1.0])) == [-9]
    assert missing_codes(np.array([1.0, 2, 3, 4, 5, 9])) == [9]
    assert missing_codes(np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])) == []  # 9 is a scale point
    assert missing_codes(np.arange(18.0, 100.0)) == []  # 88, 97, 98, 99 are ages here
    assert missing_codes(np.r_[np.arange(18.0, 97.0), 999.0]) == [999]
    assert missing_codes(np.r_[np.arange(18.0, 97.0), 98.0, 99.0]) == [98, 99]
    assert missing_codes(np.array([0.3, 1.7, 2.2, -9.0])) == [-9]  # negative among positive measurements
    assert missing_codes(np.array([-2.5, 0.1, 2.8, 8.0])) == []  # 5.2 above a range of 5.3
    assert missing_codes(np.array([-2.5, 0.1, 2.8, 9.0])) == [9]  # 6.2 above it


@pytest.mark.parametrize("values, item_types, code", [
    ([0, 1, 1, 0, -9, 1], None, -9),
    ([1, 2, 3, 4, 5, 9], None, 9),
    ([0, 1, 1, 0, -9, 1], "binary", -9),
    ([1, 2, 3, 999, 2, 1], "ordinal", 999),
])
def test_missing_code_in_categorical_item_gets_the_nan_fix(values, item_types, code):
    df = pd.DataFrame({"q": values})
    with pytest.raises(DataError) as err:
        prepare_wide(df, ["q"], item_types=item_types)
    msg = str(err.value)
    assert f"df['q'] = df['q'].replace({{{code}: np.nan}})" in msg
    assert "rank(" not in msg and "declare it 'ordinal'" not in msg  # no hint that keeps it as a category


def test_missing_text_code_gets_the_nan_fix():
    df = pd.DataFrame({"q": [0, 1, ".", 1, 0, 1]})
    with pytest.raises(DataError, match=re.escape("df['q'] = df['q'].replace({'.': np.nan})")):
        prepare_wide(df, ["q"])


def test_missing_code_in_covariate_and_continuous_item_warns():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": [0, 1] * 5, "z": np.r_[rng.uniform(1, 5, 9), -9.0], "age": [30, 41, 52, 999] + [35] * 6})
    p, msg = _one_warning(MissingCodeWarning, df, ["y", "z"], covariates=["age"], item_types={"z": "continuous"})
    assert "item column 'z': -9 (1 row)" in msg and "df['z'] = df['z'].replace({-9: np.nan})" in msg
    assert "covariate column 'age': 999 (1 row)" in msg
    assert p.covariates[3, 0] == 999.0  # still used as given: a warning, not a change


# =========================================================================== hints keep the meaning


def test_stray_label_in_binary_item_is_not_given_a_new_code():
    df = pd.DataFrame({"q": [1, 0, 1, "yes", 0, 1]})  # 1 first: the old hint mapped 1 -> 0, 0 -> 1, 'yes' -> 2
    with pytest.raises(DataError) as err:
        prepare_wide(df, ["q"])
    msg = str(err.value)
    assert "replace({'yes': <code>})" in msg and "numeric codes (0, 1)" in msg
    assert ".map(" not in msg and "1: 0" not in msg and "'yes': 2" not in msg


def test_text_labels_are_not_numbered_alphabetically():
    df = pd.DataFrame({"q": ["low", "high", "medium", "low"]})
    with pytest.raises(DataError) as err:
        prepare_wide(df, ["q"])
    msg = str(err.value)
    assert "map({'high': <code>, 'low': <code>, 'medium': <code>})" in msg
    assert "'high': 0" not in msg
    ordered = pd.DataFrame({"q": pd.Categorical(["low", "high", "medium"], ["low", "medium", "high"], ordered=True)})
    with pytest.raises(DataError, match=re.escape("df['q'].cat.codes.where(df['q'].notna())")):
        prepare_wide(ordered, ["q"])
    two = pd.DataFrame({"q": ["yes", "no", "no"]})
    with pytest.raises(DataError, match=re.escape("map({'no': 0, 'yes': 1})")):
        prepare_wide(two, ["q"])


def test_errors_come_before_any_warning():
    df = pd.DataFrame({"y": [0, 1, 0.5, 1], "g": pd.Series([0, "0", 1, 1], dtype=object)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="cluster"):
            prepare_wide(df, ["y"], cluster="g")
    assert caught == []


# =========================================================================== other dataframe libraries


class _FakePolars:
    columns = ["y"]

    def to_pandas(self):
        return pd.DataFrame({"y": [0, 1]})


class _Interchange:
    def __dataframe__(self, nan_as_null=False, allow_copy=True):
        raise NotImplementedError


@pytest.mark.parametrize("data, fix", [
    (_FakePolars(), "data.to_pandas()"),
    (_Interchange(), "pd.api.interchange.from_dataframe(data)"),
    ({"y": [0, 1]}, "pd.DataFrame(data)"),
    (np.zeros((2, 1)), "pd.DataFrame(array, columns=[...])"),
])
def test_other_frames_get_a_conversion_hint(data, fix):
    with pytest.raises(DataError, match=r"data: got a .*" + re.escape(fix)):
        prepare_wide(data, ["y"])


def test_pyarrow_table_named_with_its_library():
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(DataError, match=r"got a pyarrow\.Table.*to_pandas\(\)"):
        prepare_wide(pa.table({"y": [0, 1]}), ["y"])


# =========================================================================== fit arguments


@pytest.fixture(scope="module")
def model():
    df = pd.DataFrame({"y1": [0, 1, 1, 0, 1, 0] * 3, "y2": [1, 1, 0, 0, 1, 0] * 3})
    return bm.lca(df, ["y1", "y2"], 2)  # builds the graph; nothing is compiled here


def _shapes(model):
    return {p.name: tuple(len(model.model.coords[d]) for d in p.dims) for p in model.free}


def test_a_family_object_is_a_fittable_model(model):
    assert isinstance(model, FittableModel)
    assert not isinstance(model.model, FittableModel) and not isinstance(pd.DataFrame(), FittableModel)


def test_every_family_is_a_fittable_model():
    from bayesmix import families
    import toy_family

    built = [families.example(name, two) for name in bm.REGISTRY for two in (False, True)] + [toy_family.example()]
    built = [m for m in built if m is not None]
    assert len(built) > len(bm.REGISTRY)
    for m in built:
        assert isinstance(m, FittableModel), m.family


def test_default_sample_arguments_pass(model):
    check_sample(model, ml=None, draws=1000, tune=1000, chains=4, seed=0, posterior_predictive=False,
                 ppc_draws=200, progress=True, adaptation="low_rank")


@pytest.mark.parametrize("bad, text", [
    (pd.DataFrame({"y": [0, 1]}), "model: got DataFrame; build a model from the data first"),
    ("lca", "model: got str; give a model built by a bayesmix family"),
])
def test_fit_ml_and_sample_refuse_a_non_model(bad, text):
    with pytest.raises(SpecificationError, match=re.escape(text)):
        bm.fit_ml(bad)
    with pytest.raises(SpecificationError, match=re.escape(text)):
        bm.sample(bad)


def test_pymc_model_is_refused_with_the_fix(model):
    with pytest.raises(SpecificationError, match=r"model: got Model; .*not its PyMC model m\.model"):
        bm.fit_ml(model.model)


@pytest.mark.parametrize("kwargs, text", [
    ({"seed": "1"}, "seed: got '1'; give None, an integer >= 0 or a numpy.random.Generator"),
    ({"seed": -1}, "seed: got -1"),
    ({"seed": 1.5}, "seed: got 1.5"),
    ({"n_starts": True}, "n_starts: got True; give an integer >= 0"),
    ({"n_final": 2.0}, "n_final: got 2.0; give an integer >= 1"),
    ({"newton_steps": -1}, "newton_steps: got -1"),
    ({"gtol": 0}, "gtol: got 0; give a finite number > 0"),
    ({"progress": "no"}, "progress: got 'no'; give True or False"),
    ({"start": "best"}, "start: got str; give a dict of raw free values"),
    ({"start": [0.0, 1.0]}, "start: got an array of shape (2,)"),
    ({"start": {"nope": 1.0}}, "start: the start does not match this model's free parameters"),
])
def test_fit_ml_arguments_are_named(model, kwargs, text):
    with pytest.raises(SpecificationError, match=re.escape(text)):
        bm.fit_ml(model, **{"progress": False, **kwargs})


@pytest.mark.parametrize("kwargs, text", [
    ({"seed": np.random.default_rng(0)}, "seed: got Generator"),
    ({"ml": {}}, "ml: got dict; give the MLResult of bm.fit_ml(model)"),
    ({"draws": 0}, "draws: got 0; give an integer >= 1"),
    ({"chains": True}, "chains: got True"),
    ({"adaptation": "dense"}, "adaptation: got 'dense'; valid choices are"),
])
def test_sample_arguments_are_named(model, kwargs, text):
    with pytest.raises(SpecificationError, match=re.escape(text)):
        bm.sample(model, progress=False, **kwargs)


def test_start_forms_by_hand(model):
    shapes = _shapes(model)
    names = list(shapes)
    sizes = [int(np.prod(s)) for s in shapes.values()]
    flat = np.arange(sum(sizes), dtype=float)
    out = check_start(model, flat)
    assert list(out) == names
    i = 0
    for n, k in zip(names, sizes):
        np.testing.assert_array_equal(out[n], flat[i:i + k].reshape(shapes[n]))
        i += k
    again = check_start(model, out)
    assert all(np.array_equal(again[n], out[n]) for n in names)
    wrong = dict(out)
    wrong[names[0]] = np.zeros(sizes[0] + 1)
    with pytest.raises(SpecificationError, match=rf"start\['{names[0]}'\]: got shape \({sizes[0] + 1},\)"):
        check_start(model, wrong)
    wrong[names[0]] = np.full(shapes[names[0]], np.nan)
    with pytest.raises(SpecificationError, match="non-finite"):
        check_start(model, wrong)
    missing = {n: out[n] for n in names[1:]}
    with pytest.raises(SpecificationError, match=re.escape(f"missing ['{names[0]}']")):
        check_start(model, missing)


def test_generator_seed_is_accepted_by_fit_ml_checks(model):
    kw = dict(se="mlr", n_starts=1, n_final=1, short_iter=1, max_iter=1, newton_steps=0, gtol=1e-5, ll_tol=1e-3,
              progress=False, check_integration=True)
    assert check_fit_ml(model, start=None, seed=np.random.default_rng(1), **kw) is None
    assert check_fit_ml(model, start=None, seed=None, **kw) is None


def test_check_int_is_one_implementation():
    from bayesmix.families import base

    assert base.check_int is check_int
    with pytest.raises(SpecificationError, match="n: got True; give an integer >= 1"):
        check_int("n", True)
    assert check_int("n", np.int64(3)) == 3
    assert check_seed("seed", np.int32(4), generator=False) == 4


def test_run_simulation_seed_is_checked():
    design = bm.SimulationDesign("d", generate=lambda rng: None, build=lambda df: None)
    with pytest.raises(SpecificationError, match="seed: got 'x'; give None or an integer >= 0"):
        bm.run_simulation(design, 1, seed="x", n_jobs=1, progress=False)


# =========================================================================== icc message


def _tree(class_variables, ll_dims=("chain", "draw", "person")):
    post = xr.Dataset({"x": (("chain", "draw"), np.zeros((1, 2)))})
    ll = xr.Dataset({"y": (ll_dims, np.zeros((1, 2, 3)))})
    dt = xr.DataTree.from_dict({"posterior": post, "log_likelihood": ll})
    dt["posterior"].attrs["bayesmix_class_variables"] = json.dumps(class_variables)
    return dt


def test_icc_of_a_between_class_points_to_within_between():
    cv = {"name": "C", "membership_dims": ["cluster"], "logit_variance": None}
    with pytest.raises(SpecificationError) as err:
        bm.icc(_tree([cv], ("chain", "draw", "cluster")))
    msg = str(err.value)
    assert "no random class-logit intercepts" in msg and "between level" in msg
    assert "class_level='within-between'" in msg and "keeping your cluster column" in msg
    assert "cluster=..." not in msg


def test_icc_of_a_clustered_within_class_points_to_random_intercepts():
    cv = {"name": "C", "membership_dims": ["person"], "logit_variance": None}
    with pytest.raises(SpecificationError) as err:
        bm.icc(_tree([cv], ("chain", "draw", "cluster")))
    assert "random_intercepts=True" in str(err.value) and "cluster=..." not in str(err.value)
    with pytest.raises(SpecificationError, match=re.escape("lca(..., cluster=..., random_intercepts=True)")):
        bm.icc(_tree([cv]))


@pytest.mark.slow
def test_icc_of_a_between_lca_fit():
    rng = np.random.default_rng(5)
    cls = np.repeat(rng.integers(0, 2, 12), 6)
    p = np.where(cls[:, None] == 1, 0.8, 0.2)
    df = pd.DataFrame((rng.uniform(size=(72, 3)) < p).astype(int), columns=["y1", "y2", "y3"])
    df["g"] = np.repeat(np.arange(12), 6)
    res = bm.fit_ml(bm.lca(df, ["y1", "y2", "y3"], 2, cluster="g", class_level="between"), n_starts=3,
                    n_final=2, progress=False)
    with pytest.raises(SpecificationError, match="class_level='within-between'"):
        bm.icc(res)
