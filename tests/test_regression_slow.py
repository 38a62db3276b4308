"""Recovery of the section 5 designs for each class status (slow: run with
``pytest -m slow``). One replication each through ``run_simulation``, which
aligns the class labels to the truth; every estimate must lie within 3 MLR
standard errors of its true value."""

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.simulate import simulate_mixture_regression

pytestmark = pytest.mark.slow

DESIGNS = {
    # status: (generator kwargs, model kwargs)
    "within": (dict(n_clusters=200, class_level="within", v_intercept=0.3),
               dict(class_level="within", random=["intercept"])),
    "between": (dict(n_clusters=150, class_level="between", v_intercept=0.2, v_slope=0.1),
                dict(class_level="between", random=["intercept", "x"], re_cov="diagonal")),
    "within-between": (dict(n_clusters=200, class_level="within-between", v_intercept=0.2, psi=2.0),
                       dict(class_level="within-between", random=["intercept"])),
}


@pytest.mark.parametrize("status", sorted(DESIGNS))
def test_recovery(status):
    gen, spec = DESIGNS[status]

    def generate(rng):
        df, truth = simulate_mixture_regression(cluster_size=10, seed=int(rng.integers(2**31)), **gen)
        truth.pop("class")
        return df, truth

    design = bm.SimulationDesign(
        status, generate, lambda df: bm.mixture_regression(df, "y", ["x"], 2, cluster="cluster", **spec),
        fit_kwargs=dict(n_starts=20, n_final=5))
    res = bm.run_simulation(design, 1, seed=3, n_jobs=1, progress=False)
    reps = res.replications.dropna(subset=["truth"])
    assert res.fits["converged"].all(), res.fits
    z = (reps["estimate"] - reps["truth"]) / reps["se"]
    print(status, dict(zip(reps["label"], np.round(z, 2))))
    assert np.all(np.isfinite(z)), reps
    assert np.max(np.abs(z)) < 3.0, reps[["label", "truth", "estimate", "se"]]
