"""Derived quantities of the paper, with uncertainty (delta method for ML,
posterior draws for NUTS)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bayesmix import dims
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.derive import derive
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
    truncated to [0, 1]) or the DataTree of ``bayesmix.sample`` / ``fit_laplace``
    (posterior mean, sd and equal-tailed interval); both from the one definition
    ``icc_from_variance`` through ``fit.derive``. As the paper warns, near 1 the delta method
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
    # one definition for both estimators (fit.derive): delta method at the fit, draws of a posterior
    table = derive(result, lambda nat: {"icc": icc_from_variance(np.diag(np.atleast_2d(nat[name])))},
                   needs=[name], prob=hdi_prob)
    if isinstance(result, MLResult):
        re_dim = result.model.model.named_vars_to_dims[name][0]
        re = [str(r) for r in result.model.model.coords[re_dim]]
        return pd.DataFrame({"re": re, "icc": table["estimate"].to_numpy(), "se": table["se"].to_numpy(),
                             "lower": np.clip(table["lower"].to_numpy(), 0, 1),
                             "upper": np.clip(table["upper"].to_numpy(), 0, 1)})
    post = result["posterior"][name]
    return pd.DataFrame({"re": list(post.coords[post.dims[-2]].values), "icc": table["estimate"].to_numpy(),
                         "sd": table["sd"].to_numpy(), "lower": table["lower"].to_numpy(),
                         "upper": table["upper"].to_numpy()})
