"""The ML result object and its Mplus-style printed summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix import dims
from bayesmix.fit.compiled import cluster_class_variable, compiled


def membership_frame(fam, cv, post: np.ndarray, person: bool = False) -> pd.DataFrame:
    """Posterior class probabilities (*membership_dims, K) of class variable ``cv``
    as a frame: one row per unit (a MultiIndex for several dims), columns
    p_class1..K and the most likely class. ``person``: rows are persons."""
    k = post.shape[-1]
    flat = post.reshape(-1, k)
    if person:
        index = fam.coord_index(dims.PERSON)
    elif len(cv.membership_dims) == 1:
        index = fam.coord_index(cv.membership_dims[0])
    else:
        index = pd.MultiIndex.from_product([fam.coord_index(d) for d in cv.membership_dims])
    out = pd.DataFrame(flat, columns=[f"p_class{c}" for c in range(1, k + 1)], index=index)
    out["class"] = flat.argmax(axis=1) + 1
    return out


BOUND_DRIVEN_RATIO = 1e-3
FLAT_GRADIENT = 1e-4


def bound_driven(jac: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """(R,) whether each reported quantity is pinned by a parameter held at its
    bound: its gradient on the fixed columns exceeds ``BOUND_DRIVEN_RATIO`` times
    its gradient on the free ones, and the latter is below ``FLAT_GRADIENT``
    (no free parameter moves it). Such a quantity (a transition probability of
    1.000 when its logit sits at the bound) has a delta-method SE of ~0 only
    because the fixed parameter gets no variance: the SE is voided, not printed
    as 0 with a huge z. A quantity that also moves with free parameters (the
    other transitions of that row, the next occasion's shares) keeps its SE,
    conditional on the fixed value, as Mplus reports it."""
    fixed = np.asarray(fixed, bool)
    if not fixed.any():
        return np.zeros(jac.shape[0], bool)
    on_fixed = np.max(np.abs(jac[:, fixed]), axis=1)
    on_free = np.max(np.abs(jac[:, ~fixed]), axis=1) if (~fixed).any() else np.zeros(jac.shape[0])
    return (on_fixed > BOUND_DRIVEN_RATIO * on_free) & (on_free < FLAT_GRADIENT)


def entropy(post: np.ndarray) -> float:
    """Relative entropy of the posterior class probabilities (Mplus' ENTROPY):
    1 - sum_i sum_c -p_ic log p_ic / (N log K); 1 = perfect separation."""
    n, k = post.shape
    if k < 2:
        return float("nan")
    p = np.clip(post, 1e-300, 1.0)
    return float(1.0 - np.sum(-post * np.log(p)) / (n * np.log(k)))


@dataclass
class MLResult:
    """Maximum likelihood fit of a bayesmix model.

    Attributes
    ----------
    model : the family object that was fitted (``.model`` is the pm.Model)
    point : dict
        Raw free parameter values at the optimum (a valid start for other fits).
    loglik, n_params, aic, bic, abic, entropy : float
    params : DataFrame
        estimate, se, z, p for every reported parameter (paper symbols).
    cov : ndarray
        Covariance of the raw free parameters under the chosen ``se``.
    membership : DataFrame
        Posterior class probabilities per person (columns = classes) and the
        most likely class, of the primary class variable (C).
    memberships : dict
        Class variable name -> its posterior class probabilities, one row per
        element of its membership dims (person, cluster, person x time, ...).
    starts : DataFrame
        Log-likelihood of every random start (initial and final stage).
    integration : dict or None
        The integration check of ``fit_ml`` (models with numerical integration):
        the rule, the finer rule it was checked with, the LL there and the
        difference, and the rule it was refined from (if it was).
    class_tests : dict
        The LMR (TECH11) and bootstrap LRT (TECH14) of K-1 against this K when
        ``enumerate_classes`` computed them.
    identification : dict or None
        The information-matrix check of ``fit_ml`` (``fit.identification``): the
        flat directions at the optimum, the parameters each involves, whether it is
        a separation, and which reported SEs were voided.
    convergence : dict
    """

    model: object
    theta: np.ndarray
    point: dict
    loglik: float
    n_params: int
    n_obs: int
    params: pd.DataFrame
    cov: np.ndarray
    cov_ml: np.ndarray
    se_type: str
    membership: pd.DataFrame
    starts: pd.DataFrame
    convergence: dict
    unit_loglik: np.ndarray
    scaling_correction: float
    natural: dict = field(default_factory=dict)
    memberships: dict = field(default_factory=dict)
    integration: dict | None = None
    identification: dict | None = None
    #: K-1 vs K tests computed for this fit by ``enumerate_classes`` (printed by the
    #: summary as Mplus' TECH11 / TECH14): "lmr" / "blrt" -> their numbers
    class_tests: dict = field(default_factory=dict)

    #: the estimator: "ml" here, "map" for ``fit_map``'s ``MAPResult`` (fit/map.py)
    method = "ml"

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_fit(cls, fam, theta, loglik, info, *, se, starts, convergence, fixed=None, identification=None):
        comp = compiled(fam)
        hess, scores, jac = info["hessian"], info["scores"], info["jacobian"]
        p = theta.size
        free = np.ones(p, bool) if fixed is None else ~np.asarray(fixed)
        cov_ml = np.zeros((p, p))  # parameters fixed at a bound: zero variance
        flat = identification is not None and not identification["identified"]
        try:
            # with flat directions the inverse does not exist: the pseudo-inverse keeps the
            # identified part finite, and the SEs that touch a flat direction are voided below
            inverse = np.linalg.pinv if flat else np.linalg.inv
            cov_ml[np.ix_(free, free)] = inverse(-hess[np.ix_(free, free)])
        except np.linalg.LinAlgError:
            cov_ml[np.ix_(free, free)] = np.nan
        meat = scores.T @ scores
        cov_mlr = cov_ml @ meat @ cov_ml
        cov = cov_mlr if se == "mlr" else cov_ml
        # Mplus' MLR scaling correction factor of the log-likelihood
        scaling = float(np.trace(cov_ml @ meat) / p) if p else float("nan")
        natural = comp.reported(theta)
        est = np.concatenate([np.asarray(natural[n]).reshape(-1) for n in fam.reported_names])
        var = np.einsum("rp,pq,rq->r", jac, cov, jac)
        se_v = np.sqrt(np.where(var > 0, var, np.nan))
        table = fam.labels(fam.reported_names)
        table["class"] = table["class"].astype("Int64")
        table["estimate"] = est
        table["se"] = se_v
        table["z"] = est / se_v
        table["p"] = 2 * stats.norm.sf(np.abs(table["z"]))
        # structural zeros / fixed values (e.g. class_share with K = 1) have no SE
        table.loc[var <= 1e-20, ["se", "z", "p"]] = np.nan
        if flat:
            table.loc[identification["void_se"], ["se", "z", "p"]] = np.nan
        table.loc[bound_driven(jac, ~free), ["se", "z", "p"]] = np.nan

        posts = comp.memberships(theta)
        frames = {cv.name: membership_frame(fam, cv, posts[cv.name]) for cv in fam.class_variables}
        primary = membership_frame(fam, fam.class_variables[0], comp.membership(theta), person=True)
        return cls(model=fam, theta=theta, point=comp.packing.unpack(theta), loglik=float(loglik),
                   n_params=int(p), n_obs=fam.n_obs, params=table, cov=cov, cov_ml=cov_ml,
                   se_type=se, membership=primary, starts=starts, convergence=convergence,
                   unit_loglik=comp.unit_loglik(theta), scaling_correction=scaling, natural=natural,
                   memberships=frames, identification=identification)

    # ---------------------------------------------------------------- criteria
    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + self.n_params * np.log(self.n_obs)

    @property
    def abic(self) -> float:
        """Sample-size adjusted BIC (Sclove 1987): n* = (n + 2) / 24."""
        return -2 * self.loglik + self.n_params * np.log((self.n_obs + 2) / 24)

    @property
    def entropy(self) -> float:
        """Relative entropy of the primary class variable (Mplus' ENTROPY)."""
        return self.entropy_of()

    def entropy_of(self, name: str | None = None) -> float:
        """Relative entropy of class variable ``name`` (default: the primary one)."""
        return entropy(self._unit_posterior(name))

    def _unit_posterior(self, name: str | None) -> np.ndarray:
        """(rows, K) posterior class probabilities of a class variable, a
        cluster-level one repeated for each person of the cluster (as the person
        membership of a between-level class, and as Mplus counts it)."""
        cv = self.model.class_variable(name)
        post = self.memberships[cv.name].filter(like="p_class").to_numpy()
        if cv.membership_dims == (dims.CLUSTER,):
            return post[self.model.data.cluster_idx]
        return post

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    def class_proportions(self, name: str | None = None) -> pd.DataFrame:
        """Class shares of class variable ``name`` (default: the primary one):
        model-implied (with SE), from posterior probabilities, and from most
        likely membership (Mplus' three FINAL CLASS COUNTS tables; counted over
        persons, who carry their cluster's class for a between-level class)."""
        cv = self.model.class_variable(name)
        post = self._unit_posterior(name)
        share = self.params[self.params.parameter == cv.share]
        modal = np.bincount(post.argmax(axis=1), minlength=post.shape[1])
        return pd.DataFrame({
            "class": np.arange(1, post.shape[1] + 1),
            "model": share["estimate"].to_numpy(),
            "model_se": share["se"].to_numpy(),
            "posterior": post.mean(axis=0),
            "count_posterior": post.sum(axis=0),
            "most_likely": modal / post.shape[0],
            "count_most_likely": modal,
        })

    def classification_table(self, name: str | None = None) -> pd.DataFrame:
        """Mplus' CLASSIFICATION QUALITY table of class variable ``name`` (default:
        the primary one): row k = the mean posterior class probabilities of the
        units whose most likely class is k (rows sum to 1; NaN for a class that is
        nobody's most likely one). Units as in ``class_proportions``."""
        post = self._unit_posterior(name)
        k = post.shape[1]
        modal = post.argmax(axis=1)
        table = np.full((k, k), np.nan)
        for c in np.unique(modal):
            table[c] = post[modal == c].mean(axis=0)
        return pd.DataFrame(table, index=pd.Index(range(1, k + 1), name="most_likely"),
                            columns=pd.Index(range(1, k + 1), name="class"))

    def cluster_membership(self) -> pd.DataFrame:
        """Posterior class probabilities of each cluster, P(C_j = c | cluster data),
        for a model with a between-level class (eq. 16; D_j of section 6): one row
        per cluster (indexed by the cluster label), columns p_class1..K and the
        most likely class. Every person of a cluster has these probabilities in
        ``membership`` when the between-level class is the primary one."""
        cv = cluster_class_variable(self.model, "cluster_membership")
        return self.memberships[cv.name]

    def item_probabilities(self) -> pd.DataFrame:
        """P(y = category | class) for every categorical item (long format)."""
        return self.model.profile_table(compiled(self.model).deterministics(self.theta))

    def fit_statistics(self) -> dict:
        return {"loglik": self.loglik, "n_params": self.n_params, "aic": self.aic, "bic": self.bic,
                "abic": self.abic, "entropy": self.entropy, "n_obs": self.n_obs,
                "scaling_correction": self.scaling_correction}

    # ---------------------------------------------------------------- printing
    def summary(self) -> str:
        from bayesmix.fit.summary import format_ml_summary

        return format_ml_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(self.summary())

    def __repr__(self) -> str:
        return (f"<MLResult {self.model.family} K={self.n_classes} LL={self.loglik:.3f} "
                f"npar={self.n_params} BIC={self.bic:.2f}>")
