"""LTA plots (``bayesmix.plots_lta``): the numbers drawn are the result's reported
values, one arrow per drawn transition, (fig, ax) returned, nothing shown.

The ML results are the registry's tiny LTA examples fitted once per module;
posteriors are hand-built DataTrees with the variables and dims of a
``bm.sample`` result, so their means and quantiles are known here.
"""

import importlib
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from scipy import stats  # noqa: E402

import bayesmix as bm  # noqa: E402
from bayesmix import dims  # noqa: E402
from bayesmix.plots_lta import class_shares_plot, transition_plot  # noqa: E402

lta_module = importlib.import_module("bayesmix.families.lta")
NUM = re.compile(r"-?\d+\.\d+")


def _fit(fam):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data: starts / identification warnings are expected
        return bm.fit_ml(fam, n_starts=1, n_final=1, seed=1, progress=False)


@pytest.fixture(scope="module")
def single():
    return _fit(lta_module.example())


@pytest.fixture(scope="module")
def two_level():
    return _fit(lta_module.example(two_level=True))


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a plot called show()")

    monkeypatch.setattr(plt, "show", fail)
    yield
    plt.close("all")


def reported(res, name):
    """(estimate, se) arrays of a reported parameter, in the flat order of its rows."""
    rows = res.params[res.params.parameter == name]
    return rows["estimate"].to_numpy(), rows["se"].to_numpy()


def texts(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


def arrows(ax):
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def fake_posterior(k=3, n_t=3, two_level=False, family="lta", seed=0):
    """A posterior group as bm.sample returns it: (chain, draw) leading dims."""
    rng = np.random.default_rng(seed)
    c, d = 2, 50
    occ = [f"w{t + 1}" for t in range(n_t)]
    coords = {dims.CHAIN: np.arange(c), dims.DRAW: np.arange(d), dims.CLASS: np.arange(1, k + 1),
              dims.CLASS_FROM: np.arange(1, k + 1),
              dims.TRANSITION: [f"{occ[t - 1]}->{occ[t]}" for t in range(1, n_t)]}
    sd = (dims.CHAIN, dims.DRAW)
    data = {f"class_share_C{t + 1}": (sd + (dims.CLASS,), rng.dirichlet(np.arange(1, k + 1), size=(c, d)))
            for t in range(n_t)}
    trans = rng.dirichlet(np.full(k, 0.7), size=(c, d, n_t - 1, k))
    data["transition_prob"] = (sd + (dims.TRANSITION, dims.CLASS_FROM, dims.CLASS), trans)
    data["item_prob"] = (sd + (dims.CLASS, dims.RESPONSE), rng.uniform(size=(c, d, k, 4)))
    if two_level:
        for name in ("beta", "var_alpha1", "var_eps"):
            data[name] = (sd, rng.gamma(2.0, 0.5, size=(c, d)))
        for name in ("alpha_1", "mu", "alpha_2"):
            data[name] = (sd + (dims.CLASS_LOGIT,), rng.normal(size=(c, d, 1)))
        data["gamma_1_2"] = (sd + (dims.CLASS_LOGIT, dims.CLASS_FROM_LOGIT), rng.normal(size=(c, d, 1, 1)))
    post = xr.Dataset(data, coords=coords)
    post.attrs["bayesmix_family"] = family
    return xr.DataTree.from_dict({"posterior": post})


# ============================================================================ transition_plot
def test_single_level_diagram_draws_the_transition_probabilities(single):
    est, _ = reported(single, "transition_prob")  # (1, 2, 2) flattened: j -> k row-major
    fig, ax = transition_plot(single, threshold=0.0, fmt="{:.6f}")
    assert matplotlib.get_backend().lower() == "agg"
    assert isinstance(fig, plt.Figure) and ax.figure is fig
    assert len(arrows(ax)) == 4
    drawn = sorted(float(t.get_text()) for t in texts(ax, "transition"))
    np.testing.assert_allclose(drawn, np.sort(est), atol=1e-6)
    shares = np.concatenate([reported(single, "class_share_C1")[0], reported(single, "class_share_C2")[0]])
    np.testing.assert_allclose([float(t.get_text()) for t in texts(ax, "share")], shares, atol=1e-6)
    # arrow width max_width * p (default 6), floored at 0.4
    widths = sorted(a.get_linewidth() for a in arrows(ax))
    np.testing.assert_allclose(widths, np.sort(np.maximum(0.4, 6.0 * est)), rtol=1e-9)


def test_single_level_threshold_omits_small_transitions(single):
    est, _ = reported(single, "transition_prob")
    cut = float(np.sort(est)[1]) + 1e-9  # drop the two smallest
    fig, ax = transition_plot(single, threshold=cut)
    assert len(arrows(ax)) == int(np.sum(est >= cut)) == 2
    drawn = sorted(float(t.get_text()) for t in texts(ax, "transition"))
    np.testing.assert_allclose(drawn, np.sort(est[est >= cut]), atol=0.005 + 1e-12)


def test_two_level_diagram_is_figure_1(two_level):
    fig, ax = transition_plot(two_level, between_label="Between (classroom)", fmt="{:.5f}")
    assert len(arrows(ax)) == 4  # alpha1 -> C1, alpha1 -> alpha2, C1 -> C2, alpha2 -> C2
    assert any(t.get_text() == "Between (classroom)" for t in ax.texts)
    for gid, name, index in (("gamma", "gamma_1_2", 0), ("beta", "beta", 0)):
        (label,) = texts(ax, gid)
        nums = [float(x) for x in NUM.findall(label.get_text())]
        est, se = reported(two_level, name)
        np.testing.assert_allclose(nums[0], est[index], atol=1e-5)
        if np.isfinite(se[index]):
            np.testing.assert_allclose(nums[1], se[index], atol=1e-5)
        else:
            assert len(nums) == 1  # no SE drawn where the result has none
    (switch,) = texts(ax, "switch")
    trans, _ = reported(two_level, "transition_prob")  # [1->1, 1->2, 2->1, 2->2]
    np.testing.assert_allclose([float(x) for x in NUM.findall(switch.get_text())], [trans[1], trans[2]], atol=1e-5)
    shares = [float(NUM.findall(t.get_text())[0]) for t in texts(ax, "share")]
    np.testing.assert_allclose(shares, [reported(two_level, f"class_share_C{t}")[0][0] for t in (1, 2)], atol=1e-5)


def test_two_level_diagram_shows_the_section_4_r_squared(two_level):
    fig, ax = transition_plot(two_level)
    (caption,) = texts(ax, "r2")
    drawn = [float(x) for x in re.findall(r"(\d+)%", caption.get_text())]
    r2 = bm.lta_r_squared(two_level)["estimate"]
    names = ["C1_by_alpha1", "C2_total", "C2_by_alpha1", "C2_by_residual_C1", "C2_by_residual_alpha2",
             "C2_by_C1_alone"]
    np.testing.assert_allclose(drawn, [100 * r2[n] for n in names], atol=0.5 + 1e-9)


def test_two_level_diagram_from_a_posterior():
    dt = fake_posterior(k=2, n_t=2, two_level=True)
    fig, ax = transition_plot(dt, fmt="{:.4f}", prob=0.9)
    (label,) = texts(ax, "beta")
    beta = dt["posterior"]["beta"].values.ravel()
    expected = [beta.mean(), *np.quantile(beta, [0.05, 0.95])]
    np.testing.assert_allclose([float(x) for x in NUM.findall(label.get_text())], expected, atol=1e-4)
    assert len(arrows(ax)) == 4


def test_single_level_diagram_from_a_posterior_k3_t3():
    dt = fake_posterior(k=3, n_t=3)
    mean = dt["posterior"]["transition_prob"].values.mean(axis=(0, 1))
    fig, ax = transition_plot(dt, threshold=0.2, class_labels=["low", "mid", "high"])
    assert len(arrows(ax)) == int(np.sum(mean >= 0.2))
    drawn = sorted(float(t.get_text()) for t in texts(ax, "transition"))
    np.testing.assert_allclose(drawn, np.sort(mean[mean >= 0.2]), atol=0.005 + 1e-12)
    assert {"low", "mid", "high"} <= {t.get_text() for t in ax.texts}


def test_transition_plot_draws_on_given_axes(single):
    fig, ax = plt.subplots()
    out_fig, out_ax = transition_plot(single, ax=ax)
    assert out_ax is ax and out_fig is fig


# ============================================================================ class_shares_plot
def test_share_lines_with_se_bars(single):
    fig, ax = class_shares_plot(single, kind="lines")
    assert isinstance(ax, plt.Axes)
    z = stats.norm.ppf(0.975)
    for c, cont in enumerate(ax.containers):
        est = np.array([reported(single, f"class_share_C{t}")[0][c] for t in (1, 2)])
        se = np.array([reported(single, f"class_share_C{t}")[1][c] for t in (1, 2)])
        np.testing.assert_allclose(cont.lines[0].get_ydata(), est, atol=1e-12)
        segs = cont.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][1] for s in segs], est - z * se, atol=1e-10)
        np.testing.assert_allclose([s[1][1] for s in segs], est + z * se, atol=1e-10)


def test_share_lines_with_posterior_intervals():
    dt = fake_posterior(k=3, n_t=3)
    fig, ax = class_shares_plot(dt, kind="lines", prob=0.8)
    draws = np.stack([dt["posterior"][f"class_share_C{t}"].values for t in (1, 2, 3)], axis=-2)  # (c, d, T, K)
    for c, cont in enumerate(ax.containers):
        flat = draws[..., c].reshape(-1, 3)
        np.testing.assert_allclose(cont.lines[0].get_ydata(), flat.mean(0), atol=1e-12)
        segs = cont.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][1] for s in segs], np.quantile(flat, 0.1, axis=0), atol=1e-12)
        np.testing.assert_allclose([s[1][1] for s in segs], np.quantile(flat, 0.9, axis=0), atol=1e-12)


def test_heatmap_cells_are_the_transition_matrix(single):
    est, _ = reported(single, "transition_prob")
    fig, ax = class_shares_plot(single, kind="heatmap", fmt="{:.6f}")
    assert isinstance(ax, plt.Axes)  # T = 2: one panel
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): float(t.get_text())
             for t in texts(ax, "transition")}
    np.testing.assert_allclose([cells[(j, c)] for j in range(2) for c in range(2)], est, atol=1e-6)
    np.testing.assert_allclose(ax.images[0].get_array(), est.reshape(2, 2), atol=1e-12)


def test_both_kinds_return_an_array_of_axes():
    dt = fake_posterior(k=2, n_t=3)
    fig, axes = class_shares_plot(dt, kind="both")
    assert isinstance(axes, np.ndarray) and axes.shape == (3,)
    assert all(a.figure is fig for a in axes)
    mean = dt["posterior"]["transition_prob"].values.mean(axis=(0, 1))
    for t, a in enumerate(axes[1:]):
        np.testing.assert_allclose(a.images[0].get_array(), mean[t], atol=1e-12)
    with pytest.raises(bm.SpecificationError, match="ax: got 1 Axes"):
        class_shares_plot(dt, kind="heatmap", ax=plt.subplots()[1])
    with pytest.raises(bm.SpecificationError, match="kind: got 'pie'"):
        class_shares_plot(dt, kind="pie")


# ============================================================================ errors
@pytest.fixture(scope="module")
def lca_fit():
    return _fit(bm.families.example("lca", False))


@pytest.mark.parametrize("func", [transition_plot, class_shares_plot])
def test_non_lta_results_are_refused(func, lca_fit):
    name = func.__name__
    with pytest.raises(bm.SpecificationError, match=rf"{name}: result: got the MLResult of a 'lca' model; give"):
        func(lca_fit)
    with pytest.raises(bm.SpecificationError, match=rf"{name}: result: got a posterior of a 'lca' model"):
        func(fake_posterior(family="lca"))
    with pytest.raises(bm.SpecificationError, match=rf"{name}: result: got dict"):
        func({})
