"""LOO across the number of classes (issue 10, part 2) from Laplace posteriors:
ArviZ's PSIS-LOO on the per-person log-likelihood, the true K ranked first,
elpd_loo near the AIC-like LL - p, and units that differ refused."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayesmix as bm

ITEMS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def posteriors():
    rng = np.random.default_rng(21)
    n = 400
    c = rng.random(n) < 0.45
    y = (rng.random((n, 5)) < np.where(c[:, None], 0.8, 0.2)).astype(float)
    data = pd.DataFrame(y, columns=ITEMS)
    out, fits = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in (1, 2):
            fits[k] = bm.fit_map(bm.lca(data, ITEMS, k), n_starts=4, n_final=2, progress=False)
            out[f"K={k}"] = bm.fit_laplace(fits[k].model, map_result=fits[k], draws=400, chains=2, progress=False)
    return out, fits


def test_true_k_ranked_first(posteriors):
    dts, fits = posteriors
    table = bm.compare_loo(dts)
    assert table.index[0] == "K=2"
    assert (table["unit"] == "person").all()
    for label, dt in dts.items():
        elpd = az.loo(dt, var_name="loglik").elpd
        assert table.loc[label, "elpd"] == pytest.approx(elpd, rel=1e-12)
        k = int(label[2:])
        # LOO ~ LL - p for a regular model with n >> p (AIC's asymptotics): within 3
        assert abs(table.loc[label, "elpd"] - (fits[k].loglik - fits[k].n_params)) < 3.0
    assert (table["n_bad_pareto_k"] == 0).all()
    assert (table["pareto_k_threshold"] < 0.7).all()  # 2 x 400 draws: ArviZ's threshold is below 0.7


def test_compare_loo_refuses_other_data(posteriors):
    dts, _ = posteriors
    other = dts["K=1"].copy()
    other["log_likelihood"] = other["log_likelihood"].to_dataset().isel(person=slice(0, 300))
    with pytest.raises(bm.SpecificationError, match="same data"):
        bm.compare_loo({"K=1": other, "K=2": dts["K=2"]})
    with pytest.raises(bm.SpecificationError, match="log_likelihood"):
        bm.compare_loo({"a": dts["K=1"]["posterior"].to_dataset(), "b": dts["K=2"]})


def test_ml_comparisons_refuse_a_map(posteriors):
    _, fits = posteriors
    with pytest.raises(bm.SpecificationError, match="MAP fit"):
        bm.compare_fits({"K=1": fits[1], "K=2": fits[2]})
    with pytest.raises(bm.SpecificationError, match="posterior modes"):
        bm.lr_test(fits[1], fits[2])
