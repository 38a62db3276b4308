"""Checks every registered family must pass: a plain PyMC model with one observed
``loglik`` on the right unit, unconstrained free parameters, the class dim,
starting points and bounds that fit the packing, and a likelihood invariant
under relabelling the classes. A new family needs one EXAMPLES entry."""

import numpy as np
import pymc as pm
import pytest

import bayesmix as bm
from bayesmix import dims
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca

ITEMS = ["y1", "y2", "y3", "y4"]


@pytest.fixture(scope="module")
def tiny():
    tau = np.array([[-1.0, -0.5, 0.0, -1.5], [1.0, 1.5, 0.5, 1.0]])
    df, _ = simulate_lca(tau, [0.2], n_clusters=8, cluster_size=6, seed=1)
    rng = np.random.default_rng(2)
    df["x"] = rng.normal(size=len(df))
    df["score"] = df[ITEMS].sum(axis=1) + 0.5 * df["x"] + rng.normal(size=len(df))
    return df


# family -> builder(df, two_level) (None: the family is two-level only)
EXAMPLES = {
    "lca": lambda df, two: bm.lca(df, ITEMS, 2, **({"cluster": "cluster"} if two else {})),
    "mixture_regression": lambda df, two: bm.mixture_regression(
        df, "score", ["x"], 2, **({"cluster": "cluster", "class_level": "within-between", "random": ["intercept"]}
                                  if two else {})),
    "within_between": lambda df, two: bm.within_between(df, "score", ["x"], 2, 2, cluster="cluster") if two else None,
}


def test_every_family_has_an_example():
    assert sorted(EXAMPLES) == sorted(bm.REGISTRY)


@pytest.fixture(scope="module", params=[(f, t) for f in sorted(bm.REGISTRY) for t in (False, True)],
                ids=lambda p: f"{p[0]}-{'two' if p[1] else 'single'}-level")
def built(request, tiny):
    family, two_level = request.param
    fam = EXAMPLES[family](tiny, two_level)
    if fam is None:
        pytest.skip(f"{family} is two-level only")
    return fam, two_level


def test_models_are_plain_pymc(built):
    fam, two_level = built
    model = fam.model
    assert isinstance(model, pm.Model)
    assert [rv.name for rv in model.observed_RVs] == ["loglik"]
    unit = dims.CLUSTER if two_level else dims.PERSON
    assert model.named_vars_to_dims["loglik"] == (unit,)
    assert len(model.coords[unit]) == (8 if two_level else 48)
    # every free parameter lives on the real line: ML and NUTS share one space
    assert all(model.rvs_to_transforms.get(rv) is None for rv in model.free_RVs)
    assert [rv.name for rv in model.free_RVs] == fam.free_names
    assert list(model.coords[dims.CLASS]) == [1, 2]
    assert "class_share" in fam.reported


def test_start_point_and_bounds_fit_the_packing(built):
    fam, _ = built
    packing = compiled(fam).packing
    theta = packing.pack(fam.start_point(np.random.default_rng(0)))
    low, high = fam.bounds(packing)
    assert theta.shape == low.shape == high.shape == (packing.size,)
    assert np.all(low <= high)


def test_likelihood_invariant_under_class_permutation(built):
    fam, two_level = built
    if not two_level:
        pytest.skip("checked on the two-level variant (one compilation per family)")
    comp = compiled(fam)
    rng = np.random.default_rng(5)
    point = fam.start_point(rng)
    for name in ("alpha", "gamma_cd", "beta_class"):
        if name in point:
            point[name] = rng.normal(0, 0.8, size=np.shape(point[name]))
    if "chol_log_diag" in point:
        point["chol_log_diag"] = np.full_like(point["chol_log_diag"], 0.3)
    base = comp.unit_loglik(comp.packing.pack(point))
    swapped = fam.permute_classes(point, np.array([1, 0]))
    assert not np.allclose(comp.packing.pack(swapped), comp.packing.pack(point))
    np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(swapped)), base, atol=1e-9)
