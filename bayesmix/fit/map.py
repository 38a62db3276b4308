"""Posterior mode (MAP): penalised maximum likelihood with the model's priors.

The objective is log p(y | theta) + log p(theta) over the flat free vector
theta: the marginal log-likelihood of ML (paper section 10) plus the sum of the
free RVs' log densities at their values. Every free RV lives on the real line
without a transform (ARCHITECTURE decision 1), so this is the log posterior
density of theta itself, with no Jacobian term, and its mode is the mode of
the posterior that ``bayesmix.sample`` draws from. The families register
default priors on every free parameter (``ParameterInfo.prior``); a user prior
is given to the factory (``priors={name: pm.X.dist(...)}``).

Everything else is ``fit_ml``'s machinery (``fit/ml.py``) with this objective:
random starts, L-BFGS-B, the Newton polish, bounds held fixed, the starts
table, the convergence, bound, starts and identification warnings, and the
integration check. Why a MAP: a class that endorses an item with probability 0
or 1 sends the ML threshold to infinity (held at +-15, decision 9); the prior
keeps it finite, so the mode is an interior point with a Hessian and SEs for
every parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesmix.fit.arguments import check_fit_ml
from bayesmix.fit.compiled import compiled, single_blas_thread
from bayesmix.fit.ml import LogLikelihood, _checked_integration, _fit_once
from bayesmix.fit.results import MLResult


class LogPosterior(LogLikelihood):
    """The MAP objective: log-likelihood + log-prior, with the exact gradient of
    both; its Hessian is the log-likelihood's plus the log-prior's (central
    differences of exact gradients, decision 5)."""

    name = "logpost"
    what = "log-posterior"
    caller = "fit_map"
    short = "MAP"

    def value_and_grad(self, x):
        ll, g = self.comp.ll_and_grad(x)
        lp, g_prior = self.comp.logprior_and_grad(x)
        return ll + lp, g + g_prior

    def second_order(self, x) -> dict:
        info = dict(self.comp.second_order(x))
        info["loglik_hessian"] = info["hessian"]
        info["hessian"] = info["hessian"] + self.comp.prior_hessian(x)
        return info

    def result(self, x, value, info, **kwargs) -> "MAPResult":
        return MAPResult.from_fit(self.model, x, value, info, **kwargs)


@dataclass
class MAPResult(MLResult):
    """A posterior mode (``fit_map``): an ``MLResult`` whose estimates are the MAP.

    ``loglik`` is the log-likelihood at the mode (below the ML maximum unless the
    prior is flat), ``logprior`` the log-prior there and ``logpost`` their sum,
    the maximised objective. ``cov`` (= ``cov_ml``) is the inverse of the
    negative Hessian of the *log-posterior* at the mode, -(H_loglik + H_logprior)^-1,
    the covariance of the Laplace approximation (``fit_laplace``); the SEs of
    ``params`` come from it (delta method for natural-scale quantities).
    ``se_type`` is "map". There is no MLR sandwich (a MAP is not an ML estimate)
    and no scaling correction.

    AIC, BIC and the adjusted BIC are ML criteria (-2 max LL + penalty); at the
    mode the LL is lower by an amount that depends on the prior, so they are not
    defined here (NaN, and the summary does not print them). Compare models
    with ``fit_ml``'s criteria, or with LOO on ``sample``'s draws.
    """

    logprior: float = float("nan")
    logpost: float = float("nan")

    method = "map"

    @classmethod
    def from_fit(cls, fam, theta, logpost, info, *, se, starts, convergence, fixed=None, identification=None):
        comp = compiled(fam)
        loglik = float(comp.unit_loglik(theta).sum())
        # se="ml": cov = (-H)^-1 of the Hessian in ``info``, here the log-posterior's
        res = super().from_fit(fam, theta, loglik, info, se="ml", starts=starts, convergence=convergence,
                               fixed=fixed, identification=identification)
        res.se_type = "map"
        res.scaling_correction = float("nan")
        res.logprior = comp.logprior_and_grad(theta)[0]
        res.logpost = float(logpost)
        return res

    @property
    def aic(self) -> float:
        return float("nan")

    @property
    def bic(self) -> float:
        return float("nan")

    @property
    def abic(self) -> float:
        return float("nan")

    def fit_statistics(self) -> dict:
        return {**super().fit_statistics(), "logprior": self.logprior, "logpost": self.logpost}

    def __repr__(self) -> str:
        return (f"<MAPResult {self.model.family} K={self.n_classes} log-posterior={self.logpost:.3f} "
                f"LL={self.loglik:.3f} npar={self.n_params}>")


@single_blas_thread
def fit_map(
    model,
    *,
    n_starts: int = 20,
    n_final: int = 5,
    short_iter: int = 20,
    max_iter: int = 2000,
    seed: int | None = 0,
    start=None,
    newton_steps: int = 5,
    gtol: float = 1e-5,
    ll_tol: float = 1e-3,
    progress: bool = True,
    check_integration: bool = True,
) -> MAPResult:
    """The posterior mode (MAP) of ``model`` under its priors: the free values
    maximising log-likelihood + log-prior.

    The arguments are ``fit_ml``'s (random starts ``n_starts``/``n_final``,
    ``short_iter``, ``seed``, ``start`` (a dict of raw values or a fit, e.g. the
    ``MLResult`` of ``fit_ml``), ``newton_steps``, ``gtol``, ``ll_tol`` (now on
    the log-posterior), ``check_integration``), without ``se``: the SEs are
    those of the Laplace approximation, from the inverse negative Hessian of
    the log-posterior at the mode (see ``MAPResult``). Bounds are ML's: a
    parameter at its bound is held there (no SE), as in ``fit_ml``; with the
    default priors that should not happen.

    The integration check refits under a finer rule as ``fit_ml`` does when the
    model has the default priors; with user priors (which a rebuilt model
    would not have) it only warns, with the fix (build the model with more
    points).

    Returns a ``MAPResult`` (``res.method == "map"``); ``res.summary()`` says
    "posterior mode (MAP)" and prints the LL and log-posterior at the mode.
    """
    start = check_fit_ml(model, start=start, seed=seed, se="ml", n_starts=n_starts, n_final=n_final,
                         short_iter=short_iter, max_iter=max_iter, newton_steps=newton_steps, gtol=gtol,
                         ll_tol=ll_tol, progress=progress, check_integration=check_integration)
    kwargs = dict(n_starts=n_starts, n_final=n_final, short_iter=short_iter, max_iter=max_iter, seed=seed, se="ml",
                  newton_steps=newton_steps, gtol=gtol, ll_tol=ll_tol, progress=progress, objective=LogPosterior)
    res = _fit_once(model, start=start, **kwargs)
    if check_integration and model.integration_dim:
        res = _checked_integration(model, res, kwargs)
    return res
