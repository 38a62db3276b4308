"""Within and between latent class variables together (paper section 6, eq. 22-26).

A within class C_ij (K classes) and a between class D_j (M classes):

    P(D_j = d) = softmax_d(alpha_between_d + beta_between_d w_j)                  (eq. 26)
    P(C_ij = c | D_j = d) = softmax_c(alpha_c + gamma_cd + beta_class_c x_ij)     (eq. 24)
    eta_j | D_j = d ~ N(mu_between_d + Gamma w_j, V_d)                            (eq. 25)
    [y_ij | C_ij = c, D_j = d]: mixture regression of class c with the random
                                coefficients eta_j                                (eq. 22-23)

so D acts on the within-level model through the means (and, with
``class_specific_variance``, the covariance) of the random coefficients, and on
C through gamma_cd. Identification: gamma_Kd = gamma_cM = 0 and mu_between_M = 0
(the class-specific means mu_c, beta_c of C already locate the coefficients).

The likelihood of cluster j sums D out outside the integral and C inside it:
ll_j = log sum_d P(D_j = d) int prod_i sum_c P(C_ij = c | d) f(y_ij | c, eta) dN(eta).

Parameters added to those of ``mixture_regression``: ``alpha_between``
Normal(0, 3), ``beta_between`` Normal(0, 2.5), ``gamma_cd`` Normal(0, 3),
``mu_between`` Normal(0, 2 scale). Reported: those and ``class_between_share``.
The model object is the mixture regression's (``RegressionModel``) with
``n_between`` > 1; ``cluster_membership()`` gives P(D_j = d | data).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.core.marginal import class_log_prior
from bayesmix.families.base import ParameterInfo

BETWEEN_COVARIATE = "between_covariate"


def within_between(
    data,
    outcomes,
    covariates=None,
    n_classes: int = 2,
    n_between: int = 2,
    *,
    cluster,
    random=None,
    cluster_covariates=None,
    class_covariates=None,
    between_covariates=None,
    outcome_types=None,
    link: str = "logit",
    re_cov: str = "full",
    class_specific_variance: bool = False,
    integration="trapezoid",
    priors: dict | None = None,
):
    """Two-level mixture with a within class C_ij and a between class D_j (section 6).

    Arguments as ``mixture_regression`` (the within class is C), plus
    ``n_between`` (M >= 2 classes of D_j) and ``between_covariates``
    (cluster-level predictors of D_j, eq. 26). ``class_specific_variance`` gives
    each D class its own random-coefficient covariance V_d (eq. 25).
    """
    from bayesmix.exceptions import SpecificationError
    from bayesmix.families.regression import _build

    if isinstance(n_between, bool) or not isinstance(n_between, (int, np.integer)) or n_between < 2:
        raise SpecificationError(f"n_between: got {n_between!r}; give an integer >= 2 (with one between class "
                                 "use mixture_regression).")
    return _build(data, outcomes, covariates, n_classes, n_between, cluster=cluster, class_level="within",
                  random=random, cluster_covariates=cluster_covariates, class_covariates=class_covariates,
                  outcome_types=outcome_types, link=link, re_cov=re_cov,
                  class_specific_variance=class_specific_variance, integration=integration, priors=priors,
                  between_covariates=between_covariates)


def between_parameters(fam) -> list:
    k = fam.spec.n_classes
    free = [ParameterInfo("alpha_between", (dims.CLASS_BETWEEN_LOGIT,), pm.Normal.dist(0.0, 3.0),
                          "between-class logit intercepts, eq. (26)")]
    if fam.between_covariates:
        free.append(ParameterInfo("beta_between", (dims.CLASS_BETWEEN_LOGIT, BETWEEN_COVARIATE),
                                  pm.Normal.dist(0.0, 2.5), "between-class logit slopes, eq. (26)"))
    if k > 1:
        free.append(ParameterInfo("gamma_cd", (dims.CLASS_LOGIT, dims.CLASS_BETWEEN_LOGIT), pm.Normal.dist(0.0, 3.0),
                                  "effect of D_j on the logits of C_ij, eq. (24)"))
    if fam.spec.random:
        free.append(ParameterInfo("mu_between", (dims.CLASS_BETWEEN_LOGIT, dims.RE_COEF),
                                  pm.Normal.dist(0.0, 2.0 * fam._re_scale()),
                                  "D-specific means of the random coefficients, eq. (25)"))
    return free


def between_reported(fam) -> list:
    names = ["alpha_between"]
    if fam.between_covariates:
        names.append("beta_between")
    if fam.spec.n_classes > 1:
        names.append("gamma_cd")
    if fam.spec.random:
        names.append("mu_between")
    return names


def between_log_prior(fam, q):
    logits = q["alpha_between"][None, :]
    if fam.between_covariates:
        logits = logits + pt.dot(fam.shared["wb"], q["beta_between"].T)
    return class_log_prior(logits)


def d_terms(fam, q, d: int):
    m = fam.spec.n_between
    gamma_d = kappa_d = None
    if fam.spec.n_classes > 1:
        gamma_d = q["gamma_cd"][:, d] if d < m - 1 else pt.zeros((fam.spec.n_classes - 1,))
    if fam.spec.random:
        kappa_d = q["mu_between"][d] if d < m - 1 else pt.zeros((len(fam.re_terms),))
    return gamma_d, kappa_d


def within_share(fam, q):
    """P(C = c) averaged over persons and over D given the cluster covariates."""
    prior_d = pt.exp(between_log_prior(fam, q))  # (1 or J, M)
    if prior_d.type.shape[0] != 1:
        prior_d = prior_d[fam.data.cluster_idx]
    total = 0.0
    for d in range(fam.spec.n_between):
        gamma_d, _ = d_terms(fam, q, d)
        total = total + prior_d[:, d: d + 1] * pt.exp(class_log_prior(fam._class_logits(q, gamma_d[None, :])))
    return pt.mean(total * pt.ones((fam.data.n_persons, 1)), axis=0)


def between_shares(fam, q) -> list:
    share = pt.mean(pt.exp(between_log_prior(fam, q)) * pt.ones((fam.data.n_clusters, 1)), axis=0)
    pm.Deterministic("class_between_share", share, dims=(dims.CLASS_BETWEEN,))
    return ["class_between_share"]


def between_start(fam, rng) -> dict:
    m, k = fam.spec.n_between, fam.spec.n_classes
    out = {"alpha_between": rng.normal(0.0, 0.1, size=m - 1)}
    if fam.between_covariates:
        out["beta_between"] = np.zeros((m - 1, len(fam.between_covariates)))
    if k > 1:
        out["gamma_cd"] = rng.normal(0.0, 1.0, size=(k - 1, m - 1))
    if fam.spec.random:
        out["mu_between"] = rng.uniform(-1.0, 1.0, size=(m - 1, len(fam.re_terms))) * fam._re_scale()
    return out
