"""The ML result object and its Mplus-style printed summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix import dims


def entropy(post: np.ndarray) -> float:
    """Relative entropy of the posterior class probabilities (Mplus' ENTROPY):
    1 - sum_i sum_c -p_ic log p_ic / (N log K); 1 = perfect separation."""
    n, k = post.shape
    if k < 2:
        return float("nan")
    p = np.clip(post, 1e-300, 1.0)
    return float(1.0 - np.sum(-post * np.log(p)) / (n * np.log(k)))


def flat_labels(fam, names: list[str]) -> pd.DataFrame:
    """One row per element of each reported variable: name, the class (if any)
    and the other coordinates joined."""
    rows = []
    for name in names:
        var_dims = fam.model.named_vars_to_dims.get(name, ())
        coords = [list(fam.model.coords[d]) for d in var_dims]
        for idx in np.ndindex(*[len(c) for c in coords]) if coords else [()]:
            lab = {d: coords[i][j] for i, (d, j) in enumerate(zip(var_dims, idx))}
            # ArviZ-style unique label, e.g. "tau[1, y1$1]"
            label = f"{name}[{', '.join(str(v) for v in lab.values())}]" if lab else name
            cls = lab.pop(dims.CLASS, None)
            rows.append({"label": label, "parameter": name, "class": cls,
                         "term": ", ".join(str(v) for v in lab.values()) if lab else ""})
    return pd.DataFrame(rows)


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
        most likely class.
    starts : DataFrame
        Log-likelihood of every random start (initial and final stage).
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

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_fit(cls, fam, theta, loglik, info, *, se, starts, convergence, fixed=None):
        from bayesmix.fit.compiled import compiled

        comp = compiled(fam)
        hess, scores, jac = info["hessian"], info["scores"], info["jacobian"]
        p = theta.size
        free = np.ones(p, bool) if fixed is None else ~np.asarray(fixed)
        cov_ml = np.zeros((p, p))  # parameters fixed at a bound: zero variance
        try:
            cov_ml[np.ix_(free, free)] = np.linalg.inv(-hess[np.ix_(free, free)])
        except np.linalg.LinAlgError:
            cov_ml[np.ix_(free, free)] = np.nan
        meat = scores.T @ scores
        cov_mlr = cov_ml @ meat @ cov_ml
        cov = cov_mlr if se == "mlr" else cov_ml
        # Mplus' MLR scaling correction factor of the log-likelihood
        scaling = float(np.trace(cov_ml @ meat) / p) if p else float("nan")
        natural = comp.reported(theta)
        est = np.concatenate([np.asarray(natural[n]).reshape(-1) for n in fam.reported])
        var = np.einsum("rp,pq,rq->r", jac, cov, jac)
        se_v = np.sqrt(np.where(var > 0, var, np.nan))
        table = flat_labels(fam, fam.reported)
        table["class"] = table["class"].astype("Int64")
        table["estimate"] = est
        table["se"] = se_v
        table["z"] = est / se_v
        table["p"] = 2 * stats.norm.sf(np.abs(table["z"]))
        # structural zeros / fixed values (e.g. class_share with K = 1) have no SE
        table.loc[var <= 1e-20, ["se", "z", "p"]] = np.nan

        post = comp.membership(theta)
        k = post.shape[1]
        mem = pd.DataFrame(post, columns=[f"p_class{c}" for c in range(1, k + 1)],
                           index=fam.data.row_index)
        mem["class"] = post.argmax(axis=1) + 1
        return cls(model=fam, theta=theta, point=comp.packing.unpack(theta), loglik=float(loglik),
                   n_params=int(p), n_obs=int(fam.data.n_persons), params=table, cov=cov, cov_ml=cov_ml,
                   se_type=se, membership=mem, starts=starts, convergence=convergence,
                   unit_loglik=comp.unit_loglik(theta), scaling_correction=scaling, natural=natural)

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
        return entropy(self.membership.filter(like="p_class").to_numpy())

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    def class_proportions(self) -> pd.DataFrame:
        """Class shares: model-implied (with SE), from posterior probabilities, and
        from most likely membership (Mplus' three FINAL CLASS COUNTS tables)."""
        post = self.membership.filter(like="p_class").to_numpy()
        share = self.params[self.params.parameter == "class_share"]
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

    def cluster_membership(self) -> pd.DataFrame:
        """Posterior class probabilities of each cluster, P(C_j = c | cluster data),
        for a model with a between-level class (eq. 16): one row per cluster
        (indexed by the cluster label), columns p_class1..K and the most likely
        class. Every person of a cluster has these probabilities in ``membership``."""
        from bayesmix.fit.compiled import compiled, require_between_class

        fam = self.model
        require_between_class(fam, "cluster_membership")
        post = compiled(fam).cluster_membership(self.theta)
        k = post.shape[1]
        index = pd.Index(list(fam.data.cluster_labels), name=fam.data.cluster_name)
        out = pd.DataFrame(post, columns=[f"p_class{c}" for c in range(1, k + 1)], index=index)
        out["class"] = post.argmax(axis=1) + 1
        return out

    def item_probabilities(self) -> pd.DataFrame:
        """P(y = category | class) for every categorical item (long format)."""
        from bayesmix.fit.compiled import compiled

        det = compiled(self.model).deterministics(self.theta)
        if "item_prob" not in det:
            return pd.DataFrame(columns=["item", "category", "class", "probability"])
        from bayesmix.families.lca import item_probabilities_frame

        return item_probabilities_frame(self.model, det["item_prob"])

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
