"""Plots. Each returns ``(fig, ax)`` and never calls ``show()``.

The LTA's transition diagram and class-share plots live in ``plots_lta``, the
predictive-check plots in ``plots_ppc``; both are re-exported here:
``from bayesmix.plots import transition_plot, bivariate_plot``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bayesmix.exceptions import SpecificationError
from bayesmix.plots_lta import class_shares_plot, transition_plot  # noqa: F401  (re-exported)
from bayesmix.plots_ppc import bivariate_plot, endorsement_plot, icc_check_plot, pattern_plot  # noqa: F401


def _profile_from_ml(res):
    """(K, n_items) profile values and item labels from an MLResult.

    Binary items: P(y = highest category | class). Ordinal items: expected
    category rescaled to [0, 1]. Continuous items are not on this scale and are
    left out (plot their class means from ``res.params``)."""
    probs = res.item_probabilities()
    labels, values = [], []
    for item, grp in probs.groupby("item", sort=False):
        cats = sorted(grp["category"].unique())
        m = len(cats)
        wide = grp.pivot_table(index="class", columns="category", values="probability")
        if m == 2:
            values.append(wide[cats[-1]].to_numpy())
        else:
            scores = np.arange(m) / (m - 1)
            values.append(wide[cats].to_numpy() @ scores)
        labels.append(str(item))
    return np.array(values).T, labels


def profile_plot(result, *, ax=None, class_labels=None, title=None, posterior=None, hdi_prob=0.9):
    """Class profile plot: item response probability per class, one line per class.

    Parameters
    ----------
    result : MLResult
        The fitted model (ML estimates are plotted).
    posterior : xarray.DataTree, optional
        A ``bayesmix.sample`` result for the same model: adds posterior
        ``hdi_prob`` equal-tailed bands around each line (binary items).
    """
    from bayesmix.fit.results import MLResult

    if not isinstance(result, MLResult):
        raise SpecificationError(f"profile_plot: got {type(result).__name__}; give the MLResult of fit_ml.")
    values, labels = _profile_from_ml(result)
    if values.size == 0:
        raise SpecificationError("profile_plot: the model has no categorical items to plot.")
    k = values.shape[0]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(labels) + 2), 4))
    else:
        fig = ax.figure
    shares = result.class_proportions()["model"].to_numpy() if k > 1 else np.array([1.0])
    x = np.arange(len(labels))
    for c in range(k):
        name = class_labels[c] if class_labels else f"class {c + 1} ({shares[c]:.0%})"
        (line,) = ax.plot(x, values[c], marker="o", label=name)
        if posterior is not None and "item_prob" in posterior["posterior"].data_vars:
            ip = posterior["posterior"]["item_prob"]
            resp = [r for r in ip["response"].values if str(r).rsplit("#", 1)[0] in labels]
            last = {}
            for r in resp:  # highest category of each item
                last[str(r).rsplit("#", 1)[0]] = r
            sel = ip.sel(response=[last[lab] for lab in labels]).isel({"class": c})
            q = sel.quantile([(1 - hdi_prob) / 2, (1 + hdi_prob) / 2], dim=("chain", "draw")).to_numpy()
            ax.fill_between(x, q[0], q[1], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(item response | class)")
    ax.set_title(title or f"Class profiles ({k} classes)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig, ax


def class_probability_curve(variance=None, mean: float = 0.0, *, result=None, ax=None, z_range: float = 3.0,
                            n: int = 401):
    """P(C_ij = 1 | alpha_1) against alpha_1 on its standard scale (paper Figures 2
    and 3), for a two-class model whose class logit has a random intercept
    alpha_1j ~ N(mean, variance). Give ``variance`` (and ``mean``), or ``result``,
    the MLResult of a two-class model with random intercepts."""
    from scipy import special

    if result is not None:
        cv = result.model.class_variables[0]
        if cv.logit_variance is None or cv.n_classes != 2:
            raise SpecificationError("class_probability_curve: result must be a 2-class model with cluster random "
                                     "intercepts (lca(..., n_classes=2, cluster=...)).")
        variance = float(np.asarray(result.natural[cv.logit_variance]).ravel()[0])
        mean = float(np.asarray(result.natural[cv.logit_intercept]).ravel()[0])
    if variance is None or variance <= 0:
        raise SpecificationError(f"class_probability_curve: variance got {variance!r}; give a positive number.")
    z = np.linspace(-z_range, z_range, n)
    prob = special.expit(mean + np.sqrt(variance) * z)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    ax.plot(z, prob)
    ax.set_xlabel(r"$\alpha_1$ (standardised: (alpha - mean) / sd)")
    ax.set_ylabel(r"$P(C_{ij} = 1 \mid \alpha_1)$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Conditional class probability, Var(alpha_1) = {variance:g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig, ax
