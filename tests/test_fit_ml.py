"""ML fitting: reproducible random starts, the starts report, information
criteria, entropy and standard errors against independent computations."""

import warnings

import numpy as np
import pytest
from scipy import special

import bayesmix as bm
from bayesmix.simulate import simulate_lca

TAU = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2], [1.0, 1.5, 0.8, 2.0, 1.2]])
ITEMS = [f"y{j}" for j in range(1, 6)]


@pytest.fixture(scope="module")
def data():
    df, truth = simulate_lca(TAU, [0.4], n_persons=300, seed=11)
    return df


@pytest.fixture(scope="module")
def model(data):
    return bm.lca(data, ITEMS, n_classes=2)


@pytest.fixture(scope="module")
def fit(model):
    return bm.fit_ml(model, n_starts=8, n_final=3, seed=3, progress=False)


def numpy_loglik(y, tau, alpha):
    """Independent binary-LCA log-likelihood (classes enumerated)."""
    logp1 = -np.logaddexp(0, tau)  # log P(y=1|c) = log(1 - expit(tau))
    logp0 = -np.logaddexp(0, -tau)
    log_f = y @ logp1.T + (1 - y) @ logp0.T
    log_prior = special.log_softmax(np.append(alpha, 0.0))
    return special.logsumexp(log_f + log_prior, axis=1).sum()


def test_loglik_matches_numpy_at_optimum(data, fit):
    y = data[ITEMS].to_numpy(float)
    ll = numpy_loglik(y, fit.point["tau"], fit.point["alpha"])
    assert abs(ll - fit.loglik) < 1e-8


def test_reproducible_with_seed(model, fit):
    again = bm.fit_ml(model, n_starts=8, n_final=3, seed=3, progress=False)
    assert again.loglik == fit.loglik
    np.testing.assert_array_equal(again.starts["loglik_initial_stage"].to_numpy(),
                                  fit.starts["loglik_initial_stage"].to_numpy())


def test_starts_report(fit):
    assert len(fit.starts) == 8
    completed = fit.starts["loglik_final"].notna().sum()
    assert completed == 3
    assert fit.convergence["n_best"] == int(np.sum(np.abs(fit.starts["loglik_final"] - fit.loglik) < 1e-3))
    assert fit.convergence["n_best"] >= 2
    assert fit.convergence["max_abs_gradient"] < 1e-4


def test_warning_when_best_reached_once(model):
    with pytest.warns(bm.StartsWarning, match="reached by only 1"):
        bm.fit_ml(model, n_starts=3, n_final=1, seed=0, progress=False)


def test_user_start_is_completed(model, fit):
    res = bm.fit_ml(model, n_starts=0, start=fit, progress=False)
    assert abs(res.loglik - fit.loglik) < 1e-8
    assert res.starts["start"].tolist() == ["user"]


def test_information_criteria_and_entropy(fit, data):
    n, p, ll = len(data), fit.n_params, fit.loglik
    assert p == 2 * 5 + 1
    assert fit.aic == pytest.approx(-2 * ll + 2 * p)
    assert fit.bic == pytest.approx(-2 * ll + p * np.log(n))
    assert fit.abic == pytest.approx(-2 * ll + p * np.log((n + 2) / 24))
    # posterior probabilities by Bayes' rule, entropy by its definition
    y = data[ITEMS].to_numpy(float)
    tau, alpha = fit.point["tau"], fit.point["alpha"]
    log_f = y @ (-np.logaddexp(0, tau)).T + (1 - y) @ (-np.logaddexp(0, -tau)).T
    post = special.softmax(log_f + special.log_softmax(np.append(alpha, 0.0)), axis=1)
    np.testing.assert_allclose(fit.membership[["p_class1", "p_class2"]].to_numpy(), post, atol=1e-10)
    ent = 1 - np.sum(-post * np.log(post)) / (n * np.log(2))
    assert fit.entropy == pytest.approx(ent, abs=1e-10)
    props = fit.class_proportions()
    assert props["model"].sum() == pytest.approx(1.0)
    assert props["posterior"].to_numpy() == pytest.approx(post.mean(axis=0))


def _fd_hessian(f, x, h=1e-4):
    p = x.size
    hess = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            e_i, e_j = np.eye(p)[i] * h, np.eye(p)[j] * h
            hess[i, j] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)) / (4 * h * h)
    return hess


def test_standard_errors_against_independent_numerics(model, fit, data):
    """ML SEs = sqrt diag of the inverse of an independent finite-difference
    Hessian of the numpy log-likelihood; MLR SEs = independent sandwich."""
    y = data[ITEMS].to_numpy(float)
    x0 = np.concatenate([fit.point["tau"].ravel(), fit.point["alpha"]])

    def f(x, rows=slice(None)):
        return numpy_loglik(y[rows], x[:10].reshape(2, 5), x[10:])

    cov_ml = np.linalg.inv(-_fd_hessian(f, x0))
    res_ml = bm.fit_ml(model, n_starts=0, start=fit, se="ml", progress=False)
    est = res_ml.params.set_index(["parameter", "class", "term"])
    se_tau = est.xs("tau", level="parameter")["se"].to_numpy()
    np.testing.assert_allclose(se_tau, np.sqrt(np.diag(cov_ml))[:10], rtol=2e-4)
    np.testing.assert_allclose(est.xs("alpha", level="parameter")["se"].to_numpy(),
                               np.sqrt(cov_ml[10, 10]), rtol=2e-4)
    # sandwich from per-person numerical scores
    h = 1e-6
    scores = np.empty((len(y), x0.size))
    per_person = lambda x: np.array([f(x, slice(i, i + 1)) for i in range(len(y))])  # noqa: E731
    for j in range(x0.size):
        e = np.eye(x0.size)[j] * h
        scores[:, j] = (per_person(x0 + e) - per_person(x0 - e)) / (2 * h)
    cov_mlr = cov_ml @ (scores.T @ scores) @ cov_ml
    se_mlr = fit.params[fit.params.parameter == "tau"]["se"].to_numpy()
    np.testing.assert_allclose(se_mlr, np.sqrt(np.diag(cov_mlr))[:10], rtol=2e-4)
    # z and p columns are consistent with estimate and se
    np.testing.assert_allclose(fit.params["z"], fit.params["estimate"] / fit.params["se"])


def test_summary_reads_like_mplus(fit):
    text = fit.summary()
    for key in ("MODEL FIT INFORMATION", "Number of Free Parameters", "H0 Value", "Akaike (AIC)",
                "Bayesian (BIC)", "Sample-Size Adjusted BIC", "Entropy", "FINAL CLASS COUNTS",
                "MODEL RESULTS", "Latent Class 1", "Thresholds", "RESULTS IN PROBABILITY SCALE"):
        assert key in text
    assert f"{fit.loglik:.3f}" in text
    assert f"{fit.bic:.3f}" in text


def test_compare_fits_orders_nested_models(model, fit, data):
    one = bm.fit_ml(bm.lca(data, ITEMS, n_classes=1), n_starts=2, n_final=2, progress=False)
    table = bm.compare_fits({"K=1": one, "K=2": fit})
    assert table.loc["K=2", "loglik"] > table.loc["K=1", "loglik"]
    assert table.loc["K=1", "n_params"] == 5
    # the independence model's LL in closed form
    y = data[ITEMS].to_numpy(float)
    p = y.mean(axis=0)
    ll1 = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert one.loglik == pytest.approx(ll1, abs=1e-6)


def test_threshold_at_bound_is_fixed_and_reported():
    """A class that always endorses y1 drives its threshold to -inf; it is held at
    the Mplus bound -15, gets no SE, and is named in a warning and the summary."""
    tau = TAU.copy()
    tau[0, 0] = -40.0
    df, _ = simulate_lca(tau, [0.4], n_persons=300, seed=12)
    m = bm.lca(df, ITEMS, n_classes=2)
    with pytest.warns(bm.ConvergenceWarning, match=r"fixed there to avoid singularity"):
        res = bm.fit_ml(m, n_starts=6, n_final=3, seed=0, progress=False)
    fixed = res.convergence["fixed_at_bound"]
    assert len(fixed) == 1 and fixed[0].endswith("y1$1]")
    row = res.params.set_index("label").loc[fixed[0]]
    assert row["estimate"] == pytest.approx(-15.0)
    assert np.isnan(row["se"])
    assert np.isfinite(res.params.drop(res.params.index[res.params.label == fixed[0]])["se"].dropna()).all()
    assert "Fixed at a bound" in res.summary()
