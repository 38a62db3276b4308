"""Profile plot: returns (fig, ax), one line per class, values = P(y = 1 | class)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import special

import bayesmix as bm
from bayesmix.plots import profile_plot
from bayesmix.simulate import simulate_lca


@pytest.fixture(scope="module")
def fit():
    tau = np.array([[-1.5, -1.0, -2.0, -0.5], [1.0, 1.5, 0.8, 2.0]])
    df, _ = simulate_lca(tau, [0.2], n_persons=250, seed=5)
    m = bm.lca(df, ["y1", "y2", "y3", "y4"], n_classes=2)
    return bm.fit_ml(m, n_starts=4, n_final=2, progress=False)


def test_profile_plot_lines_are_item_probabilities(fit):
    fig, ax = profile_plot(fit)
    assert ax.figure is fig
    lines = ax.get_lines()
    assert len(lines) == 2
    expected = special.expit(-np.asarray(fit.point["tau"]))  # P(y=1|c) = 1 - F(tau)
    for c, line in enumerate(lines):
        np.testing.assert_allclose(line.get_ydata(), expected[c], atol=1e-10)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["y1", "y2", "y3", "y4"]
    assert "class 1" in ax.get_legend().get_texts()[0].get_text()


def test_profile_plot_draws_on_given_axes(fit):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    out_fig, out_ax = profile_plot(fit, ax=ax, class_labels=["low", "high"])
    assert out_ax is ax and out_fig is fig
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["low", "high"]


def test_profile_plot_rejects_non_results():
    with pytest.raises(bm.SpecificationError, match="profile_plot: got dict"):
        profile_plot({})
