"""Posterior mode (bm.fit_map) and Laplace approximation (bm.fit_laplace).

Against independent computations: a numpy LCA log-likelihood (classes
enumerated) plus scipy normal log-priors, profiled on grids and differenced for
the Hessian; flat priors reduce the MAP to ML; the Gaussian draws are whitened
against the stored mean and covariance; deterministic draws are recomputed in
numpy. Every registered family gets a MAP and a Laplace DataTree from its tiny
example model.
"""

import warnings

import arviz as az
import matplotlib
import numpy as np
import pymc as pm
import pytensor
import pytest
from pytensor.compile.mode import Mode
from scipy import special, stats

import bayesmix as bm
from bayesmix import plots
from bayesmix.families import example
from bayesmix.families.examples import example_data
from bayesmix.fit.compiled import compiled
from bayesmix.fit.map import MAPResult

matplotlib.use("Agg")

FAST = dict(n_starts=1, n_final=1, progress=False, check_integration=False)
ITEMS = ["y1", "y2", "y3", "y4"]
TAU_PRIOR = (2.0, 0.5)  # informative: pulls every threshold toward 2
ALPHA_PRIOR = (0.0, 1.0)


def _example(name):
    ex = example(name)
    return ex if ex is not None else example(name, True)


def _normal_params(dist):
    """(mu, sigma) of a pm.Normal.dist prior, read without the code under test."""
    assert dist.owner.op.name == "normal", "the test reads normal priors only"
    fn = pytensor.function([], dist.owner.inputs[-2:], mode=Mode(linker="py", optimizer=None))
    return [np.asarray(v, float) for v in fn()]


def _summary_value(text, label):
    line = next(l for l in text.splitlines() if l.strip().startswith(label))
    return float(line.split()[-1])


# ---------------------------------------------------------------- every family
# the default run keeps two families (one exact, one integrated); every family under -m slow
@pytest.fixture(scope="module", params=[n if n in ("lca", "gom") else pytest.param(n, marks=pytest.mark.slow)
                                        for n in sorted(bm.REGISTRY)])
def family_fit(request):
    fam = _example(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bm.fit_map(fam, seed=1, **FAST)
        dt = bm.fit_laplace(fam, map_result=res, draws=100, chains=2, seed=2)
    return fam, res, dt


def test_map_every_family(family_fit):
    fam, res, dt = family_fit
    assert isinstance(res, MAPResult) and isinstance(res, bm.MLResult) and res.method == "map"
    assert res.se_type == "map" and res.convergence["max_abs_gradient"] < 1e-6
    # the log-prior at the mode from scipy, the family's declared (default) priors
    logprior = 0.0
    for info in fam.free:
        mu, sigma = _normal_params(info.prior)
        logprior += stats.norm.logpdf(res.point[info.name], mu, sigma).sum()
    assert abs(res.logprior - logprior) < 1e-9
    assert abs(res.loglik - res.unit_loglik.sum()) < 1e-9
    assert abs(res.logpost - (res.loglik + res.logprior)) < 1e-9
    free = ~np.isin(np.arange(res.n_params), np.flatnonzero(np.diag(res.cov) == 0))
    assert np.all(np.linalg.eigvalsh(res.cov[np.ix_(free, free)]) > 0)
    assert np.isnan(res.aic) and np.isnan(res.bic)
    text = res.summary()
    assert "posterior mode (MAP)" in text.splitlines()[0] and "Akaike" not in text
    assert abs(_summary_value(text, "H0 Value") - res.loglik) < 1e-3
    assert abs(_summary_value(text, "Log-posterior") - res.logpost) < 1e-3


def test_laplace_tree_every_family(family_fit):
    fam, res, dt = family_fit
    post = dt["posterior"]
    names = fam.free_names + [d.name for d in fam.model.deterministics]
    assert set(names) <= set(post.data_vars)
    for n in names:
        assert post[n].dims == ("chain", "draw", *fam.model.named_vars_to_dims.get(n, ()))
        for d in fam.model.named_vars_to_dims.get(n, ()):
            assert list(post[n][d].values) == list(fam.model.coords[d])
    assert post.attrs["bayesmix_method"] == "laplace" and post.attrs["bayesmix_family"] == fam.family
    fit = dt["fit"]
    np.testing.assert_array_equal(fit["mean_vector"].values, res.theta)
    np.testing.assert_array_equal(fit["covariance_matrix"].values, res.cov)
    assert fit["covariance_matrix"].dims == ("rows", "columns")
    assert fit["rows"].values[0].startswith(fam.free_names[0])
    ll = dt["log_likelihood"]["loglik"]
    assert ll.dims == ("chain", "draw", fam.unit_dim)
    # the stored draws' free values give the stored log-likelihood and deterministics
    comp = compiled(fam)
    flat = np.concatenate([post[n].values[1, 7].reshape(-1) for n in fam.free_names])
    np.testing.assert_allclose(ll.values[1, 7], comp.unit_loglik(flat), rtol=0, atol=1e-10)
    nat = comp.natural(flat)
    for d in fam.model.deterministics:
        np.testing.assert_allclose(post[d.name].values[1, 7], nat[d.name], rtol=0, atol=1e-12)
    summ = az.summary(dt, var_names=fam.free_names)
    assert len(summ) == res.n_params and np.all(np.isfinite(summ["mean"].to_numpy(float)))
    table = bm.compare_ml_bayes(res, dt)
    assert len(table) == len(res.params)
    np.testing.assert_allclose(table["ml_estimate"], res.params["estimate"])


def test_icc_every_family(family_fit):
    fam, res, dt = family_fit
    variance = fam.class_variables[0].logit_variance
    if variance is None:
        for result in (res, dt):
            with pytest.raises(bm.SpecificationError, match="icc"):
                bm.icc(result)
        return
    v = dt["posterior"][variance].values
    draws = np.diagonal(v, axis1=-2, axis2=-1).reshape(-1, v.shape[-1])
    np.testing.assert_allclose(bm.icc(dt)["icc"], (draws / (draws + np.pi**2 / 3)).mean(axis=0), rtol=1e-12)
    var_mode = np.diag(np.atleast_2d(res.natural[variance]))
    np.testing.assert_allclose(bm.icc(res)["icc"], var_mode / (var_mode + np.pi**2 / 3), rtol=1e-12)


# ---------------------------------------------------------------- LCA against numpy
def numpy_unit_loglik(y, tau, alpha):
    """Binary-LCA log-likelihood per person, classes enumerated:
    P(y = 0 | c) = expit(tau_c), class logits (alpha, 0)."""
    log_f = y @ (-np.logaddexp(0, tau)).T + (1 - y) @ (-np.logaddexp(0, -tau)).T
    return special.logsumexp(log_f + special.log_softmax(np.append(alpha, 0.0)), axis=1)


def numpy_logpost(y, theta, with_prior=True):
    tau, alpha = theta[:8].reshape(2, 4), theta[8:]
    out = numpy_unit_loglik(y, tau, alpha).sum()
    if with_prior:
        out += stats.norm.logpdf(tau, *TAU_PRIOR).sum() + stats.norm.logpdf(alpha, *ALPHA_PRIOR).sum()
    return out


@pytest.fixture(scope="module")
def y():
    return example_data()[ITEMS].to_numpy(float)


@pytest.fixture(scope="module")
def informative():
    priors = {"tau": pm.Normal.dist(*TAU_PRIOR), "alpha": pm.Normal.dist(*ALPHA_PRIOR)}
    fam = bm.lca(example_data(), ITEMS, 2, priors=priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bm.fit_map(fam, n_starts=4, n_final=2, seed=0, progress=False)
        ml = bm.fit_ml(fam, n_starts=4, n_final=2, seed=0, progress=False)
    return fam, res, ml


def test_flat_prior_map_is_ml():
    fam = bm.lca(example_data(), ITEMS, 2, priors={"tau": pm.Flat.dist(), "alpha": pm.Flat.dist()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = bm.fit_ml(fam, n_starts=3, n_final=2, seed=4, se="ml", progress=False)
        res = bm.fit_map(fam, n_starts=3, n_final=2, seed=4, progress=False)
    assert res.logprior == 0.0
    assert abs(res.loglik - ml.loglik) < 1e-8 and abs(res.logpost - ml.loglik) < 1e-8
    np.testing.assert_allclose(res.theta, ml.theta, rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.cov, ml.cov, rtol=0, atol=1e-6 * np.abs(ml.cov).max())
    dt = bm.fit_laplace(fam, map_result=res, draws=10, chains=1)
    np.testing.assert_allclose(dt["fit"]["covariance_matrix"].values, ml.cov, rtol=0, atol=1e-6 * np.abs(ml.cov).max())


def test_informative_prior_mode_against_numpy(informative, y):
    fam, res, ml = informative
    theta = res.theta
    assert abs(res.loglik - numpy_logpost(y, theta, with_prior=False)) < 1e-9
    assert abs(res.logpost - numpy_logpost(y, theta)) < 1e-9
    assert not res.convergence["fixed_at_bound"]
    grid = np.linspace(-0.01, 0.01, 201)  # step 1e-4
    for j in range(theta.size):
        def profile(with_prior):
            values = []
            for d in grid:
                t = theta.copy()
                t[j] += d
                values.append(numpy_logpost(y, t, with_prior))
            values = np.array(values)
            i = int(np.clip(np.argmax(values), 1, grid.size - 2))
            a, b, c = values[i - 1 : i + 2]  # parabola through the best three points
            assert 1 < i < grid.size - 2, "the 1-D mode lies outside the grid"
            return theta[j] + grid[i] + 0.5 * (grid[1] - grid[0]) * (a - c) / (a - 2 * b + c)

        # the 1-D mode of log-lik + log-prior is the MAP's coordinate
        assert abs(profile(True) - theta[j]) < 1e-5
        if j < 8:
            # a threshold: the log-lik alone still rises away from the prior mean 2, i.e.
            # the prior pulled the coordinate toward it (by (theta - 2) / 0.5^2 at the mode)
            up, down = theta.copy(), theta.copy()
            up[j] += 1e-5
            down[j] -= 1e-5
            slope = (numpy_logpost(y, up, False) - numpy_logpost(y, down, False)) / 2e-5
            assert np.sign(slope) == np.sign(theta[j] - TAU_PRIOR[0])
            assert abs(slope - (theta[j] - TAU_PRIOR[0]) / TAU_PRIOR[1] ** 2) < 1e-4
    # the whole mode moved toward the prior mean, from the ML estimate of the same data
    assert np.linalg.norm(res.point["tau"] - TAU_PRIOR[0]) < np.linalg.norm(ml.point["tau"] - TAU_PRIOR[0])


def test_map_covariance_is_inverse_log_posterior_hessian(informative, y):
    fam, res, _ = informative
    theta, h = res.theta, 1e-4
    p = theta.size
    hess = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            e_i, e_j = np.eye(p)[i] * h, np.eye(p)[j] * h
            hess[i, j] = (numpy_logpost(y, theta + e_i + e_j) - numpy_logpost(y, theta + e_i - e_j)
                          - numpy_logpost(y, theta - e_i + e_j) + numpy_logpost(y, theta - e_i - e_j)) / (4 * h * h)
    np.testing.assert_allclose(res.cov, np.linalg.inv(-hess), rtol=1e-4, atol=1e-6)
    se = res.params.set_index("label").loc[[f"tau[1, {it}$1]" for it in ITEMS], "se"].to_numpy()
    np.testing.assert_allclose(se, np.sqrt(np.diag(res.cov))[:4], rtol=1e-10)


def test_laplace_draws_match_stored_gaussian(informative, y):
    fam, res, _ = informative
    dt = bm.fit_laplace(fam, map_result=res, draws=2000, chains=2, seed=5)
    post = dt["posterior"]
    tau, alpha = post["tau"].values, post["alpha"].values
    flat = np.concatenate([tau.reshape(2, 2000, -1), alpha.reshape(2, 2000, -1)], axis=-1).reshape(-1, 9)
    mean, cov = dt["fit"]["mean_vector"].values, dt["fit"]["covariance_matrix"].values
    n = flat.shape[0]
    z = np.linalg.solve(np.linalg.cholesky(cov), (flat - mean).T).T  # whitened: N(0, I) if right
    assert np.max(np.abs(z.mean(axis=0))) < 4 / np.sqrt(n)
    assert np.max(np.abs(np.cov(z.T) - np.eye(9))) < 5 * np.sqrt(2 / n)
    # deterministics recomputed in numpy
    np.testing.assert_allclose(post["class_share"].values[..., 0], special.expit(alpha[..., 0]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(post["item_prob"].sel(response="y3#0").values, special.expit(tau[..., 2]),
                               rtol=0, atol=1e-12)
    for c, d in [(0, 0), (1, 1999)]:
        t = flat.reshape(2, 2000, 9)[c, d]
        np.testing.assert_allclose(dt["log_likelihood"]["loglik"].values[c, d],
                                   numpy_unit_loglik(y, t[:8].reshape(2, 4), t[8:]), rtol=0, atol=1e-10)
    # ArviZ and bayesmix read it as they read NUTS output
    summ = az.summary(dt, var_names=["tau", "alpha"])
    np.testing.assert_allclose(summ.loc["tau[1, y1$1]", "mean"], tau[..., 0, 0].mean(), atol=0.01)
    table = bm.compare_ml_bayes(res, dt)
    free_rows = table[table.parameter.isin(["tau", "alpha"])]
    assert np.max(np.abs(free_rows["z_diff"])) < 4 / np.sqrt(n) * 1.5
    fig, _ = plots.profile_plot(res, posterior=dt)
    matplotlib.pyplot.close(fig)


def test_bad_arguments(informative):
    fam, res, ml = informative
    with pytest.raises(bm.SpecificationError, match="map_result: got MLResult"):
        bm.fit_laplace(fam, map_result=ml)
    with pytest.raises(bm.SpecificationError, match="n_starts"):
        bm.fit_laplace(fam, map_result=res, n_starts=3)
    with pytest.raises(bm.SpecificationError, match="draws"):
        bm.fit_laplace(fam, map_result=res, draws=0)
    with pytest.raises(bm.SpecificationError, match="model: got DataFrame"):
        bm.fit_map(example_data())
    with pytest.raises(bm.SpecificationError, match="n_starts"):
        bm.fit_map(fam, n_starts=0)


# ---------------------------------------------------------------- data and slow
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(bm.REGISTRY))
def test_flat_prior_map_is_ml_every_family(name):
    ex = _example(name)
    fam = type(ex).build(ex.data, ex.spec, {n: pm.Flat.dist() for n in ex.free_names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = bm.fit_ml(fam, se="ml", seed=3, **FAST)
        res = bm.fit_map(fam, seed=3, **FAST)
    assert abs(res.loglik - ml.loglik) < 1e-8
    np.testing.assert_allclose(res.theta, ml.theta, rtol=0, atol=1e-5)
    np.testing.assert_allclose(res.cov, ml.cov, rtol=0, atol=1e-6 * np.abs(ml.cov).max())


@pytest.mark.slow
def test_verbal_aggression_map_has_no_threshold_at_bound():
    """The 3-class LCA of the verbal aggression items (316 x 24): its ML maximum
    has thresholds at the +-15 bound (decision 9), the MAP under the default
    N(0, 5) threshold priors has none (6-15 s on the loaded 2-core machine)."""
    data = bm.load_dataset("verbal_aggression")
    fam = bm.lca(data, bm.dataset_items("verbal_aggression"), n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = bm.fit_ml(fam, n_starts=50, n_final=10, seed=1, progress=False)
        res = bm.fit_map(fam, n_starts=50, n_final=10, seed=1, progress=False)
    tau_ml, tau_map = ml.point["tau"], res.point["tau"]
    print(f"\nML: LL {ml.loglik:.3f}, fixed at the bound {ml.convergence['fixed_at_bound']}, "
          f"max |tau| {np.abs(tau_ml).max():.2f}")
    print(f"MAP: LL {res.loglik:.3f}, log-prior {res.logprior:.3f}, log-posterior {res.logpost:.3f}, "
          f"max |tau| {np.abs(tau_map).max():.2f}, fixed {res.convergence['fixed_at_bound']}, "
          f"n_best {res.convergence['n_best']}")
    assert ml.convergence["fixed_at_bound"] and np.abs(tau_ml).max() >= 15 - 1e-6
    assert not res.convergence["fixed_at_bound"] and np.abs(tau_map).max() < 14
    assert res.loglik < ml.loglik and np.all(np.isfinite(res.params["se"].to_numpy(float)[:tau_map.size]))


@pytest.mark.slow
def test_integration_check_refits_a_map_only_with_its_priors():
    """A coarse rule (3 points) moves the LL under the finer one: a MAP with the
    default priors is refitted on the finer model (which has the same prior), one
    with user priors is not (a rebuilt model would have the default priors) and
    says so."""
    coarse = bm.Integration(rule="trapezoid", n_points=3)
    default = bm.lca(example_data(), ITEMS, 2, cluster="cluster", integration=coarse)
    with pytest.warns(bm.IntegrationWarning, match="refined from the optimum"):
        res = bm.fit_map(default, n_starts=2, n_final=1, progress=False)
    assert res.model is not default and res.integration["refined_from"].startswith("trapezoid (3 points")
    assert abs(compiled(res.model).logprior_and_grad(res.theta)[0] - res.logprior) < 1e-12
    own = bm.lca(example_data(), ITEMS, 2, cluster="cluster", integration=coarse, priors={"tau": pm.Normal.dist(0, 2)})
    with pytest.warns(bm.IntegrationWarning, match="Not refitted: the model has user priors"):
        res = bm.fit_map(own, n_starts=2, n_final=1, progress=False)
    assert res.model is own and res.integration["not_refitted"] and not res.integration["ok"]
