"""Real NUTS (nutpie, not mocked) on every registered family's example (slow):
``bayesmix.sample`` runs, returns every free parameter and the per-unit
log-likelihood, and the draws sit where the likelihood says they should. The
maximum-likelihood fit bounds every draw's log-likelihood from above (a draw above
it means either the ML fit or the sampler's log-likelihood is wrong), and the
posterior mean of the log-likelihood is near the maximum (about ML - p / 2 for a
well-behaved posterior; asserted within 2 p, so a sampler that wanders off the
likelihood fails). Measured (2 x 300 draws after 300 tuning, 13 examples, about
11 min on 2 cores): posterior mean LL 2.4 to 7.5 below the ML, the best draw 0.4 to
1.7 below it, at most 3 divergences (the two-level LTA)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix import families

CASES = [(f, t) for f in sorted(bm.REGISTRY) for t in (False, True)]


@pytest.mark.slow
@pytest.mark.parametrize("name,two_level", CASES, ids=[f"{f}-{'two' if t else 'single'}" for f, t in CASES])
def test_nuts_every_family(name, two_level):
    fam = families.example(name, two_level)
    if fam is None:
        pytest.skip(f"{name} has no {'two' if two_level else 'single'}-level example")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=4, n_final=2, seed=0, progress=False)
        dt = bm.sample(fam, ml=res, draws=300, tune=300, chains=2, seed=1, progress=False)
    post = dt["posterior"]
    for free in fam.free_names:
        assert free in post, free
        assert np.isfinite(post[free].to_numpy()).all(), free
    ll = dt["log_likelihood"]["loglik"]
    assert ll.dims == ("chain", "draw", fam.unit_dim)
    total = ll.sum(fam.unit_dim).to_numpy()
    assert np.isfinite(total).all()
    assert total.max() <= res.loglik + 1e-6, (total.max(), res.loglik)
    print(f"{name} {'two' if two_level else 'single'}: ML {res.loglik:.3f}, p {res.n_params}, "
          f"posterior mean LL {total.mean():.3f}, max {total.max():.3f}, "
          f"divergences {int(dt['sample_stats']['diverging'].sum())}")
    assert total.mean() >= res.loglik - 2 * res.n_params, (total.mean(), res.loglik, res.n_params)
