"""Saving, loading and pickling fits (issue 10, part 4), for every family in
``bayesmix.REGISTRY``: the factory call is recorded, a model pickles (pickle and
cloudpickle) as a fresh rebuild, ``save`` / ``load`` give the stored numbers bit
for bit (the LL recomputed at the stored theta equals the stored LL), other data
or another format version are refused."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix import families
from bayesmix.fit import bayes
from bayesmix.fit.compiled import compiled
from bayesmix.persist import FORMAT_VERSION, _constant, data_hash
from persist_fits import example_of, fit_of
from registry_checks import fake_posterior, spread_point

NAMES = sorted(bm.REGISTRY)
# the checks that fit a model run on the LCA by default and on every family with -m slow
# (a fit is mostly compilation: 5-25 s per family on the shared 2-core machine)
FITTED = [n if n == "lca" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


def _ll(fam, theta):
    return compiled(fam).unit_loglik(theta)


def _assert_same_result(back, res):
    """Every stored field equal, bit for bit."""
    assert type(back) is type(res)
    np.testing.assert_array_equal(back.theta, res.theta)
    for name in ("loglik", "n_params", "n_obs", "se_type", "scaling_correction"):
        assert getattr(back, name) == getattr(res, name) or (np.isnan(res.scaling_correction) and name ==
                                                             "scaling_correction"), name
    for name in ("cov", "cov_ml", "unit_loglik"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name), err_msg=name)
    for name in ("params", "membership", "starts"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(res, name), check_exact=True, obj=name)
    assert list(back.memberships) == list(res.memberships)
    for k in res.memberships:
        pd.testing.assert_frame_equal(back.memberships[k], res.memberships[k], check_exact=True)
    for d in ("natural", "point"):
        assert list(getattr(back, d)) == list(getattr(res, d))
        for k, v in getattr(res, d).items():
            np.testing.assert_array_equal(getattr(back, d)[k], v, err_msg=f"{d}[{k}]")
    assert back.convergence == res.convergence
    assert back.integration == res.integration
    if res.identification is None:
        assert back.identification is None
    else:
        assert back.identification.keys() == res.identification.keys()
        np.testing.assert_array_equal(back.identification["void_se"], res.identification["void_se"])
        assert back.identification["directions"] == res.identification["directions"]


# --------------------------------------------------------------------------- the recorded call
@pytest.mark.parametrize("name", NAMES)
def test_factory_call_is_recorded(name):
    fam, two_level = example_of(name)
    call = fam.call
    assert call.family == name and isinstance(call.data, pd.DataFrame)
    assert "data" not in call.kwargs and all(not isinstance(v, pd.DataFrame) for v in call.kwargs.values())
    # the exported factory, the registry entry and the module's own name are the recording one
    assert getattr(bm, name, bm.REGISTRY[name]) is bm.REGISTRY[name]
    module = __import__(bm.REGISTRY[name].__module__, fromlist=["x"])
    assert getattr(module, bm.REGISTRY[name].__name__) is bm.REGISTRY[name]
    for copy in (call.replay(), pickle.loads(pickle.dumps(fam)), cloudpickle.loads(cloudpickle.dumps(fam))):
        # the same model (its LL is compared after fitting, test_fit_pickles): no compilation here
        assert type(copy) is type(fam) and copy.call.kwargs.keys() == call.kwargs.keys() and copy.cache == {}
        assert copy.spec == fam.spec and data_hash(copy.data) == data_hash(fam.data)
        assert compiled(copy).packing == compiled(fam).packing
        assert [v.name for v in copy.model.named_vars.values()] == [v.name for v in fam.model.named_vars.values()]


def test_the_recorded_data_is_a_copy():
    df = families.examples.example_data()
    fam = bm.lca(df, ["y1", "y2", "y3", "y4"], 2)
    df.loc[0, "y1"] = 1 - df.loc[0, "y1"]
    assert data_hash(fam.call.replay().data) == data_hash(fam.data)


def test_with_spec_carries_the_call_and_the_new_spec():
    fam, _ = example_of("lca")
    two = families.example("lca", True)
    finer = two.with_spec(integration=bm.Integration(n_points=9))
    assert finer.call is two.call and finer.spec.integration.n_points == 9
    back = pickle.loads(pickle.dumps(finer))
    assert back.spec == finer.spec and back.spec != two.spec and back.call.kwargs == two.call.kwargs
    point = compiled(two).packing.pack(spread_point(two))
    np.testing.assert_array_equal(compiled(back).unit_loglik_only(point), compiled(finer).unit_loglik_only(point))


# --------------------------------------------------------------------------- pickling
@pytest.mark.parametrize("module", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("name", FITTED)
def test_fit_pickles(name, module):
    """After fitting (compiled functions in the cache) the model and the MLResult
    pickle; the copy is a fresh model with the same LL at the estimates."""
    fam, res = fit_of(name)
    assert "compiled" in fam.cache
    back = module.loads(module.dumps(res))
    assert back.model is not fam and back.model.cache == {}
    assert back.model.spec == res.model.spec and data_hash(back.model.data) == data_hash(fam.data)
    assert compiled(back.model).packing == compiled(fam).packing
    pd.testing.assert_frame_equal(back.params, res.params, check_exact=True)
    if module is pickle:  # the same rebuild for cloudpickle (FamilyModel.__reduce__); compiled once here
        np.testing.assert_array_equal(_ll(back.model, res.theta), res.unit_loglik)
        assert _ll(back.model, res.theta).sum() == res.loglik


def test_a_model_without_a_recorded_call_refuses_to_pickle():
    fam, _ = example_of("lca")
    bare = type(fam).build(fam.data, fam.spec, None)
    with pytest.raises(bm.PersistenceError, match=r"no recorded factory call.*bayesmix\.save"):
        pickle.dumps(bare)
    _, res = fit_of("lca")
    with pytest.raises(bm.PersistenceError, match="no recorded factory call"):
        bm.save(dataclasses.replace(res, model=bare), "/nonexistent")
    with pytest.raises(bm.PersistenceError, match="no recorded factory call"):
        pickle.dumps(dataclasses.replace(res, model=bare))


def test_pickle_after_sampling_drops_the_sampler(tmp_path):
    """A real (very short) nutpie run puts the compiled sampler in the cache; the
    model still pickles, as a fresh one, and samples again."""
    fam, res = fit_of("lca")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = bm.sample(fam, ml=res, draws=5, tune=5, chains=1, progress=False)
    assert "nutpie" in fam.cache
    back = pickle.loads(pickle.dumps(fam))
    assert "nutpie" not in back.cache
    res_back = cloudpickle.loads(cloudpickle.dumps(res))
    assert res_back.model.cache == {}
    # the saved posterior comes back identical, and carries what load needs
    path = bm.save(dt, tmp_path / "post.zarr", model=res)
    loaded = bm.load(path, data=fam.call.data)
    for group in ("posterior", "sample_stats", "log_likelihood"):
        xr.testing.assert_identical(loaded[group].to_dataset(), dt[group].to_dataset())


# --------------------------------------------------------------------------- save / load
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The saved LCA fit (path)."""
    return {"lca": bm.save(fit_of("lca")[1], tmp_path_factory.mktemp("fits") / "lca.zarr")}


@pytest.mark.parametrize("name", FITTED)
def test_save_load_gives_the_same_numbers(name, tmp_path):
    fam, res = fit_of(name)
    back = bm.load(bm.save(res, tmp_path / f"{name}.zarr"), data=fam.call.data.copy())
    assert back.model is not res.model and back.model.spec == res.model.spec
    _assert_same_result(back, res)
    # recomputed at the stored theta on the rebuilt model: the stored LL exactly
    assert _ll(back.model, back.theta).sum() == res.loglik
    np.testing.assert_array_equal(_ll(back.model, back.theta), res.unit_loglik)
    assert back.summary() == res.summary()


def test_load_refuses_other_data(saved):
    fam, res = fit_of("lca")
    df = fam.call.data.copy()
    df.loc[3, "y2"] = 1 - df.loc[3, "y2"]
    with pytest.raises(bm.DataMismatchError, match="differ from the fit's"):
        bm.load(saved["lca"], data=df)
    with pytest.raises(bm.DataMismatchError, match="47 persons given, 48 in the fit"):
        bm.load(saved["lca"], data=fam.call.data.iloc[1:])
    with pytest.raises(bm.DataError, match="y3"):  # the factory's own error
        bm.load(saved["lca"], data=fam.call.data.drop(columns="y3"))
    with pytest.raises(bm.PersistenceError, match="data: got None"):
        bm.load(saved["lca"])
    with pytest.raises(bm.PersistenceError, match="exists; pass overwrite=True"):
        bm.save(res, saved["lca"])


def test_load_refuses_another_format_version(tmp_path):
    import zarr

    fam, res = fit_of("lca")
    path = bm.save(res, tmp_path / "fit.zarr")
    group = zarr.open_group(path, mode="r+")
    group.attrs["bayesmix_format_version"] = FORMAT_VERSION + 1
    with pytest.raises(bm.FormatVersionError, match=f"format version {FORMAT_VERSION + 1}.*reads format version "
                                                     f"{FORMAT_VERSION}"):
        bm.load(path, data=fam.call.data)
    with pytest.raises(bm.PersistenceError, match="does not exist"):
        bm.load(tmp_path / "nothing.zarr", data=fam.call.data)


def test_data_hash_is_of_the_prepared_arrays():
    df = families.examples.example_data()
    a = bm.prepare_wide(df, ["y1", "y2"])
    assert data_hash(a) == data_hash(bm.prepare_wide(df.copy(), ["y1", "y2"]))
    assert data_hash(a) == data_hash(bm.prepare_wide(df[["y2", "y1", "x"]], ["y1", "y2"]))  # unused columns
    moved = df.copy()
    moved.loc[0, "y1"] = 1 - moved.loc[0, "y1"]
    assert data_hash(bm.prepare_wide(moved, ["y1", "y2"])) != data_hash(a)
    missing = df.copy()
    missing.loc[0, "y1"] = np.nan
    assert data_hash(bm.prepare_wide(missing, ["y1", "y2"])) != data_hash(a)


def test_custom_priors_are_stored_and_rebuilt(tmp_path):
    df = families.examples.example_data()
    prior = pm.StudentT.dist(nu=4, mu=0.5, sigma=1.5)
    fam = bm.lca(df, ["y1", "y2", "y3", "y4"], 2, priors={"alpha": prior})
    # the default-prior fit's numbers on this model (ML ignores priors; spares a compilation)
    res = dataclasses.replace(fit_of("lca")[1], model=fam)
    back = bm.load(bm.save(res, tmp_path / "p.zarr"), data=df)
    rv, rv0 = back.model.model["alpha"], fam.model["alpha"]
    assert rv.owner.op == rv0.owner.op
    for a, b in zip(rv.owner.inputs[2:], rv0.owner.inputs[2:]):
        assert a.type == b.type and np.array_equal(_constant(a, "a"), _constant(b, "b"))
    assert back.model.spec.prior_names == ("alpha",)
    # a prior with a symbolic parameter has no stored form: refused with the reason
    sym = bm.lca(df, ["y1", "y2", "y3", "y4"], 2, priors={"alpha": pm.Normal.dist(0, pt.exp(pt.scalar("s")))})
    with pytest.raises(bm.PersistenceError, match="symbolic"):
        bm.save(dataclasses.replace(res, model=sym), tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_posterior_save_load_with_mocked_sampling(tmp_path, monkeypatch):
    """The DataTree of bayesmix.sample (sampler mocked) saves and loads identical;
    the loaded tree describes its model (load with other data is refused)."""
    import nutpie

    fam, res = fit_of("lca")
    dt_fake = fake_posterior(fam, res)[0]
    dt_fake["posterior"] = dt_fake["posterior"].to_dataset().assign_coords(  # text coordinates travel too
        person_label=("person", [f"p{i}" for i in range(fam.data.n_persons)]))
    monkeypatch.setattr(bayes, "_nutpie_model", lambda model, init: None)
    monkeypatch.setattr(nutpie, "sample", lambda *a, **k: dt_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        dt = bm.sample(fam, ml=res, draws=12, tune=5, chains=2, progress=False)
    with pytest.raises(bm.PersistenceError, match="model: got None"):
        bm.save(dt, tmp_path / "x.zarr")
    path = bm.save(dt, tmp_path / "post.zarr", model=fam)
    loaded = bm.load(path)
    for group in dt.children:
        xr.testing.assert_identical(loaded[group].to_dataset(), dt[group].to_dataset())
    assert loaded.attrs["bayesmix_family"] == "lca"
    bm.save(loaded, tmp_path / "again.zarr")  # a loaded posterior saves without model=
    with pytest.raises(bm.DataMismatchError):
        bm.load(path, data=fam.call.data.iloc[::-1])
