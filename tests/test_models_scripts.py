"""The section 5 scripts in models/: Table 2 (structure, fast) and Table 3
(Model 6 reaches Model 5, slow); sections 8-9: Table 6 (LCA / FMA / FMA-GoM) and the
3PL on the ability data, both quick mode and slow."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table2_run_structure():
    table2 = _load("table2_class_level_mse")
    table = table2.run(reps=2, jobs=1, seed=0, quick=True, progress=False)
    assert list(table.index) == [1, 2, 3, 4]
    for col in ("class_level", "v", "mse", "mse_mcse", "paper_mse", "bias", "coverage", "converged_share",
                "within_2mcse", "seconds"):
        assert col in table.columns, col
    assert list(table["class_level"]) == ["within", "between", "between", "between"]
    assert list(table["paper_mse"]) == [0.31, 0.10, 0.26, 0.44]
    assert np.all(np.isfinite(table["mse"].to_numpy(float)))
    assert (table["reps"] == 2).all()
    text = table2.report(table)
    assert "Paper's ordering" in text and "Model" in text


@pytest.mark.slow
def test_table3_model6_reaches_model5():
    table3 = _load("table3_model5_vs_model6")
    out = table3.run(quick=True)
    f5, f6, t = out["fit5"], out["fit6"], out["table"]
    assert f6.loglik >= f5.loglik - 0.1
    assert out["var_alpha1"][0] > 100
    assert out["icc"]["icc"].iloc[0] > 0.95
    err = (t["model5_est"] - t["true"]).abs()
    assert (err <= 3 * t["model5_se"]).all(), t[["true", "model5_est", "model5_se"]]


@pytest.mark.slow
def test_table5_gom_vs_lca_quick(tmp_path):
    """--quick of Table 5 (N = 1000, STARTS = 6 2, <= 300 iterations; measured 146 s at
    load 10 on the shared 2-core machine, hence slow): the table's rows and parameter
    counts (LCA 17 K thresholds + K - 1 logits: 35 / 53; GoM one (psi) / two (lambda)
    more), GoM K=2 above LCA K=2 (the nesting), Figure 4 saved, its correlation
    recomputed here."""
    table5 = _load("table5_gom_vs_lca")
    out = table5.run(quick=True, out=str(tmp_path))
    t = out["table"]
    assert list(t.index) == [("LCA", 2), ("LCA", 3), ("GoM", 2), ("GoM", 3)]
    assert list(t["n_params"]) == [35, 53, 36, 55]  # 17 K thresholds + K - 1 logits (+ psi / K - 1 lambdas)
    assert t.loc[("GoM", 2), "loglik"] > t.loc[("LCA", 2), "loglik"]
    assert t.loc[("LCA", 3), "loglik"] > t.loc[("LCA", 2), "loglik"]
    np.testing.assert_allclose(out["correlation"], np.corrcoef(out["p_lca"], out["p_gom"])[0, 1], rtol=1e-12)
    assert (tmp_path / "figure4_gom_vs_lca.png").stat().st_size > 0
    text = table5.report(out)
    assert "Checks against the paper's shape" in text and "-42625.7" in text


@pytest.mark.slow
def test_table6_lca_fma_fmagom_quick():
    """Table 6 (section 8) in quick mode (200 x 12 simulated items): the parameter counts
    2P + 1 / 3P + 2 / 3P + 3 (37/56/57 at 18 items), LCA below FMA and FMA-GoM, an ICC in [0, 1].
    Slow: 28 s quick at load 5, 108 s at load 10 on the shared 2-core machine (three fits + compiles)."""
    table6 = _load("table6_lca_fma_fmagom")
    assert [table6.TRUTH[k].shape for k in ("tau", "lambda")] == [(2, 18), (18,)]
    out = table6.run(quick=True)
    t = out["table"]
    assert list(t.index) == ["LCA", "FMA", "FMA-GoM"]
    assert list(t["n_params"]) == [25, 38, 39]  # 12 items
    assert list(t["paper_n_params"]) == [37, 56, 57]
    # the FMA-GoM reaches the FMA only as Var(alpha_1j) -> infinity, so FMA <= FMA-GoM is printed as a
    # check but not asserted (the full run's best FMA-GoM optimum is 2.2 below the FMA's: module docstring)
    assert t.loc["LCA", "loglik"] < t.loc["FMA", "loglik"]
    assert t.loc["LCA", "loglik"] < t.loc["FMA-GoM", "loglik"]
    assert out["checks"][0][1], out["checks"]  # the parameter counts
    assert [text.split(":")[0] for text, _ in out["checks"]] == ["parameter counts 25/38/39 (18 items", "LL", "LL"]
    assert 0.0 <= out["icc"]["icc"].iloc[0] <= 1.0
    text = table6.report(out)
    assert "-3650.0" in text and "ICC of alpha_1j" in text


@pytest.mark.slow
def test_irt_3pl_ability_quick():
    """Section 9 in quick mode (500 x 8 ability items): the 3PL fitted directly and as the
    constrained FMA-GoM reach the same LL (< 1e-6) and the same g, a, b; the 2PL is below.
    Slow: 31 s quick at load 5, 75 s at load 10 (three fits, two compiles per model)."""
    irt = _load("irt_3pl_ability")
    out = irt.run(quick=True)
    assert abs(out["ll_gap"]) < 1e-6
    assert out["est_diff"] < 1e-3
    assert all(ok for _, ok in out["checks"]), out["checks"]
    fits = out["fits"]
    assert fits["3PL direct"].n_params == 24 and fits["2PL"].n_params == 16
    assert out["lrt"].df == 8 and 0.0 <= out["chibar_p"] <= out["lrt"].p <= 1.0
    gab = out["gab"]
    np.testing.assert_allclose(gab.xs("direct", axis=1, level="fit").to_numpy(float),
                               gab.xs("fma_gom", axis=1, level="fit").to_numpy(float), atol=1e-3, equal_nan=True)
    assert "chi-bar-square" in irt.report(out)
