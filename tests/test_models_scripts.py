"""The section 5 scripts in models/: Table 2 (structure, fast) and Table 3
(Model 6 reaches Model 5, slow)."""

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
