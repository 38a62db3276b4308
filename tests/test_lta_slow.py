"""Latent transition analysis: ML recovery of a known transition matrix
(paper section 3) on data simulated here in plain numpy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmix as bm

pytestmark = pytest.mark.slow

TAU = np.array([[-1.5, -1.2, -1.8, -1.0, -1.4, -1.6],  # class 1 endorses the items
                [1.4, 1.6, 1.2, 1.8, 1.0, 1.5]])
P1 = np.array([0.6, 0.4])
TRANS = np.array([[0.8, 0.2], [0.3, 0.7]])  # P(C_2 = k | C_1 = j), rows j


def simulate(n=300, seed=11):
    rng = np.random.default_rng(seed)
    c1 = (rng.uniform(size=n) > P1[0]).astype(int)
    c2 = (rng.uniform(size=n) > TRANS[c1, 0]).astype(int)
    cols = {}
    for t, c in enumerate((c1, c2)):
        y = (rng.uniform(size=(n, 6)) < 1 - special.expit(TAU[c])).astype(float)
        y[rng.uniform(size=(n, 6)) < 0.05] = np.nan  # 5% missing cells (full information)
        for p in range(6):
            cols[f"u{p + 1}_{t + 1}"] = y[:, p]
    return pd.DataFrame(cols)


def test_ml_recovers_the_transition_matrix_within_3_se():
    df = simulate()
    items = {"fall": [f"u{p}_1" for p in range(1, 7)], "spring": [f"u{p}_2" for p in range(1, 7)]}
    fam = bm.lta(df, items, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=10, seed=1, progress=False)
    # the class that endorses the items is class 1 of the truth
    perm = [0, 1] if res.natural["tau"][0, 0] < res.natural["tau"][1, 0] else [1, 0]
    rows = res.params[res.params.parameter == "transition_prob"]
    est = rows["estimate"].to_numpy().reshape(2, 2)[np.ix_(perm, perm)]
    se = rows["se"].to_numpy().reshape(2, 2)[np.ix_(perm, perm)]
    assert np.all(np.isfinite(se)) and np.all(se > 0.005)
    z = (est - TRANS) / se
    print("transition", est.round(3), "se", se.round(3), "z", z.round(2))
    assert np.all(np.abs(z) < 3), z
    share = res.params[res.params.parameter == "class_share_C1"]
    z1 = (share["estimate"].to_numpy()[perm] - P1) / share["se"].to_numpy()[perm]
    assert np.all(np.abs(z1) < 3), z1
    assert "LATENT TRANSITION PROBABILITIES" in res.summary()


TRUTH_2L = {"alpha_1": 0.4, "mu": -0.3, "beta": 0.8, "gamma_1_2": 2.0, "var_alpha1": 1.0, "var_eps": 0.4}


def simulate_two_level(n_clusters=80, size=15, seed=12):
    """Section 4's model: alpha_1j = alpha_1 + u_j, alpha_2j = mu + beta alpha_1j + eps_j
    (eq. 15), P(C_1 = 1) = expit(alpha_1j) (eq. 12), P(C_2 = 1 | C_1) = expit(alpha_2j +
    gamma I(C_1 = 1)) (eq. 13)."""
    rng = np.random.default_rng(seed)
    tr = TRUTH_2L
    a1 = tr["alpha_1"] + np.sqrt(tr["var_alpha1"]) * rng.standard_normal(n_clusters)
    a2 = tr["mu"] + tr["beta"] * a1 + np.sqrt(tr["var_eps"]) * rng.standard_normal(n_clusters)
    cl = np.repeat(np.arange(n_clusters), size)
    c1 = (rng.uniform(size=cl.size) > special.expit(a1[cl])).astype(int)  # 0 = class 1
    c2 = (rng.uniform(size=cl.size) > special.expit(a2[cl] + tr["gamma_1_2"] * (c1 == 0))).astype(int)
    cols = {"school": cl}
    for t, c in enumerate((c1, c2)):
        y = (rng.uniform(size=(cl.size, 6)) < 1 - special.expit(TAU[c])).astype(float)
        for p in range(6):
            cols[f"u{p + 1}_{t + 1}"] = y[:, p]
    return pd.DataFrame(cols)


def test_two_level_ml_recovers_eq15_within_3_se():
    df = simulate_two_level()
    items = {"fall": [f"u{p}_1" for p in range(1, 7)], "spring": [f"u{p}_2" for p in range(1, 7)]}
    fam = bm.lta(df, items, 2, cluster="school")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=4, n_final=2, seed=2, progress=False)
        if res.natural["tau"][0, 0] > res.natural["tau"][1, 0]:  # class 1 must be the endorsing class
            res = bm.fit_ml(res.model, n_starts=0, start=res.model.permute_classes(res.point, np.array([1, 0])),
                            progress=False)
    table = res.params.set_index("parameter")
    for name, true in TRUTH_2L.items():
        est, se = float(table.loc[name, "estimate"]), float(table.loc[name, "se"])
        print(name, round(est, 3), round(se, 3), round((est - true) / se, 2))
        assert np.isfinite(se) and abs(est - true) < 3 * se, (name, est, se)
