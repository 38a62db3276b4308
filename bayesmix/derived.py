"""Derived quantities of the paper, with uncertainty (delta method for ML,
posterior draws for NUTS)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix import dims
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.results import MLResult

LOGISTIC_VARIANCE = np.pi**2 / 3


def icc_from_variance(variance, link: str = "logit"):
    """ICC of a class-logit random intercept, eq. (20): Var / (Var + pi^2/3)
    (residual variance 1 for a probit class model)."""
    resid = LOGISTIC_VARIANCE if link == "logit" else 1.0
    variance = np.asarray(variance, dtype=float)
    return variance / (variance + resid)


def _class_variables(result) -> list[dict]:
    """The class variables the family declares (an MLResult) or stamped by ``sample``."""
    if isinstance(result, MLResult):
        return [cv.as_dict() for cv in result.model.class_variables]
    return json.loads(result["posterior"].attrs.get("bayesmix_class_variables", "[]"))


def _variance_names(result) -> list[str]:
    """Names of the covariances of random class-logit intercepts."""
    return [cv["logit_variance"] for cv in _class_variables(result) if cv.get("logit_variance")]


def _has_cluster(result) -> bool:
    if isinstance(result, MLResult):
        return result.model.data.cluster_idx is not None
    # sample's pointwise log-likelihood is per cluster for two-level data
    groups = [result[g] for g in ("log_likelihood", "posterior") if g in result.children]
    return any(dims.CLUSTER in var.dims for g in groups for var in g.data_vars.values())


def _no_icc_message(result) -> str:
    """Why there is no ICC, with the fix that fits this model: the cluster may be
    there already (a between class, or a within class without random intercepts)."""
    head = "icc: this model has no random class-logit intercepts, so there is no ICC of alpha_cj (eq. 20)"
    between = [cv for cv in _class_variables(result) if tuple(cv.get("membership_dims", ())) == (dims.CLUSTER,)]
    if between:
        return (f"{head}: its class variable {between[0]['name']} is at the between level (one class per cluster: "
                "Model 5 of section 5, the limit of Model 6 as Var(alpha_1) grows, i.e. ICC = 1). Fix: to let membership vary within clusters "
                "around a cluster random intercept, refit with class_level='within-between' "
                "(mixture_regression) or lca(..., class_level='within', random_intercepts=True), keeping your "
                "cluster column.")
    if _has_cluster(result):
        return (f"{head}: the data have clusters, but the class logits have no random intercept. Fix: refit with "
                "lca(..., random_intercepts=True) or mixture_regression(..., class_level='within-between'), "
                "keeping your cluster column.")
    return (f"{head}. Fix: fit a two-level model with them, e.g. lca(..., cluster=..., random_intercepts=True) or "
            "mixture_regression(..., cluster=..., class_level='within-between').")


def icc(result, *, hdi_prob: float = 0.95):
    """ICC of each random class-logit intercept alpha_cj, eq. (20).

    ``result`` is an ``MLResult`` (estimate, delta-method SE and Wald interval,
    truncated to [0, 1]) or the DataTree of ``bayesmix.sample`` (posterior mean,
    sd and equal-tailed interval). As the paper warns, near 1 the delta method
    is only an approximation: the ICC is at its boundary.
    """
    is_tree = hasattr(result, "children") and "posterior" in result.children
    if not isinstance(result, MLResult) and not is_tree:
        raise SpecificationError(
            f"icc: got {type(result).__name__}; give an MLResult or the DataTree of bayesmix.sample for a model "
            "with random class-logit intercepts.")
    names = _variance_names(result)
    if not names:
        raise SpecificationError(_no_icc_message(result))
    name = names[0]
    if isinstance(result, MLResult):
        var = np.diag(np.atleast_2d(result.natural[name]))
        rows = result.params[result.params.parameter == name]
        labels = [lab for lab in rows["label"] if _is_diag(lab)]
        se_var = rows.set_index("label").loc[labels, "se"].to_numpy(dtype=float)
        est = icc_from_variance(var)
        se = LOGISTIC_VARIANCE / (var + LOGISTIC_VARIANCE) ** 2 * se_var
        z = stats.norm.ppf(0.5 + hdi_prob / 2)
        return pd.DataFrame({"re": [lab.split("[")[1].split(",")[0] for lab in labels], "icc": est, "se": se,
                             "lower": np.clip(est - z * se, 0, 1), "upper": np.clip(est + z * se, 0, 1)})
    post = result["posterior"][name]
    draws = post.to_numpy()
    draws = icc_from_variance(np.diagonal(draws, axis1=-2, axis2=-1)).reshape(-1, draws.shape[-1])
    lo, hi = np.quantile(draws, [(1 - hdi_prob) / 2, (1 + hdi_prob) / 2], axis=0)
    return pd.DataFrame({"re": list(post.coords[post.dims[-2]].values), "icc": draws.mean(axis=0),
                         "sd": draws.std(axis=0), "lower": lo, "upper": hi})


def _is_diag(label: str) -> bool:
    a, b = label.split("[")[1].rstrip("]").split(", ")
    return a == b
