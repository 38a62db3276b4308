"""Long statistical checks (run with `pytest -m slow`): recovery of a simulated
two-level LCA and NUTS against ML on real data."""

import json

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.simulate import simulate_lca

pytestmark = pytest.mark.slow


def test_two_level_lca_recovery():
    """200 clusters x 10 persons, 8 binary items, K = 2, Var(alpha_1j) = 1.
    Each parameter's truth is compared to its estimate in units of its MLR SE."""
    tau = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2, -1.8, -0.8, -1.0],
                    [1.0, 1.5, 0.8, 2.0, 1.2, 0.5, 1.5, 1.0]])
    alpha, psi = np.array([0.4]), np.array([[1.0]])
    df, truth = simulate_lca(tau, alpha, n_clusters=200, cluster_size=10, psi=psi, seed=2024)
    items = [f"y{j}" for j in range(1, 9)]
    m = bm.lca(df, items, n_classes=2, cluster="cluster")
    res = bm.fit_ml(m, n_starts=10, n_final=3, seed=1, progress=False)
    # align labels with the truth (class 1 = low thresholds)
    if res.point["tau"][0].mean() > res.point["tau"][1].mean():
        res = bm.fit_ml(m, n_starts=0, start=m.permute_classes(res.point, np.array([1, 0])), progress=False)
    p = res.params.set_index("label")
    est = np.concatenate([p.loc[[f"tau[{c + 1}, y{j + 1}$1]" for c in range(2) for j in range(8)], "estimate"],
                          p.loc[["alpha[1]", "psi[alpha_1, alpha_1]"], "estimate"]])
    se = np.concatenate([p.loc[[f"tau[{c + 1}, y{j + 1}$1]" for c in range(2) for j in range(8)], "se"],
                         p.loc[["alpha[1]", "psi[alpha_1, alpha_1]"], "se"]])
    true = np.concatenate([tau.ravel(), alpha, psi.ravel()])
    z = (est - true) / se
    print("z-scores:", np.round(z, 2))
    assert np.all(np.abs(z) < 2.0), f"truth outside 2 SE for {np.flatnonzero(np.abs(z) >= 2)}: {z}"


def test_nuts_agrees_with_ml_on_verbal_aggression():
    df = bm.load_dataset("verbal_aggression")
    items = bm.dataset_items("verbal_aggression")
    m = bm.lca(df, items, n_classes=2)
    res = bm.fit_ml(m, n_starts=10, n_final=3, seed=1, progress=False)
    dt = bm.sample(m, ml=res, draws=1000, tune=1000, chains=4, seed=3, progress=False)
    table = bm.compare_ml_bayes(res, dt)
    print(table[["label", "ml_estimate", "ml_se", "post_mean", "post_sd", "r_hat", "z_diff"]].to_string())
    assert table["z_diff"].abs().max() < 2.0
    assert table["r_hat"].max() < 1.01
    assert int(dt["sample_stats"]["diverging"].sum()) == 0
    report = json.loads(dt["posterior"].attrs["label_switching"])
    # any switched draw would have been relabelled (and reported); chains from ML stay put
    assert sum(report["switched_draws_per_chain"]) == 0
    # posterior sd and ML SE agree in size on 316 persons
    ratio = table["post_sd"] / table["ml_se"]
    assert ratio.between(0.6, 1.6).all()
