"""The test-only toy family (tests/toy_family.py), written from ARCHITECTURE.md
"Adding a family" alone, registered for this module and run through every check
of tests/registry_checks.py, plus a brute-force likelihood test and MLR SEs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmix as bm
import bayesmix.families
import registry_checks as rc
import toy_family
from bayesmix.fit.compiled import compiled


@pytest.fixture(scope="module", autouse=True)
def registered():
    with pytest.MonkeyPatch.context() as mp:
        # bayesmix.REGISTRY is the same dict object as bayesmix.families.REGISTRY
        mp.setitem(bayesmix.families.REGISTRY, "normal_mixture", toy_family.normal_mixture)
        assert bm.REGISTRY is bayesmix.families.REGISTRY
        yield


@pytest.fixture(scope="module")
def fam(registered):
    return bayesmix.families.example("normal_mixture")


@pytest.fixture(scope="module")
def ml(fam):
    return rc.check_fit_and_summary(fam)


def test_registered_example(fam):
    assert "normal_mixture" in bm.REGISTRY
    assert isinstance(fam, toy_family.NormalMixtureModel)
    assert bayesmix.families.example("normal_mixture", two_level=True) is None


def test_plain_model(fam):
    rc.check_plain_model(fam)


def test_starts_and_bounds(fam):
    rc.check_starts_and_bounds(fam)


def test_permutation_invariance(fam):
    rc.check_permutation_invariance(fam)


def test_membership(fam):
    rc.check_membership(fam)


def test_fit_and_summary(ml):
    assert ml.se_type == "mlr"


def test_sample_relabels(fam, ml, monkeypatch):
    rc.check_sample_relabels(fam, ml, monkeypatch)


def test_likelihood_brute_force(fam):
    comp = compiled(fam)
    rng = np.random.default_rng(3)
    point = {"mu": rng.normal(0, 1, 2), "log_sigma": rng.normal(0, 0.5, 2),
             "alpha": rng.normal(0, 1, 1), "beta": rng.normal(0, 1, (1, 1))}
    theta = comp.packing.pack(point)
    y = fam.data.y[:, 0]
    x = fam.data.covariates
    logits = np.concatenate([point["alpha"][None, :] + x @ point["beta"].T, np.zeros((len(y), 1))], axis=1)
    log_pi = logits - special.logsumexp(logits, axis=1, keepdims=True)
    log_f = stats.norm.logpdf(y[:, None], point["mu"][None, :], np.exp(point["log_sigma"])[None, :])
    expected = np.log(np.sum(np.exp(log_pi + log_f), axis=1))
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, rtol=0, atol=1e-10)
    # memberships are the class posterior of the same terms
    post = comp.memberships(theta)["C"]
    np.testing.assert_allclose(post, np.exp(log_pi + log_f - expected[:, None]), atol=1e-10)


def test_mlr_standard_errors(fam):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=5, n_final=2, seed=0, progress=False)
    assert res.se_type == "mlr"
    for name in ("mu", "alpha"):
        rows = res.params[res.params.parameter == name]
        assert len(rows) > 0 and np.isfinite(rows["se"]).all(), rows


def test_simulate_shapes(fam, ml):
    y, cls = fam.simulate(ml.natural, np.random.default_rng(0))
    assert y.shape == (fam.data.n_persons, 1) and cls.shape == (fam.data.n_persons,)
    assert set(np.unique(cls)) <= {0, 1}


def test_factory_errors():
    df = pd.DataFrame({"y": np.linspace(0, 1, 10), "x": np.arange(10.0)})
    with pytest.raises(bm.SpecificationError, match="n_classes"):
        toy_family.normal_mixture(df, "y", n_classes=0)
    with pytest.raises(bm.SpecificationError, match="outcome"):
        toy_family.normal_mixture(df, ["y"])
    with pytest.raises(bm.SpecificationError, match="covariates"):
        toy_family.normal_mixture(df, "y", covariates=3)
    with pytest.raises(bm.DataError, match="covariates"):
        toy_family.normal_mixture(df, "y", covariates=["z"])
    with pytest.raises(bm.SpecificationError, match="priors"):
        toy_family.normal_mixture(df, "y", priors={"nope": None})
    one = toy_family.normal_mixture(df, "y", n_classes=1)
    assert one.free_names == ["mu", "log_sigma"]
