"""Plots of the mixture predictive checks (``bayesmix.ppc``). Each returns
``(fig, ax)`` and never calls ``show()``; re-exported by ``bayesmix.plots``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bayesmix.exceptions import SpecificationError


def _checks(obj, what):
    from bayesmix.ppc import PredictiveChecks

    if not isinstance(obj, PredictiveChecks):
        raise SpecificationError(f"{what}: got {type(obj).__name__}; give the result of "
                                 "bayesmix.predictive_checks(fit[, posterior]).")
    return obj


def _axes(ax, size):
    if ax is None:
        return plt.subplots(figsize=size)
    return ax.figure, ax


def _interval_plot(table, labels, ax, title, ylabel):
    x = np.arange(len(table))
    ax.vlines(x, table["q05"], table["q95"], color="0.6", lw=4, label="replicates 90%")
    ax.plot(x, table["replicated_mean"], "_", color="0.3", ms=12, label="replicate mean")
    bad = (table["observed"] < table["q05"]) | (table["observed"] > table["q95"])
    ax.plot(x[~bad], table["observed"][~bad], "o", color="C0", label="observed")
    ax.plot(x[bad], table["observed"][bad], "o", color="C3", label="observed, outside")
    ax.set_xticks(x, labels, rotation=90, fontsize=7 if len(x) > 20 else 9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)


def endorsement_plot(checks, *, ax=None, title=None):
    """Observed proportion per item and category against the replicates' 90% interval."""
    checks = _checks(checks, "endorsement_plot")
    table = checks.endorsement()
    labels = [f"{i}#{c}" for i, c in zip(table["item"], table["category"])]
    fig, ax = _axes(ax, (max(6, 0.3 * len(table) + 2), 4))
    _interval_plot(table, labels, ax, title or f"Endorsement: observed vs {checks.n_reps} replicates",
                   "proportion (mean for continuous)")
    return fig, ax


def pattern_plot(checks, *, top: int = 10, ax=None, title=None):
    """Counts of the most frequent observed response patterns against the replicates."""
    checks = _checks(checks, "pattern_plot")
    table = checks.patterns(top)
    fig, ax = _axes(ax, (max(6, 0.5 * len(table) + 2), 4))
    _interval_plot(table, list(table["pattern"]), ax, title or "Most frequent response patterns", "count")
    return fig, ax


def bivariate_plot(checks, *, ax=None, title=None):
    """Item-pair heat map of the largest |standardised residual| over category
    pairs (TECH10-style, z from the replicates); |z| > 3 cells are annotated."""
    checks = _checks(checks, "bivariate_plot")
    summ = checks.bivariate_summary()
    items = list(dict.fromkeys(list(summ["item_1"]) + list(summ["item_2"])))
    pos = {it: i for i, it in enumerate(items)}
    grid = np.full((len(items), len(items)), np.nan)
    for a, b, z in zip(summ["item_1"], summ["item_2"], summ["max_abs_z"]):
        grid[pos[b], pos[a]] = z
    fig, ax = _axes(ax, (max(4.5, 0.45 * len(items) + 2), max(4, 0.45 * len(items) + 1.5)))
    im = ax.imshow(grid, cmap="Reds", vmin=0, vmax=max(4.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else 4))
    for (r, c), z in np.ndenumerate(grid):
        if np.isfinite(z) and z > 3:
            ax.text(c, r, f"{z:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(items)), items, rotation=90)
    ax.set_yticks(range(len(items)), items)
    fig.colorbar(im, ax=ax, label="max |z| over category pairs")
    ax.set_title(title or "Bivariate residuals")
    return fig, ax


def icc_check_plot(checks, *, ax=None, title=None):
    """Two-level: each item's ANOVA ICC, observed against the replicates."""
    checks = _checks(checks, "icc_check_plot")
    table = checks.item_icc()
    fig, ax = _axes(ax, (max(6, 0.35 * len(table) + 2), 4))
    _interval_plot(table, list(table["item"]), ax, title or "Item ICCs: observed vs replicates", "ICC")
    return fig, ax
