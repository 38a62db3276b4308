"""Mixture predictive checks (issue 10, part 5): the observed statistics are
recomputed here with pandas, the replicates behave as the model says (a true
model fits, a model that ignores a class is flagged), and the plots draw."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import bayesmix as bm  # noqa: E402
import bayesmix.plots  # noqa: E402,F401
from bayesmix import dims  # noqa: E402
from bayesmix.fit.compiled import compiled  # noqa: E402
from bayesmix.ppc import anova_icc  # noqa: E402

ITEMS = ["a", "b", "c", "d", "e"]


def _two_class_data(n=500, seed=11):
    rng = np.random.default_rng(seed)
    c = rng.random(n) < 0.4
    p = np.where(c[:, None], 0.85, 0.15)
    y = (rng.random((n, len(ITEMS))) < p).astype(float)
    y[rng.random(y.shape) < 0.05] = np.nan
    return pd.DataFrame(y, columns=ITEMS)


def _fit(data, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.fit_ml(bm.lca(data, ITEMS, k), n_starts=4, n_final=2, progress=False, se="ml")


@pytest.fixture(scope="module")
def data():
    return _two_class_data()


@pytest.fixture(scope="module")
def fits(data):
    return {k: _fit(data, k) for k in (1, 2)}


@pytest.fixture(scope="module")
def checks(fits):
    return {k: bm.predictive_checks(fits[k], n_reps=200, seed=1) for k in (1, 2)}


def test_observed_statistics_match_pandas(data, checks):
    ch = checks[2]
    end = ch.endorsement().set_index(["item", "category"])
    for item in ITEMS:
        freq = data[item].value_counts(normalize=True)
        for cat, share in freq.items():
            assert end.loc[(item, cat), "observed"] == pytest.approx(share, abs=1e-12)
    pat = ch.patterns(top=5)
    counts = data.dropna().astype(int).astype(str).agg("".join, axis=1).value_counts()
    assert list(pat["observed"]) == list(counts.iloc[:5].astype(float))
    assert set(pat["pattern"]) == set(counts.index[:5])
    biv = ch.bivariate().set_index(["item_1", "item_2", "category_1", "category_2"])
    both = data[["a", "c"]].dropna()
    assert biv.loc[("a", "c", 1.0, 0.0), "observed"] == pytest.approx(
        np.mean((both["a"] == 1) & (both["c"] == 0)), abs=1e-12)


def test_true_model_fits_and_independence_is_flagged(checks):
    """Two-class data: under the 2-class LCA the item pairs' residuals are
    ordinary (all |z| < 4); under the 1-class model (independence) every pair
    is badly underpredicted (the TECH10 signature of a missing class)."""
    good = checks[2].bivariate_summary()["max_abs_z"]
    bad = checks[1].bivariate_summary()["max_abs_z"]
    assert good.max() < 4.0
    assert bad.min() > 4.0  # measured 5.3 .. 7.3 over the 10 pairs; the 2-class model's largest is below 4
    # margins are fitted by both (ML reproduces the item means): no misfit there
    assert checks[1].endorsement()["z"].abs().max() < 3.5
    assert 0.01 < checks[2].patterns(top=3)["ppp"].min()


def test_replicates_keep_missing_cells(fits, checks):
    fam = fits[2].model
    assert checks[2].y_rep.shape == (200, *fam.data.y.shape)
    np.testing.assert_array_equal(np.isnan(checks[2].y_rep), np.broadcast_to(~fam.data.observed, checks[2].y_rep.shape))


def test_posterior_source_matches_the_bootstrap_at_a_point(fits):
    """Draws all at the ML point: the posterior replicates have the bootstrap's
    distribution (replicate means agree within Monte Carlo error)."""
    res = fits[2]
    fam = res.model
    point = compiled(fam).packing.unpack(res.theta)
    post = xr.Dataset({n: ((dims.CHAIN, dims.DRAW) + fam.model.named_vars_to_dims.get(n, ()),
                           np.broadcast_to(point[n], (1, 150) + point[n].shape).copy()) for n in fam.free_names},
                      coords={d: list(fam.model.coords[d]) for n in fam.free_names
                              for d in fam.model.named_vars_to_dims.get(n, ())})
    dt = xr.DataTree.from_dict({"posterior": post})
    from_post = bm.predictive_checks(res, dt, n_reps=150, seed=5)
    boot = bm.predictive_checks(res, n_reps=150, seed=6)
    assert "posterior" in from_post.source
    a, b = from_post.endorsement(), boot.endorsement()
    np.testing.assert_allclose(a["replicated_mean"], b["replicated_mean"], atol=4 * np.sqrt(0.25 / (150 * 475)) * 2)


def test_anova_icc_against_formula():
    rng = np.random.default_rng(3)
    idx = np.repeat(np.arange(20), 6)
    y = rng.normal(size=20)[idx] + rng.normal(size=idx.size)
    frame = pd.DataFrame({"g": idx, "y": y})
    means = frame.groupby("g")["y"].transform("mean")
    msb = 6 * ((frame.groupby("g")["y"].mean() - y.mean()) ** 2).sum() / 19
    msw = ((y - means) ** 2).sum() / (120 - 20)
    assert anova_icc(y, idx, 20) == pytest.approx((msb - msw) / (msb + 5 * msw), rel=1e-12)
    assert anova_icc(np.repeat(rng.normal(size=20), 6), idx, 20) == pytest.approx(1.0)


def test_two_level_checks():
    fam = bm.families.example("lca", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bm.fit_ml(fam, n_starts=2, n_final=1, progress=False, se="ml")
    ch = bm.predictive_checks(res, n_reps=30, seed=2)
    shares = ch.cluster_shares()
    assert set(shares["statistic"]) == {0.1, 0.5, 0.9, "sd"}
    assert len(shares) == 4 * res.model.n_classes
    assert ((shares["observed"] >= 0) & (shares["observed"] <= 1)).all()
    icc = ch.item_icc()
    assert list(icc["item"]) == [str(it.name) for it in fam.data.items]
    fig, ax = bm.plots.icc_check_plot(ch)
    assert len(ax.get_xticklabels()) == len(icc)
    plt.close(fig)


def test_plots_and_errors(fits, checks):
    for plot in (bm.plots.endorsement_plot, bm.plots.pattern_plot, bm.plots.bivariate_plot):
        fig, ax = plot(checks[2])
        assert fig is ax.figure
        plt.close(fig)
    with pytest.raises(bm.SpecificationError, match="two-level"):
        checks[2].item_icc()
    with pytest.raises(bm.SpecificationError, match="MLResult"):
        bm.predictive_checks("not a fit")
    with pytest.raises(bm.SpecificationError, match="endorsement_plot"):
        bm.plots.endorsement_plot(fits[2])
