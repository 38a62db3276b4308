"""Plots of latent transition analyses (paper sections 3-4). Each returns
``(fig, ax)`` and never calls ``show()``.

* ``transition_plot``: the path diagram of the model. Two-level LTA (section 4,
  K = T = 2): the paper's Figure 1, alpha_1j -> C_1, alpha_1j -> alpha_2j
  (beta, eq. 15), C_1 -> C_2 (gamma, eq. 13, and the switching probabilities),
  alpha_2j -> C_2. Single level (any K, T >= 2): occasions as columns, classes
  as nodes labelled with their shares P(C_t = k), arrows C_(t-1) = j -> C_t = k
  of width proportional to P(C_t = k | C_(t-1) = j) (eq. 9, averaged over
  persons) and labelled with it.
* ``class_shares_plot``: P(C_t = k) over the occasions (lines with intervals)
  and/or the transition matrices as annotated heatmaps.

Both take the ``MLResult`` of ``bm.fit_ml`` (estimates, delta-method SEs from
``result.params``) or the DataTree of ``bm.sample`` (posterior means and
equal-tailed intervals; an interval "[lo, hi]" replaces "(SE)").
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle
from scipy import stats

from bayesmix import dims
from bayesmix.exceptions import SpecificationError

_FIX = "give the MLResult of bm.fit_ml or the DataTree of bm.sample on a bm.lta model"


@dataclass
class _LTAValues:
    """Estimates and intervals of an LTA result, one interface for ML and posterior."""

    est: dict  # name -> array (natural shape)
    lo: dict
    hi: dict
    se: dict  # ML: delta-method SE; posterior: posterior sd
    posterior: bool
    n_classes: int
    occasions: list
    between: str | None  # cluster column name, or None
    draws: dict | None = None  # posterior: name -> (chain, draw, ...) array

    @property
    def n_t(self) -> int:
        return len(self.occasions)

    @property
    def two_level(self) -> bool:
        return "var_alpha1" in self.est

    def text(self, name, index=(), fmt="{:.2f}", interval=True) -> str:
        """'est (SE)' for ML, 'mean [lo, hi]' for a posterior; no SE when it is NaN."""
        e = float(np.asarray(self.est[name])[index])
        out = fmt.format(e)
        if not interval:
            return out
        if self.posterior:
            return f"{out} [{fmt.format(float(np.asarray(self.lo[name])[index]))}, " \
                   f"{fmt.format(float(np.asarray(self.hi[name])[index]))}]"
        se = float(np.asarray(self.se[name])[index])
        return out if np.isnan(se) else f"{out} ({fmt.format(se)})"


def _lta_values(result, func: str, prob: float) -> _LTAValues:
    """Read an MLResult or a posterior DataTree; raise for anything that is not an LTA."""
    from bayesmix.fit.results import MLResult

    z = stats.norm.ppf((1 + prob) / 2)  # ML: est +- z SE, the Wald interval of level prob
    if isinstance(result, MLResult):
        fam = result.model
        if fam.family != "lta":
            raise SpecificationError(f"{func}: result: got the MLResult of a {fam.family!r} model; {_FIX}.")
        k = fam.n_classes
        occ = [str(o) for o in fam.coord_index(dims.OCCASION)]
        p = result.params
        est, se = {}, {}
        for name, value in result.natural.items():
            shape = np.shape(value)
            est[name] = np.asarray(value, float)
            rows = p[p.parameter == name]
            se[name] = rows["se"].to_numpy(float).reshape(shape) if len(rows) == np.prod(shape, dtype=int) \
                else np.full(shape, np.nan)
        lo = {n: est[n] - z * se[n] for n in est}
        hi = {n: est[n] + z * se[n] for n in est}
        return _LTAValues(est, lo, hi, se, False, k, occ, fam.data.cluster_name)
    post = _posterior_group(result)
    if post is None or post.attrs.get("bayesmix_family") != "lta":
        got = f"a posterior of a {post.attrs.get('bayesmix_family')!r} model" if post is not None \
            else type(result).__name__
        raise SpecificationError(f"{func}: result: got {got}; {_FIX}.")
    shares = sorted((n for n in post.data_vars if str(n).startswith("class_share_C")),
                    key=lambda n: int(str(n)[len("class_share_C"):]))
    k = post.sizes[dims.CLASS]
    if dims.TRANSITION in post.coords:  # "t1->t2", ...: the occasion labels
        trans = [str(s).split("->") for s in post[dims.TRANSITION].values]
        occ = [trans[0][0]] + [t[1] for t in trans]
    else:
        occ = [str(n)[len("class_share_"):] for n in shares]
    sample_dims = (dims.CHAIN, dims.DRAW)
    est, lo, hi, se, draws = {}, {}, {}, {}, {}
    for name, da in post.data_vars.items():
        if not set(sample_dims) <= set(da.dims) or name == "item_prob":
            continue
        q = da.quantile([(1 - prob) / 2, (1 + prob) / 2], dim=sample_dims).to_numpy()
        est[name] = da.mean(sample_dims).to_numpy()
        se[name] = da.std(sample_dims).to_numpy()
        lo[name], hi[name] = q[0], q[1]
        draws[name] = da.transpose(*sample_dims, ...).to_numpy()
    return _LTAValues(est, lo, hi, se, True, k, occ, None, draws)


def _posterior_group(result):
    """The ``posterior`` Dataset of a DataTree / InferenceData (or a posterior
    Dataset itself), else None."""
    import xarray as xr

    if isinstance(result, xr.Dataset):
        return result
    if isinstance(result, xr.DataTree):
        return result["posterior"].to_dataset() if "posterior" in result.children else None
    return None


def _figure(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def _arrow(ax, start, end, *, width=1.4, color="0.2", shrink=0.0, rad=0.0, gid="lta_arrow"):
    """An arrow patch (counted by tests through its gid)."""
    arr = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10 + 1.2 * width, linewidth=width,
                          color=color, shrinkA=shrink, shrinkB=shrink, connectionstyle=f"arc3,rad={rad}",
                          zorder=2)
    arr.set_gid(gid)
    ax.add_patch(arr)
    return arr


def _label(ax, xy, s, *, gid, fontsize=9, **kw):
    return ax.text(*xy, s, ha="center", va="center", fontsize=fontsize, gid=gid, zorder=4,
                   bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9), **kw)


# ============================================================================ path diagram
def transition_plot(result, *, ax=None, threshold: float = 0.01, prob: float = 0.95, fmt: str = "{:.2f}",
                    between_label: str | None = None, within_label: str = "Within (person)",
                    class_labels=None, max_width: float = 6.0, title: str | None = None):
    """Path diagram of a fitted LTA.

    Parameters
    ----------
    result : MLResult or xarray.DataTree
        ``bm.fit_ml`` (estimates with SEs) or ``bm.sample`` (posterior means
        with equal-tailed ``prob`` intervals) of a ``bm.lta`` model.
    threshold : float
        Single level: transitions with P(C_t = k | C_(t-1) = j) below it get
        no arrow (nor label).
    fmt : str
        Format of every number drawn.
    between_label, within_label : str
        Two-level: titles of the two bands (default "Between (<cluster column>)").
    class_labels : list of str, optional
        Single level: names of the K classes (rows).
    max_width : float
        Single level: line width of an arrow with probability 1.

    Returns
    -------
    (fig, ax). Every arrow is a ``FancyArrowPatch`` with gid "lta_arrow"; the
    numbers are texts with gids "transition", "share", "gamma", "beta", ...

    The two-level diagram (K = T = 2, eq. 15) draws the random intercepts
    alpha_1j, alpha_2j on the between band with their mean and variance
    (alpha_1, Var(alpha_1); E alpha_2j = mu + beta alpha_1, Var(eps_j)), the
    class variables C_1, C_2 on the within band with the share of class 1, and
    arrows alpha_1 -> C_1, alpha_2 -> C_2 (loading 1: the class-1 logit's
    intercept), alpha_1 -> alpha_2 (beta) and C_1 -> C_2 (gamma of eq. 13, and
    the switching probabilities P(C_2 = 2 | C_1 = 1), P(C_2 = 1 | C_1 = 2)).
    """
    v = _lta_values(result, "transition_plot", prob)
    if v.n_t < 2 or v.n_classes < 2 or "transition_prob" not in v.est:
        raise SpecificationError(f"transition_plot: result: got an LTA with K = {v.n_classes} classes and T = "
                                 f"{v.n_t} occasions; a transition diagram needs K >= 2 and T >= 2. Fix: fit "
                                 "bm.lta with n_classes >= 2 on two or more occasions.")
    if not 0 <= threshold < 1:
        raise SpecificationError(f"transition_plot: threshold: got {threshold!r}; give a probability in [0, 1).")
    if v.two_level:
        return _two_level_diagram(v, ax, fmt, between_label, within_label, title)
    return _single_level_diagram(v, ax, threshold, fmt, class_labels, max_width, title)


# single-level layout, in data units (one unit between classes, ``_DX`` between occasions,
# about 1.1 inch per unit at the default figure size)
_DX, _RADIUS, _INCH = 1.6, 0.22, 1.1
# where along an arrow (fraction of centre-to-centre) its label may go, tried in order
_FRACTIONS = (0.32, 0.44, 0.56, 0.26, 0.38, 0.5, 0.62)


def _single_level_diagram(v: _LTAValues, ax, threshold, fmt, class_labels, max_width, title):
    k, n_t = v.n_classes, v.n_t
    xmin, xmax, ymin, ymax = -1.0, _DX * (n_t - 1) + 0.5, -0.5, k + 0.2
    fig, ax = _figure(ax, (_INCH * (xmax - xmin), _INCH * (ymax - ymin) + 0.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = class_labels or [f"class {c + 1}" for c in range(k)]
    if len(names) != k:
        raise SpecificationError(f"transition_plot: class_labels: got {len(names)} names for K = {k} classes; "
                                 "give one per class.")
    pos = lambda t, c: (_DX * t, float(k - 1 - c))  # class 1 on top  # noqa: E731
    nodes = [pos(t, c) for t in range(n_t) for c in range(k)]
    trans = np.asarray(v.est["transition_prob"])  # (T-1, from, to)
    placed = []  # (x, y, half width, half height) of the labels drawn
    # the likeliest transitions first: they get the first free label spot
    order = sorted(((trans[t - 1, j, c], t, j, c) for t in range(1, n_t) for j in range(k) for c in range(k)),
                   reverse=True)
    for p, t, j, c in order:
        if p < threshold:
            continue
        a, b = pos(t - 1, j), pos(t, c)
        color = colors[j % len(colors)]
        # from the source circle's edge to the target's edge; a floor on the width keeps
        # rare transitions above the threshold visible
        _arrow(ax, _edge(a, b, _RADIUS), _edge(b, a, _RADIUS), width=max(0.4, max_width * p), color=color)
        s = v.text("transition_prob", (t - 1, j, c), fmt, interval=False)
        xy = _free_spot(a, b, (0.03 * len(s) + 0.05, 0.09), placed, nodes)
        _label(ax, xy, s, gid="transition", fontsize=8, color=color)
    for t in range(n_t):
        share = np.asarray(v.est[f"class_share_C{t + 1}"])
        for c in range(k):
            xy = pos(t, c)
            ax.add_patch(Circle(xy, _RADIUS, fc="white", ec=colors[c % len(colors)], lw=2, zorder=3))
            _label(ax, xy, fmt.format(float(share[c])), gid="share", fontsize=9)
        ax.text(_DX * t, k - 0.6, f"C{t + 1}\n{v.occasions[t]}", ha="center", va="bottom", fontsize=10)
    for c in range(k):
        ax.text(-_RADIUS - 0.1, k - 1 - c, names[c], ha="right", va="center", fontsize=9)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.axis("off")
    what = "posterior means" if v.posterior else "ML estimates"
    ax.set_title(title or f"Latent transitions ({what})\nnodes: P(C_t = k); arrows: P(C_t = k | C_t-1 = j)",
                 fontsize=9)
    fig.tight_layout()
    return fig, ax


def _free_spot(a, b, half, placed, nodes):
    """A point on the segment a -> b for a label of half sizes ``half`` that overlaps
    no label in ``placed`` and no node circle (the first such of ``_FRACTIONS``;
    the least crowded one when every spot is taken). Appends it to ``placed``."""
    best, best_hits = None, None
    for f in _FRACTIONS:
        x, y = a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        hits = sum(abs(x - px) < half[0] + hx and abs(y - py) < half[1] + hy for px, py, hx, hy in placed)
        hits += sum(abs(x - nx) < half[0] + _RADIUS and abs(y - ny) < half[1] + _RADIUS for nx, ny in nodes)
        if best_hits is None or hits < best_hits:
            best, best_hits = (x, y), hits
        if hits == 0:
            break
    placed.append((*best, *half))
    return best


def _edge(a, b, r):
    """The point at distance r from a towards b."""
    d = np.subtract(b, a)
    return tuple(np.asarray(a) + r * d / np.hypot(*d))


def _two_level_diagram(v: _LTAValues, ax, fmt, between_label, within_label, title):
    fig, ax = _figure(ax, (8.4, 5.4))
    between = between_label or f"Between ({v.between or 'cluster'})"
    ax.add_patch(Rectangle((0, 3.2), 10, 2.8, fc="0.93", ec="none", zorder=0))
    ax.add_patch(Rectangle((0, 0), 10, 2.8, fc="0.98", ec="none", zorder=0))
    ax.axhline(3.0, color="0.5", ls="--", lw=1)
    ax.text(0.15, 5.8, between, ha="left", va="top", fontsize=10, style="italic")
    ax.text(0.15, 2.6, within_label, ha="left", va="top", fontsize=10, style="italic")
    a1, a2, c1, c2 = (2.6, 4.5), (7.4, 4.5), (2.6, 1.25), (7.4, 1.25)
    r = 0.42
    for xy, name in ((a1, r"$\alpha_1$"), (a2, r"$\alpha_2$")):
        ax.add_patch(Circle(xy, r, fc="white", ec="0.2", lw=1.5, zorder=3))
        ax.text(*xy, name, ha="center", va="center", fontsize=13, zorder=4)
    for xy, t in ((c1, 0), (c2, 1)):
        ax.add_patch(FancyBboxPatch((xy[0] - 0.55, xy[1] - 0.35), 1.1, 0.7, boxstyle="round,pad=0.05",
                                    fc="white", ec="0.2", lw=1.5, zorder=3))
        ax.text(xy[0], xy[1] + 0.08, f"$C_{t + 1}$", ha="center", va="center", fontsize=13, zorder=4)
        ax.text(xy[0], xy[1] - 0.2, v.occasions[t], ha="center", va="center", fontsize=7.5, color="0.4", zorder=4)
        _label(ax, (xy[0], xy[1] - 0.75), f"P(class 1) = {v.text(f'class_share_C{t + 1}', 0, fmt)}",
               gid="share", fontsize=8.5)
    # random-intercept moments beside the circles (eq. 15)
    _label(ax, (a1[0] - 1.45, a1[1]), f"mean {v.text('alpha_1', 0, fmt)}\nvar {v.text('var_alpha1', (), fmt)}",
           gid="alpha1", fontsize=8.5)
    _label(ax, (a2[0] + 1.45, a2[1]), f"mean {v.text('alpha_2', 0, fmt)}\n"
           + r"var($\varepsilon$) " + v.text("var_eps", (), fmt), gid="alpha2", fontsize=8.5)
    # arrows: the alpha_t -> C_t loadings are fixed at 1 (random intercept of C_t's class-1 logit)
    _arrow(ax, (a1[0], a1[1] - r), (c1[0], c1[1] + 0.42))
    _arrow(ax, (a2[0], a2[1] - r), (c2[0], c2[1] + 0.42))
    for xy in (a1, a2):
        ax.text(xy[0] + 0.12, (xy[1] + c1[1]) / 2 + 0.3, "1", fontsize=8, color="0.4", ha="left")
    _arrow(ax, (a1[0] + r, a1[1]), (a2[0] - r, a2[1]))
    _label(ax, ((a1[0] + a2[0]) / 2, a1[1] + 0.25), r"$\beta$ = " + v.text("beta", (), fmt), gid="beta")
    _arrow(ax, (c1[0] + 0.6, c1[1]), (c2[0] - 0.6, c2[1]))
    sw = (f"P(1→2) = {v.text('transition_prob', (0, 0, 1), fmt, interval=v.posterior)}\n"
          f"P(2→1) = {v.text('transition_prob', (0, 1, 0), fmt, interval=v.posterior)}")
    _label(ax, ((c1[0] + c2[0]) / 2, c1[1] + 0.3), r"$\gamma$ = " + v.text("gamma_1_2", (0, 0), fmt), gid="gamma")
    _label(ax, ((c1[0] + c2[0]) / 2, c1[1] - 0.42), sw, gid="switch", fontsize=8)
    r2 = _r_squared(v)
    if r2:
        ax.text(5.0, 0.12, r2, ha="center", va="bottom", fontsize=8, color="0.3", gid="r2")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.set_aspect("equal")  # circles stay round
    ax.axis("off")
    what = "posterior means [interval]" if v.posterior else "ML estimates (SE)"
    ax.set_title(title or f"Two-level latent transition model ({what})", fontsize=10)
    fig.tight_layout()
    return fig, ax


def _r_squared(v: _LTAValues) -> str:
    """The explained variances of eq. (14) / section 4 (ML: at the estimates, as
    ``bm.lta_r_squared``, which also gives their SEs; posterior: the posterior
    means of the draws' values), or "" where undefined."""
    from bayesmix.families.lta_derived import r_squared_values

    if any(n.startswith("beta_") for n in v.est) or np.shape(v.est.get("gamma_1_2", ()))[-2:] != (1, 1):
        return ""
    values = r_squared_values(v.draws if v.posterior else v.est)
    r = {n: float(np.mean(x)) for n, x in values.items()}
    return (f"R²: C1 by α1 {r['C1_by_alpha1']:.0%};  C2 total {r['C2_total']:.0%} = α1 {r['C2_by_alpha1']:.0%}"
            f" + residual C1 {r['C2_by_residual_C1']:.0%} + residual α2 {r['C2_by_residual_alpha2']:.0%};  "
            f"C1 alone {r['C2_by_C1_alone']:.0%}")


# ============================================================================ shares and matrices
def class_shares_plot(result, *, ax=None, kind: str = "lines", prob: float = 0.95, fmt: str = "{:.2f}",
                      class_labels=None, cmap: str = "Blues", title: str | None = None):
    """Class shares P(C_t = k) over the occasions and/or the transition matrices.

    Parameters
    ----------
    result : MLResult or xarray.DataTree
        As ``transition_plot``.
    kind : {"lines", "heatmap", "both"}
        "lines": one line per class over the occasions with ``prob`` intervals
        (ML: est +- z SE, the delta-method SE; posterior: equal-tailed
        quantiles around the posterior mean). "heatmap": one panel per
        transition t-1 -> t, the matrix P(C_t = k | C_(t-1) = j) (rows j,
        columns k) annotated with its values. "both": the lines, then the
        heatmaps.
    ax : Axes or sequence of Axes, optional
        One Axes per panel (lines: 1; heatmap: T-1; both: T).

    Returns
    -------
    (fig, ax): ``ax`` is an Axes when there is one panel, else a numpy array
    of Axes (the lines panel first).
    """
    if kind not in ("lines", "heatmap", "both"):
        raise SpecificationError(f"class_shares_plot: kind: got {kind!r}; give 'lines', 'heatmap' or 'both'.")
    v = _lta_values(result, "class_shares_plot", prob)
    k, n_t = v.n_classes, v.n_t
    if kind != "lines" and (n_t < 2 or "transition_prob" not in v.est):
        raise SpecificationError(f"class_shares_plot: kind: got {kind!r} for an LTA with K = {k}, T = {n_t}; "
                                 "transition matrices need K >= 2 and T >= 2. Fix: kind='lines'.")
    names = class_labels or [f"class {c + 1}" for c in range(k)]
    n_panels = {"lines": 1, "heatmap": n_t - 1, "both": n_t}[kind]
    if ax is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels + 0.6, 3.8), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        if axes.size != n_panels:
            raise SpecificationError(f"class_shares_plot: ax: got {axes.size} Axes for kind={kind!r}, which draws "
                                     f"{n_panels} panel(s); give that many (or none).")
        fig = axes[0].figure
    panels = list(axes)
    if kind in ("lines", "both"):
        _share_lines(panels.pop(0), v, names, prob, fmt)
    if kind in ("heatmap", "both"):
        for t, a in enumerate(panels, start=1):
            _heatmap(a, v, t, names, fmt, cmap)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig, (axes[0] if n_panels == 1 else np.asarray(axes, dtype=object))


def _share_lines(ax, v: _LTAValues, names, prob, fmt):
    x = np.arange(v.n_t, dtype=float)
    est = np.array([v.est[f"class_share_C{t + 1}"] for t in range(v.n_t)])  # (T, K)
    lo = np.array([v.lo[f"class_share_C{t + 1}"] for t in range(v.n_t)])
    hi = np.array([v.hi[f"class_share_C{t + 1}"] for t in range(v.n_t)])
    for c in range(v.n_classes):
        yerr = np.vstack([est[:, c] - lo[:, c], hi[:, c] - est[:, c]])
        yerr = np.where(np.isfinite(yerr), yerr, 0.0)  # a structural share without SE: no bar
        # classes dodged sideways so that their bars do not hide each other
        dx = 0.06 * (c - (v.n_classes - 1) / 2)
        bars = ax.errorbar(x + dx, est[:, c], yerr=yerr, marker="o", capsize=3, label=names[c])
        for t in range(v.n_t):
            ax.annotate(fmt.format(est[t, c]), (x[t] + dx, est[t, c]), xytext=(6, 4), textcoords="offset points",
                        fontsize=8, color=bars.lines[0].get_color(), gid="share")
    ax.set_xticks(x)
    ax.set_xticklabels([f"C{t + 1}\n{o}" for t, o in enumerate(v.occasions)])
    ax.set_xlim(-0.4, v.n_t - 0.6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(C_t = class)")
    band = "posterior interval" if v.posterior else "Wald interval (delta-method SE)"
    ax.set_title(f"Class shares, {prob:.0%} {band}", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)


def _heatmap(ax, v: _LTAValues, t: int, names, fmt, cmap):
    mat = np.asarray(v.est["transition_prob"])[t - 1]
    ax.imshow(mat, vmin=0, vmax=1, cmap=cmap)
    for j in range(v.n_classes):
        for c in range(v.n_classes):
            ax.text(c, j, fmt.format(mat[j, c]), ha="center", va="center", fontsize=9, gid="transition",
                    color="white" if mat[j, c] > 0.6 else "black")  # readable on the dark cells
    ticks = np.arange(v.n_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel(f"C{t + 1} ({v.occasions[t]})")
    ax.set_ylabel(f"C{t} ({v.occasions[t - 1]})")
    ax.set_title(f"P(C{t + 1} | C{t})", fontsize=9)
