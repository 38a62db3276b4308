"""Every registered family, built from its module's ``example(two_level)``,
passes the contract checks of registry_checks.py: a plain PyMC model with one
observed ``loglik`` on the right unit, declared unconstrained parameters and
class variables, starting points and bounds that fit the packing, a
likelihood invariant under relabelling every class variable, memberships of
the declared shapes, ML with a summary, and sampling (mocked) with relabelling."""

import pytest

import bayesmix as bm
from bayesmix import families
from registry_checks import (
    check_fit_and_summary,
    check_membership,
    check_permutation_invariance,
    check_plain_model,
    check_sample_relabels,
    check_starts_and_bounds,
)


def test_every_family_has_an_example():
    for name in bm.REGISTRY:
        built = [families.example(name, two) for two in (False, True)]
        assert any(m is not None for m in built), name
        for m in built:
            assert m is None or isinstance(m, families.FamilyModel)


@pytest.fixture(scope="module", params=[(f, t) for f in sorted(bm.REGISTRY) for t in (False, True)],
                ids=lambda p: f"{p[0]}-{'two' if p[1] else 'single'}-level")
def built(request):
    family, two_level = request.param
    fam = families.example(family, two_level)
    if fam is None:
        pytest.skip(f"{family} has no {'two' if two_level else 'single'}-level example")
    return fam, two_level, family


def test_models_are_plain_pymc(built):
    fam, two_level, _ = built
    check_plain_model(fam)
    assert fam.is_two_level == two_level


def test_start_point_and_bounds_fit_the_packing(built):
    check_starts_and_bounds(built[0])


def _two_level_only(built):
    """The deep checks run once per family: on its two-level example, or on the
    single-level one when the family has no two-level variant."""
    fam, two_level, family = built
    if not two_level and families.example(family, True) is not None:
        pytest.skip("checked on the two-level variant (one compilation per family)")
    return fam


def test_likelihood_invariant_under_class_permutation(built):
    check_permutation_invariance(_two_level_only(built))


def test_memberships_have_the_declared_shapes(built):
    check_membership(_two_level_only(built))


@pytest.fixture(scope="module")
def fitted(built):
    fam = _two_level_only(built)
    return fam, check_fit_and_summary(fam)


def test_fit_and_summary(fitted):
    fam, res = fitted
    assert res.model is fam


def test_sample_relabels_every_class_variable(fitted, monkeypatch):
    fam, res = fitted
    check_sample_relabels(fam, res, monkeypatch)
