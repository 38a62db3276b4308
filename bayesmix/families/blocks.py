"""Parameter blocks shared by the families, each declared once: its coords, free
parameters (prior, bounds, what a bound means), graph, random starts, class
signature and behaviour under a relabelling of the classes.

* ``Thresholds``: class-specific thresholds of categorical items (eq. 1), with
  ordinal thresholds as a first value plus log-increments (so they stay ordered
  on the real line);
* ``NormalItems``: class-specific means and class-invariant residual variances
  of continuous items (eq. 2);
* ``ClassLogits``: reference-coded class logits alpha_c + beta_c x (eq. 4/17),
  optionally with cluster random intercepts alpha_cj ~ N(0, Psi), Psi = L L';
* ``reference_map`` / ``recode_chol`` / ``permute_logits``: reference-coded
  quantities under a class permutation.

One policy for all families (ARCHITECTURE.md, decisions 9, 12 and 16):

* thresholds in [-15, 15] (Mplus' convention for logit thresholds: 1 -
  expit(15) = 3.1e-7, so holding a threshold there costs at most N * 3e-7 in
  log-likelihood; Phi(15) is 1 to machine precision), ordinal log-increments in
  [-15, 3.5];
* log standard deviations of random effects in [-8, 6] (sd in [3e-4, 403]): a
  variance estimated at 0 (Table 2, v = 0) or running to infinity (Model 6 on
  between-class data, Table 4 "huge") is held at the bound and reported;
* random starts: marginal thresholds perturbed by U(-3, 3) class by class (U(-2,
  2) never found the boundary maximum of the 3-class verbal aggression LCA in 4
  seeds), continuous means by U(-1, 1) sd, class logits near 0, random-intercept
  sd 0.5;
* class shares with random class-logit intercepts integrate alpha on a fine
  fixed grid of their own (401 trapezoid points for one dimension): the class
  probability is a near step in alpha when Var(alpha) is huge, and a 15-point
  grid misses it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from bayesmix import dims
from bayesmix.core import items as core_items
from bayesmix.core.integrate import chol_from_unconstrained
from bayesmix.core.marginal import class_log_prior, class_proportions
from bayesmix.core.quadrature import Integration
from bayesmix.families.base import ParameterInfo, Reported, check_int

TAU_BOUND = 15.0
LOG_INCREMENT_HIGH = 3.5
LOG_SD_BOUNDS = (-8.0, 6.0)
THRESHOLD_START_WIDTH = 3.0
MEAN_START_WIDTH = 1.0  # in item standard deviations
LOGIT_START_SD = 0.1
RANDOM_INTERCEPT_START_SD = 0.5

THRESHOLD_AT_BOUND = "A threshold at its bound: the class has (near) deterministic responses on that item."
LOGIT_SD_AT_BOUND = ("A log standard deviation of the class-logit intercepts at its bound: a variance at 0, or a "
                     "huge one (a between-level class, the paper's Table 4; fit class_level='between' instead).")
RE_SD_AT_BOUND = ("A log standard deviation of a random coefficient at its bound: a variance at 0 (or one "
                  "running to infinity).")


def share_integration(dim: int) -> Integration:
    """The one grid for class shares averaged over random class-logit intercepts:
    a fine trapezoid grid (401 points for one dimension, 41 per dimension for
    two), Gauss-Hermite with 7 per dimension beyond (41^(K-1) nodes would not fit)."""
    if dim == 1:
        return Integration(rule="trapezoid", n_points=401, bound=8.0)
    if dim == 2:
        return Integration(rule="trapezoid", n_points=41, bound=8.0)
    return Integration(rule="gauss_hermite", n_points=7)


def link_cdf(x, link: str):
    """F(x) in numpy: logistic or standard normal."""
    return special.expit(x) if link == "logit" else special.ndtr(x)


# ------------------------------------------------------------------ thresholds
class Thresholds:
    """Class-specific thresholds of categorical items (eq. 1).

    ``items`` are the categorical ``ItemInfo`` of the data, ``counts`` (P lists)
    the observed count of each category (for starts). Free parameter ``tau``
    (class, threshold), or ``tau_raw`` when an item is ordinal: its first
    threshold as ``tau``, later ones log-increments, and ``tau`` a Deterministic.
    """

    def __init__(self, items, counts, link: str, n_classes: int, class_dim: str = dims.CLASS):
        self.items, self.link, self.k, self.class_dim = list(items), link, n_classes, class_dim
        self.counts = [np.asarray(c, float) for c in counts]
        thr_item, thr_k, labels = [], [], []
        for p, it in enumerate(self.items):
            for kk in range(it.n_categories - 1):
                thr_item.append(p)
                thr_k.append(kk)
                labels.append(f"{it.name}${kk + 1}")
        self.thr_item = np.array(thr_item, dtype=int)
        self.thr_k = np.array(thr_k, dtype=int)
        self.labels = labels
        self.n_cat = np.array([it.n_categories for it in self.items], dtype=int)
        self.m_max = int(self.n_cat.max()) if len(self.n_cat) else 0
        self.ordinal = bool(len(self.n_cat) and self.n_cat.max() > 2)

    @property
    def name(self) -> str:
        return "tau_raw" if self.ordinal else "tau"

    def coords(self) -> dict:
        return {dims.THRESHOLD: self.labels}

    def parameters(self) -> list[ParameterInfo]:
        later = self.thr_k > 0
        high = np.where(later, LOG_INCREMENT_HIGH, TAU_BOUND) if self.ordinal else TAU_BOUND
        return [ParameterInfo(self.name, (self.class_dim, dims.THRESHOLD),
                              pm.Normal.dist(0.0, 5.0 if self.link == "logit" else 3.0),
                              "thresholds, eq. (1)" + ("; later ones as log-increments" if self.ordinal else ""),
                              bounds=(-TAU_BOUND, high), at_bound=THRESHOLD_AT_BOUND)]

    def reported(self) -> list[Reported]:
        return [Reported("tau", "Thresholds")]

    def item_prob(self, tau, link: str):
        """The ``item_prob`` Deterministic (class, response): P(y = k | c) for every
        category of every categorical item (eq. 1)."""
        lp = core_items.category_log_probs(self.padded(tau), self.n_cat, link)
        valid = np.arange(self.m_max)[None, :] < self.n_cat[:, None]
        return pm.Deterministic("item_prob", pt.exp(lp)[:, valid], dims=(self.class_dim, dims.RESPONSE))

    def tau(self, p: dict):
        """(K, T) thresholds: the free ``tau``, or the ordered Deterministic built
        from the first threshold and the exp of the log-increments."""
        if not self.ordinal:
            return p["tau"]
        first = self.thr_k == 0
        steps = pt.where(first[None, :], p["tau_raw"], pt.exp(p["tau_raw"]))
        cs = pt.cumsum(steps, axis=-1)
        cs0 = pt.concatenate([pt.zeros((self.k, 1)), cs], axis=-1)
        start = np.searchsorted(self.thr_item, self.thr_item, side="left")
        return pm.Deterministic("tau", cs - cs0[:, start], dims=(self.class_dim, dims.THRESHOLD))

    def padded(self, tau):
        """(K, P, M-1) thresholds per item, padded beyond each item's own."""
        pad = pt.zeros((self.k, len(self.items), max(self.m_max - 1, 1)))
        return pt.set_subtensor(pad[:, self.thr_item, self.thr_k], tau)

    def start(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Marginal thresholds (from the category frequencies, + 0.5 each)
        perturbed by U(-w, w) class by class, sorted within each item."""
        ppf = stats.logistic.ppf if self.link == "logit" else stats.norm.ppf
        tau = np.empty((self.k, len(self.labels)))
        for p, counts in enumerate(self.counts):
            sl = self.thr_item == p
            base = ppf(np.cumsum(counts + 0.5)[:-1] / (counts + 0.5).sum())
            for c in range(self.k):
                tau[c, sl] = np.sort(base + rng.uniform(-THRESHOLD_START_WIDTH, THRESHOLD_START_WIDTH,
                                                         size=base.size))
        if not self.ordinal:
            return {"tau": tau}
        raw = tau.copy()
        later = self.thr_k > 0
        raw[:, later] = np.log(np.maximum(np.diff(tau, axis=1)[:, later[1:]], 1e-3))
        return {"tau_raw": raw}

    def signature(self, values: dict) -> np.ndarray:
        """(..., K, T) response probabilities F(tau)."""
        return link_cdf(values["tau"], self.link)

    def permute(self, values: dict, perm: np.ndarray) -> dict:
        out = dict(values)
        for name in ("tau", "tau_raw"):
            if name in values:
                out[name] = np.take(values[name], perm, axis=-2)
        return out

    def profile_table(self, item_prob: np.ndarray) -> pd.DataFrame:
        """Tidy item, category, class, probability table from ``item_prob`` (K, R)."""
        rows = []
        j = 0
        for it in self.items:
            for cat in it.categories:
                for c in range(self.k):
                    rows.append({"item": it.name, "category": cat, "class": c + 1,
                                 "probability": float(item_prob[c, j])})
                j += 1
        return pd.DataFrame(rows, columns=["item", "category", "class", "probability"])


def category_counts(data, columns) -> list[np.ndarray]:
    """Observed count of each category of the categorical data columns."""
    out = []
    for col in columns:
        seen = data.observed[:, col]
        out.append(np.bincount(data.y[seen, col].astype(int), minlength=data.items[col].n_categories))
    return out


# ------------------------------------------------------------------ continuous items
class NormalItems:
    """Class-specific means (``mean_name``: ``nu`` of an LCA, ``mu`` of a mixture
    regression) and class-invariant residual variances ``theta`` = exp(``log_theta``)
    of continuous items (eq. 2); ``moments`` are the items' (mean, sd)."""

    def __init__(self, mean_name: str, item_dim: str, moments, n_classes: int, class_dim: str = dims.CLASS,
                 mean_title: str = "class means, eq. (2)"):
        self.mean_name, self.item_dim, self.k, self.class_dim = mean_name, item_dim, n_classes, class_dim
        self.mean, self.sd = (np.asarray(m, float) for m in moments)
        self.mean_title = mean_title

    def mean_parameter(self) -> ParameterInfo:
        return ParameterInfo(self.mean_name, (self.class_dim, self.item_dim),
                             pm.Normal.dist(self.mean, 3 * self.sd), self.mean_title)

    def variance_parameter(self) -> ParameterInfo:
        return ParameterInfo("log_theta", (self.item_dim,), pm.Normal.dist(np.log(self.sd**2), 2.0),
                             "log residual variances")

    def theta(self, p: dict):
        return pm.Deterministic("theta", pt.exp(p["log_theta"]), dims=(self.item_dim,))

    def start_mean(self, rng: np.random.Generator) -> np.ndarray:
        return self.mean[None, :] + rng.uniform(-MEAN_START_WIDTH, MEAN_START_WIDTH,
                                                size=(self.k, len(self.mean))) * self.sd[None, :]

    def signature(self, values: dict) -> np.ndarray:
        """(..., K, P) standardised class means."""
        return (values[self.mean_name] - self.mean) / self.sd

    def permute(self, values: dict, perm: np.ndarray) -> dict:
        out = dict(values)
        if self.mean_name in values:
            out[self.mean_name] = np.take(values[self.mean_name], perm, axis=-2)
        return out


def measurement_tensors(thresholds, normal, p: dict):
    """(tau, theta, reported rows) of a family's item blocks: ``thresholds``
    (categorical items) and ``normal`` (continuous items), each None when the
    model has no such items."""
    tau = theta = None
    reported = []
    if thresholds is not None:
        tau = thresholds.tau(p)
        reported += thresholds.reported()
    if normal is not None:
        theta = normal.theta(p)
        reported += [Reported("nu", "Means"), Reported("theta", "Variances")]
    return tau, theta, reported


# ------------------------------------------------------------------ class logits
class ClassLogits:
    """Reference-coded logits of a class variable (eq. 4 / 17 / 26): intercepts
    ``intercept`` (K-1,), slopes ``slope`` (K-1, Q) on ``covariate_dim``, and with
    ``random`` cluster random intercepts alpha_cj ~ N(0, Psi) of Cholesky factor
    ``chol_log_diag`` / ``chol_offdiag`` (reported as ``psi``)."""

    def __init__(self, n_classes: int, n_covariates: int, *, random: bool = False, intercept: str = "alpha",
                 slope: str = "beta", logit_dim: str = dims.CLASS_LOGIT, covariate_dim: str = dims.COVARIATE,
                 level_eq: str = "eq. 4", symbol: str = "C", intercept_bounds: tuple = (-np.inf, np.inf),
                 at_bound: str = ""):
        self.k, self.n_cov, self.random = n_classes, n_covariates, random and n_classes > 1
        self.intercept_bounds, self.at_bound = intercept_bounds, at_bound
        self.intercept, self.slope, self.logit_dim, self.covariate_dim = intercept, slope, logit_dim, covariate_dim
        self.level_eq, self.symbol = level_eq, symbol

    @property
    def active(self) -> bool:
        return self.k > 1

    @property
    def dim(self) -> int:
        """Random-intercept dimensions (K-1 with ``random``, else 0)."""
        return self.k - 1 if self.random else 0

    def coords(self) -> dict:
        out = {}
        if self.active:
            out[self.logit_dim] = list(range(1, self.k))
        if self.random:
            out[dims.RE] = [f"alpha_{c}" for c in range(1, self.k)]
            out[dims.RE_BIS] = out[dims.RE]
            if self.k > 2:
                r, c = np.tril_indices(self.k - 1, -1)
                out[dims.RE_OFFDIAG] = [f"L[{i + 1},{j + 1}]" for i, j in zip(r, c)]
        return out

    def fixed_parameters(self) -> list[ParameterInfo]:
        if not self.active:
            return []
        out = [ParameterInfo(self.intercept, (self.logit_dim,), pm.Normal.dist(0.0, 3.0),
                             f"class-logit intercepts, {self.level_eq}", bounds=self.intercept_bounds,
                             at_bound=self.at_bound)]
        if self.n_cov:
            out.append(ParameterInfo(self.slope, (self.logit_dim, self.covariate_dim), pm.Normal.dist(0.0, 2.5),
                                     f"class-logit slopes, {self.level_eq}"))
        return out

    def random_parameters(self) -> list[ParameterInfo]:
        if not self.random:
            return []
        out = [ParameterInfo("chol_log_diag", (dims.RE,), pm.Normal.dist(0.0, 1.5),
                             "log of the Cholesky diagonal of Var(alpha_cj)", bounds=LOG_SD_BOUNDS,
                             at_bound=LOGIT_SD_AT_BOUND)]
        if self.k > 2:
            out.append(ParameterInfo("chol_offdiag", (dims.RE_OFFDIAG,), pm.Normal.dist(0.0, 1.0),
                                     "below-diagonal Cholesky elements of Var(alpha_cj)"))
        return out

    def reported_fixed(self) -> list[Reported]:
        if not self.active:
            return []
        out = [Reported(self.intercept, f"Means (class logits, {self.level_eq})")]
        if self.n_cov:
            out.append(Reported(self.slope, f"{self.symbol} ON (class-logit slopes, {self.level_eq})"))
        return out

    def reported_random(self) -> list[Reported]:
        return [Reported("psi", "Variances/covariances of alpha_cj (between level)", variance=True)] \
            if self.random else []

    def chol(self, p: dict):
        """The Cholesky factor of Psi (and the ``psi`` Deterministic), or None."""
        if not self.random:
            return None
        chol = chol_from_unconstrained(p["chol_log_diag"], p.get("chol_offdiag"), self.k - 1)
        pm.Deterministic("psi", chol @ chol.T, dims=(dims.RE, dims.RE_BIS))
        return chol

    def logits(self, q: dict, x=None, extra=None):
        """(rows or 1, K-1) fixed part: intercepts, + x @ slopes' (x: (rows, Q)), + extra
        (None with one class)."""
        if not self.active:
            return None
        out = q[self.intercept][None, :]
        if self.n_cov:
            out = out + pt.dot(x, q[self.slope].T)
        if extra is not None:
            out = out + extra
        return out

    def share(self, logits, chol=None):
        """(K,) model-implied class proportions: the mean over rows of P(C = c),
        integrated over the random intercepts on ``share_integration``."""
        if self.k == 1:
            return pt.ones((1,))
        if chol is None:
            return class_proportions(logits)
        return class_proportions(logits, chol, share_integration(self.k - 1))

    def start_fixed(self, rng: np.random.Generator) -> dict:
        if not self.active:
            return {}
        out = {self.intercept: rng.normal(0.0, LOGIT_START_SD, size=self.k - 1)}
        if self.n_cov:
            out[self.slope] = np.zeros((self.k - 1, self.n_cov))
        return out

    def start_random(self) -> dict:
        if not self.random:
            return {}
        out = {"chol_log_diag": np.full(self.k - 1, np.log(RANDOM_INTERCEPT_START_SD))}
        if self.k > 2:
            out["chol_offdiag"] = np.zeros((self.k - 1) * (self.k - 2) // 2)
        return out

    def permute(self, values: dict, perm: np.ndarray, extra=()) -> dict:
        chol = ("chol_log_diag", "chol_offdiag") if self.random else None
        return permute_logits(values, perm, names=(self.intercept, self.slope), chol_names=chol, extra=extra)

    @staticmethod
    def log_prior(logits):
        return class_log_prior(logits)

    def draw_logits(self, natural: dict, x, n_rows: int, cluster_idx=None, n_clusters=None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
        """(n_rows, K-1) class logits at natural values, with random intercepts drawn
        per cluster when ``psi`` is given (numpy twin of ``logits``)."""
        logits = np.broadcast_to(natural[self.intercept], (n_rows, self.k - 1)).copy()
        if self.n_cov and self.slope in natural:
            logits += x @ natural[self.slope].T
        if "psi" in natural and self.random:
            u = rng.multivariate_normal(np.zeros(self.k - 1), np.atleast_2d(natural["psi"]), size=n_clusters)
            logits += u[cluster_idx]
        return logits


def draw_classes(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0-based classes drawn from reference-coded logits (rows, K-1) (last class
    the reference, eq. 4)."""
    prob = special.softmax(np.concatenate([logits, np.zeros((len(logits), 1))], axis=1), axis=1)
    return (prob.cumsum(axis=1) > rng.random((len(logits), 1))).argmax(axis=1)


# ------------------------------------------------------------------ reference coding
def reference_map(perm: np.ndarray) -> np.ndarray:
    """(K-1, K-1) map of reference-coded logits under ``perm``.

    Class logits are coded against the last class (alpha_K = beta_K = 0, eq. 4).
    If new class c is old class perm[c], the full logit vector l (with l_K = 0)
    becomes l'_c = l_perm[c] - l_perm[K], a linear map A (K x K) whose leading
    (K-1) x (K-1) block acts on the free logits. Random class-logit intercepts
    transform the same way, so their covariance becomes A Psi A'."""
    perm = np.asarray(perm)
    k = perm.size
    a_mat = np.zeros((k, k))
    a_mat[np.arange(k), perm] = 1.0
    a_mat[:, perm[-1]] -= 1.0
    return a_mat[:-1, :-1]


def chol_matrix(log_diag: np.ndarray, offdiag: np.ndarray | None) -> np.ndarray:
    """Lower Cholesky factors (..., d, d) from log-diagonal (..., d) and row-major
    below-diagonal (..., d(d-1)/2) values (numpy twin of ``chol_from_unconstrained``)."""
    d = log_diag.shape[-1]
    chol = np.zeros(log_diag.shape[:-1] + (d, d))
    idx = np.arange(d)
    chol[..., idx, idx] = np.exp(log_diag)
    if d > 1:
        r, c = np.tril_indices(d, -1)
        chol[..., r, c] = offdiag
    return chol


def recode_chol(a_red: np.ndarray, log_diag: np.ndarray, offdiag: np.ndarray | None):
    """Cholesky parameters of A Psi A' given those of Psi."""
    d = log_diag.shape[-1]
    chol = chol_matrix(log_diag, offdiag)
    cov = a_red @ chol @ np.swapaxes(chol, -1, -2) @ a_red.T
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    # relative jitter: a variance estimated at ~0 (boundary) stays factorable
    jitter = 1e-10 * np.maximum(np.trace(cov, axis1=-2, axis2=-1) / d, 1e-300)
    new = np.linalg.cholesky(cov + jitter[..., None, None] * np.eye(d))
    out_diag = np.log(np.diagonal(new, axis1=-2, axis2=-1))
    if d > 1:
        r, c = np.tril_indices(d, -1)
        return out_diag, new[..., r, c]
    return out_diag, None


def permute_logits(values: dict, perm, names=("alpha", "beta"), chol_names=("chol_log_diag", "chol_offdiag"),
                   extra=()) -> dict:
    """Re-express reference-coded class-logit parameters after relabelling.

    ``names[0]`` is the intercept (..., K-1), ``names[1]`` the slopes
    (..., K-1, Q); ``extra`` lists further (..., K-1, X) arrays coded the same
    way (e.g. the effect of a between class on the within class, eq. 24)."""
    out = dict(values)
    a_red = reference_map(perm)
    intercept, slopes = names
    if intercept in values:
        out[intercept] = values[intercept] @ a_red.T
    for name in (slopes, *extra):
        if name in values:
            out[name] = np.einsum("cd,...dq->...cq", a_red, values[name])
    if chol_names is not None and chol_names[0] in values:
        diag, off = recode_chol(a_red, values[chol_names[0]], values.get(chol_names[1]))
        out[chol_names[0]] = diag
        if off is not None:
            out[chol_names[1]] = off
    return out


def check_n_classes(value, name: str = "n_classes", low: int = 1, hint: str = "") -> int:
    """``n_classes``-style argument: an integer >= ``low``."""
    return check_int(name, value, low, hint or (" (1 is the single-class baseline)" if low == 1 else ""))
