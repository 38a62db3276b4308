"""Derived quantities defined once (issue 10, part 6): ``fit.derive`` gives the
delta-method SE at a fit and the posterior summary of draws from the same
function; the ICC through it equals its hand-derived delta method."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.fit.derive import derive


@pytest.fixture(scope="module")
def fits():
    fam = bm.families.example("lca", True)  # two-level LCA: random class-logit intercepts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bm.fit_ml(fam, n_starts=3, n_final=2, progress=False, check_integration=False)
        mp = bm.fit_map(fam, n_starts=3, n_final=2, progress=False, check_integration=False)
        dt = bm.fit_laplace(fam, map_result=mp, draws=300, chains=2, progress=False)
    return res, mp, dt


def test_linear_function_has_the_reported_se(fits):
    res = fits[0]
    tab = derive(res, lambda nat: {"twice": 2 * nat["class_share"][0]})
    row = res.params.set_index("label").loc["class_share[1]"]
    assert tab.loc["twice", "estimate"] == pytest.approx(2 * row["estimate"], rel=1e-12)
    assert tab.loc["twice", "se"] == pytest.approx(2 * row["se"], rel=1e-6)


def test_icc_delta_method_matches_the_hand_derivative(fits):
    res = fits[0]
    icc = bm.icc(res)
    name = res.model.class_variables[0].logit_variance
    rows = res.params[res.params["parameter"] == name].set_index("label")
    var = np.diag(np.atleast_2d(res.natural[name]))
    diag_labels = [lab for lab in rows.index if lab.split("[")[1].rstrip("]").split(", ")[0]
                   == lab.split("[")[1].rstrip("]").split(", ")[1]]
    se_var = rows.loc[diag_labels, "se"].to_numpy(float)
    c = np.pi**2 / 3
    np.testing.assert_allclose(icc["icc"], var / (var + c), rtol=1e-12)
    np.testing.assert_allclose(icc["se"], c / (var + c) ** 2 * se_var, rtol=1e-5)


def test_posterior_path_is_the_same_function_per_draw(fits):
    _, _, dt = fits
    tab = derive(dt, lambda nat: {"twice": 2 * nat["class_share"][0]}, needs=["class_share"])
    draws = 2 * dt["posterior"]["class_share"].to_numpy()[..., 0].reshape(-1)
    assert tab.loc["twice", "estimate"] == pytest.approx(draws.mean(), rel=1e-12)
    assert tab.loc["twice", "sd"] == pytest.approx(draws.std(), rel=1e-12)
    name = fits[1].model.class_variables[0].logit_variance
    var = np.diagonal(dt["posterior"][name].to_numpy(), axis1=-2, axis2=-1).reshape(-1, 1)
    np.testing.assert_allclose(bm.icc(dt)["icc"], (var / (var + np.pi**2 / 3)).mean(axis=0), rtol=1e-12)


def test_errors(fits):
    with pytest.raises(bm.SpecificationError, match="prob"):
        derive(fits[0], lambda nat: {}, prob=1.5)
    with pytest.raises(bm.SpecificationError, match="no \\['nothing'\\]"):
        derive(fits[2], lambda nat: {}, needs=["nothing"])
    with pytest.raises(bm.SpecificationError, match="MLResult or a posterior"):
        derive("x", lambda nat: {})
