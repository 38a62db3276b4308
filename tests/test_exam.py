"""Slow checks on the Exam data (run with `pytest -m slow`): the quick mode of
models/exam_mixture_regression.py, and NUTS against ML for a random-intercept
regression of a subset of the schools."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import bayesmix as bm

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[1] / "models"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is created
    spec.loader.exec_module(mod)
    return mod


def test_exam_script_quick(capsys):
    exam = _load("exam_mixture_regression")
    fits = exam.main(["--quick"])
    out = capsys.readouterr().out
    table = exam.comparison_table(fits)
    assert list(table.index) == ["K=1 (int)", "K=2 within (int)", "K=2 between (int)"]
    assert list(table["class_level"]) == ["-", "within", "between"]
    assert list(table["path"]) == ["analytic", "quadrature", "analytic"]
    for col in ("loglik", "n_params", "bic", "entropy", "best_ll_replicated", "delta_bic"):
        assert col in table.columns, col
    assert list(table["n_params"]) == [4, 7, 7]
    # K = 1 is the ordinary random-intercept regression: lme4's ML log-likelihood
    # (lmer(normexam ~ standLRT + (1 | school), REML = FALSE)) is -4678.6
    assert table.loc["K=1 (int)", "loglik"] == pytest.approx(-4678.62, abs=0.01)
    # a mixture never fits worse than its one-class special case
    assert (table["loglik"].iloc[1:] >= table.loc["K=1 (int)", "loglik"] - 1e-3).all()
    assert (table["best_ll_replicated"] >= 2).all()
    best = exam.choose(fits)
    assert best == table["bic"].idxmin()
    assert f"Lowest BIC: {best}" in out
    assert "MODEL COMPARISON" in out and "MODEL RESULTS" in out
    if fits[best].model.class_level == "between" and fits[best].n_classes > 1:
        schools = exam.school_classes(fits[best])
        assert schools["schools"].sum() == 65
        assert "SCHOOLS BY MOST LIKELY CLASS" in out


def test_nuts_agrees_with_ml_on_exam_subset():
    """One class, school random intercept, 15 schools (~1000 students): posterior
    means within half a posterior sd of ML, R-hat < 1.05, no divergences."""
    df = bm.load_dataset("exam")
    keep = sorted(df["school"].unique(), key=int)[:15]
    sub = df[df["school"].isin(keep)].reset_index(drop=True)
    m = bm.mixture_regression(sub, "normexam", ["standLRT"], 1, cluster="school", random=["intercept"])
    assert m.path == "analytic"
    res = bm.fit_ml(m, n_starts=5, n_final=2, seed=1, progress=False)
    dt = bm.sample(m, ml=res, draws=1000, tune=1000, chains=4, seed=2, progress=False)
    table = bm.compare_ml_bayes(res, dt)
    table = table[table["parameter"] != "class_share"]  # 1 by definition with one class
    print(table[["label", "ml_estimate", "ml_se", "post_mean", "post_sd", "r_hat", "z_diff"]].to_string())
    assert set(table["parameter"]) == {"mu", "beta", "theta", "v"}
    assert table["z_diff"].abs().max() < 0.5
    assert table["r_hat"].max() < 1.05
    assert int(dt["sample_stats"]["diverging"].sum()) == 0
    assert dt["log_likelihood"]["loglik"].shape[-1] == 15  # one term per school
    assert np.isfinite(dt["log_likelihood"]["loglik"].to_numpy()).all()
