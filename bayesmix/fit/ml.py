"""Maximum likelihood with random starts (paper section 10) and ML/MLR standard errors.

The objective is the marginal log-likelihood only (no priors, no Jacobians) as a
function of the unconstrained free parameters, maximised by L-BFGS-B with the
exact PyTensor gradient. Random starts follow Mplus: ``n_starts`` random
starting sets, a short optimisation (``short_iter`` iterations) of each, then
completion of the best ``n_final``. The best log-likelihood should be reached
by at least two completed starts; a ``StartsWarning`` says when it was not.

After L-BFGS, up to ``newton_steps`` Newton steps with the exact Hessian polish
the optimum (L-BFGS stops at ~1e-5 relative gradient; the Newton steps bring the
LL to machine precision, which the EM cross-check relies on).

Standard errors (``se=``):
``"mlr"`` (default, Mplus MLR): sandwich H^-1 B H^-1, B = sum_j s_j s_j' over the
per-cluster (two-level) or per-person score vectors (White 1980).
``"ml"``: inverse observed information, (-H)^-1.
Natural-scale quantities (variances, thresholds of ordinal items, class shares)
get delta-method SEs through the exact Jacobian of their map.

The machinery (starts, L-BFGS-B, Newton polish, bounds, warnings, the result)
works on an *objective* (``LogLikelihood`` here); ``fit/map.py`` passes the
log-posterior instead (``fit_map``), so the two fits share every line of it.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from scipy import optimize
from tqdm import tqdm

from bayesmix.exceptions import ConvergenceWarning, FitError, IdentificationWarning, IntegrationWarning, StartsWarning
from bayesmix.fit import identification as ident
from bayesmix.fit.arguments import check_fit_ml
from bayesmix.fit.compiled import compiled, single_blas_thread
from bayesmix.fit.results import MLResult

INTEGRATION_TOL = 0.01  # LL change under the finer rule that triggers a refit
MAX_REFINEMENTS = 2


class LogLikelihood:
    """The objective ``_fit_once`` maximises, as a function of the flat free vector:
    here the marginal log-likelihood (ML). ``fit/map.py`` subclasses it with the
    log-posterior. ``name`` heads the starts table's columns, ``what`` and
    ``caller`` are the words of its warnings."""

    name = "loglik"
    what = "log-likelihood"
    caller = "fit_ml"
    short = "ML"

    def __init__(self, model):
        self.model = model
        self.comp = compiled(model)

    def value_and_grad(self, x) -> tuple[float, np.ndarray]:
        return self.comp.ll_and_grad(x)

    def second_order(self, x) -> dict:
        """The Hessian of the objective, the per-unit scores of the log-likelihood
        and the Jacobian of the reported quantities (``Compiled.second_order``)."""
        return self.comp.second_order(x)

    def result(self, x, value, info, **kwargs) -> MLResult:
        return MLResult.from_fit(self.model, x, value, info, **kwargs)


def _minimize(obj, x0, maxiter, gtol, bounds=None):
    def fun(x):
        try:
            ll, g = obj.value_and_grad(x)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            return np.inf, np.zeros_like(x)
        if not np.isfinite(ll) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return -ll, -g

    if bounds is not None:
        x0 = np.clip(x0, bounds[0], bounds[1])
        bounds = optimize.Bounds(bounds[0], bounds[1])
    return optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                             options={"maxiter": maxiter, "gtol": gtol, "ftol": 1e-13, "maxcor": 20})


def _newton_polish(obj, x, steps: int, free: np.ndarray, bounds=None):
    """A few damped Newton steps on the exact Hessian over the parameters not at a
    bound (``free``); stops if the Hessian is not negative definite there. Every
    step stays inside the box ``bounds``: it is shortened to 99% of the way to
    the nearest bound it would cross (a threshold once left the +-15 box at 15.6)."""
    low, high = bounds if bounds is not None else (np.full(x.size, -np.inf), np.full(x.size, np.inf))
    ll, g = obj.value_and_grad(x)
    info = None
    for _ in range(steps):
        if np.max(np.abs(g[free]), initial=0.0) < 1e-8:
            break
        info = obj.second_order(x)
        h = info["hessian"][np.ix_(free, free)]
        try:
            np.linalg.cholesky(-h)
        except np.linalg.LinAlgError:
            break
        step = np.zeros_like(x)
        step[free] = np.linalg.solve(-h, g[free])
        with np.errstate(divide="ignore", invalid="ignore"):
            room = np.where(step > 0, (high - x) / step, np.where(step < 0, (low - x) / step, np.inf))
        t = min(1.0, 0.99 * float(np.min(room, initial=np.inf)))
        while t > 1e-4:
            ll_new, g_new = obj.value_and_grad(x + t * step)
            if np.isfinite(ll_new) and ll_new >= ll - 1e-10:
                break
            t /= 2
        else:
            break
        x, ll, g = x + t * step, ll_new, g_new
        info = None
    return x, ll, g, info


def bound_reasons(model, owners: list[str]) -> str:
    """What an estimate at its bound means, from the ``at_bound`` texts the family
    declares for those free parameters (each text once)."""
    texts = [model.free_info(name).at_bound for name in dict.fromkeys(owners)]
    return " ".join(t for t in dict.fromkeys(texts) if t)


@single_blas_thread
def fit_ml(
    model,
    *,
    n_starts: int = 20,
    n_final: int = 5,
    short_iter: int = 20,
    max_iter: int = 2000,
    seed: int | None = 0,
    se: str = "mlr",
    start=None,
    newton_steps: int = 5,
    gtol: float = 1e-5,
    ll_tol: float = 1e-3,
    progress: bool = True,
    check_integration: bool = True,
) -> MLResult:
    """Fit ``model`` (a family object such as ``bayesmix.lca(...)``) by maximum likelihood.

    Parameters
    ----------
    n_starts, n_final : int
        Random starting sets and how many of the best are completed (Mplus
        ``STARTS = 20 5``). ``n_starts=0`` uses only ``start``.
    short_iter : int
        L-BFGS iterations of the initial stage.
    seed : int
        Seeds the random starts; the fit is reproducible.
    se : {"mlr", "ml"}
        Robust sandwich (default, as Mplus MLR) or inverse observed information.
    start : dict or MLResult, optional
        A starting point (raw free values), e.g. from a simpler model; it is
        completed in addition to the random starts.
    ll_tol : float
        Two final log-likelihoods closer than this count as the same optimum.
    check_integration : bool
        For a model that integrates random effects numerically: re-evaluate the
        LL at the optimum under a finer rule (``Integration.finer``); when the two
        differ by more than 0.01, refit from the optimum with the finer rule (up
        to twice) and say so with an ``IntegrationWarning``. The result then
        belongs to the refined model (``res.model``, ``res.integration``).

    BLAS runs on one thread during the fit (see ``single_blas_thread``).
    """
    start = check_fit_ml(model, start=start, seed=seed, se=se, n_starts=n_starts, n_final=n_final, short_iter=short_iter,
                         max_iter=max_iter, newton_steps=newton_steps, gtol=gtol, ll_tol=ll_tol, progress=progress,
                         check_integration=check_integration)
    kwargs = dict(n_starts=n_starts, n_final=n_final, short_iter=short_iter, max_iter=max_iter, seed=seed, se=se,
                  newton_steps=newton_steps, gtol=gtol, ll_tol=ll_tol, progress=progress)
    res = _fit_once(model, start=start, **kwargs)
    if check_integration and model.integration_dim:
        res = _checked_integration(model, res, kwargs)
    return res


def _same_prior(fam, finer, theta) -> bool:
    """Whether the rebuilt model ``finer`` has ``fam``'s log-prior (``with_spec``
    rebuilds with the default priors: a model with user priors has another)."""
    rng = np.random.default_rng(1)
    points = [theta, theta + rng.normal(size=theta.size)]
    return all(np.isclose(compiled(fam).logprior_and_grad(t)[0], compiled(finer).logprior_and_grad(t)[0],
                          rtol=1e-12, atol=1e-10) for t in points)


def _checked_integration(model, res, kwargs) -> MLResult:
    """The integration check of ``fit_ml`` (and ``fit_map``): evaluate the LL at the
    optimum under a finer rule, refit with it while the LL moves by more than the
    tolerance. The log-prior does not depend on the rule, so the log-posterior
    moves by the same amount; a MAP is refitted only when the rebuilt model keeps
    its priors (``with_spec`` rebuilds with the default ones), else it warns."""
    objective = kwargs.get("objective", LogLikelihood)
    caller = objective.caller
    first_fit = res
    first = res.model.spec.integration.describe(model.integration_dim)
    refinements = []
    for _ in range(MAX_REFINEMENTS + 1):
        fam, dim = res.model, res.model.integration_dim
        finer_rule = fam.spec.integration.finer(dim)
        finer = fam.with_spec(integration=finer_rule)
        ll_finer = float(compiled(finer).unit_loglik_only(res.theta).sum())
        diff = ll_finer - res.loglik
        res.integration = {"rule": fam.spec.integration.describe(dim), "checked_with": finer_rule.describe(dim),
                           "loglik_finer": ll_finer, "difference": diff, "refined_from": first if refinements else None,
                           "ok": abs(diff) <= INTEGRATION_TOL}
        if abs(diff) <= INTEGRATION_TOL or len(refinements) == MAX_REFINEMENTS:
            break
        if objective is not LogLikelihood and not _same_prior(fam, finer, res.theta):
            res.integration["ok"] = False
            res.integration["not_refitted"] = "user priors (a rebuilt model has the default priors)"
            break
        finer.cache["refined_from"] = model
        refinements.append((fam.spec.integration.describe(dim), diff))
        res = _fit_once(finer, **{**kwargs, "n_starts": 0}, start=res.point)
    fix = res.model.spec.integration
    if refinements:
        # the random starts ran under the first rule: keep their record
        res.starts = first_fit.starts
        res.convergence = {**res.convergence, "n_best": first_fit.convergence["n_best"],
                           "starts_rule": first}
        steps = "; ".join(f"{rule}: LL changed by {d:+.4f}" for rule, d in refinements)
        warnings.warn(
            f"{caller}: the log-likelihood depended on the integration rule ({steps} under the finer rule), so the "
            f"fit was refined from the optimum; res.model now uses {fix.describe(dim)}. Next time build the model "
            f"with integration=bm.Integration(rule={fix.rule!r}, n_points={fix.n_points!r}). "
            "(Large clusters make the posterior of the random effects narrow; a fixed grid then needs more points.)",
            IntegrationWarning, stacklevel=4)
    if not res.integration["ok"]:
        warnings.warn(
            f"{caller}: the log-likelihood still changes by {res.integration['difference']:+.4f} under "
            f"{res.integration['checked_with']}; the reported LL and SEs carry that integration error. Fix: "
            "build the model with more points, e.g. integration=bm.Integration(rule='trapezoid', n_points=...) "
            "per dimension, or rule='adaptive'."
            + (" (Not refitted: the model has user priors, which a model rebuilt with the finer rule would not "
               "keep.)" if res.integration.get("not_refitted") else ""), IntegrationWarning, stacklevel=4)
    return res


def _fit_once(model, *, n_starts, n_final, short_iter, max_iter, seed, se, start, newton_steps, gtol, ll_tol,
              progress, objective=LogLikelihood) -> MLResult:
    """One fit of ``model`` with its own integration rule (the body of ``fit_ml``),
    maximising ``objective(model)`` (``LogLikelihood``, or the log-posterior of
    ``fit_map``)."""
    t0 = time.perf_counter()
    obj = objective(model)
    comp, caller = obj.comp, obj.caller
    packing = comp.packing
    obj.value_and_grad(packing.pack(model.start_point(np.random.default_rng(0))))  # compile now
    t_compile = time.perf_counter() - t0

    bounds = model.bounds(packing)
    short, final_res = _run_starts(model, obj, bounds, n_starts, n_final, short_iter, max_iter, gtol, seed,
                                   start, progress)
    best = final_res[min(final_res, key=lambda k: final_res[k].fun)]
    if not np.isfinite(best.fun) or best.fun >= 1e299:
        raise FitError(f"{caller}: no start reached a finite {obj.what}; check the data and try more starts.")
    # Mplus convention: a parameter that runs to its bound (a threshold at +-15 on
    # the logit scale, a log-sd at its limits) is fixed there "to avoid
    # singularity"; it gets no SE and the other SEs are computed with it held fixed.
    at_bound = (best.x <= bounds[0] + 1e-6) | (best.x >= bounds[1] - 1e-6)
    x, ll, g, info = _newton_polish(obj, best.x, newton_steps, ~at_bound, bounds)
    # a parameter the polish left next to its bound with the gradient pushing out
    # is at the bound: hold it there as well
    pushed = ~at_bound & (((x <= bounds[0] + 1e-4) & (g < 0)) | ((x >= bounds[1] - 1e-4) & (g > 0)))
    if pushed.any():
        x = np.where(pushed, np.where(g < 0, bounds[0], bounds[1]), x)
        at_bound = at_bound | pushed
        ll, g = obj.value_and_grad(x)
        info = None
    if info is None:
        info = obj.second_order(x)
    fixed = [lab for lab, b in zip(packing.labels(), at_bound) if b]
    if fixed:
        owners = [o for o, b in zip(packing.owners(), at_bound) if b]
        warnings.warn(
            f"{len(fixed)} parameter(s) reached their bound and were fixed there to avoid singularity "
            f"(no SE; as Mplus does): {', '.join(fixed[:6])}{' ...' if len(fixed) > 6 else ''}. "
            + bound_reasons(model, owners), ConvergenceWarning, stacklevel=4)
    starts_table = _starts_table(short, final_res, n_starts, obj.name)
    finite = starts_table[f"{obj.name}_final"].to_numpy(dtype=float)
    n_best = int(np.sum(np.abs(finite[np.isfinite(finite)] - ll) < ll_tol))
    if n_starts + (start is not None) > 1 and n_best < 2:
        warnings.warn(
            f"The best {obj.what} {ll:.3f} was reached by only {n_best} completed start(s); "
            "it may be a local maximum. Increase n_starts/n_final (e.g. n_starts=100, n_final=20).",
            StartsWarning, stacklevel=4)
    grad_norm = float(np.max(np.abs(g[~at_bound]), initial=0.0))
    hit_limit = bool(best.nit >= max_iter or "ITERATIONS REACHED LIMIT" in str(best.message).upper())
    if hit_limit:
        warnings.warn(f"{caller}: L-BFGS-B stopped at the iteration limit (max_iter={max_iter}) on the best start; "
                      f"after the Newton polish the largest gradient element is {grad_norm:.2g}. Fix: raise "
                      "max_iter (and check the starts table) before trusting the estimates.",
                      ConvergenceWarning, stacklevel=4)
    if grad_norm > 1e-2:
        warnings.warn(f"{caller}: the largest gradient element at the optimum is {grad_norm:.2g}; "
                      "the fit may not have converged (raise max_iter).", ConvergenceWarning, stacklevel=4)
    convergence = {
        "optimizer": "L-BFGS-B + Newton polish",
        "success": bool(best.success),
        "message": str(best.message),
        "iterations": int(best.nit),
        "max_abs_gradient": grad_norm,
        "hit_iteration_limit": hit_limit,
        "n_best": n_best,
        "fixed_at_bound": fixed,
        "compile_seconds": t_compile,
        "seconds": time.perf_counter() - t0,
    }
    record = _identification(model, obj, x, ll, info, at_bound, se)
    return obj.result(x, ll, info, se=se, starts=starts_table, convergence=convergence, fixed=at_bound,
                      identification=record)


def _identification(model, obj, x, ll, info, at_bound, se) -> dict:
    """The information-matrix check (``fit.identification``) with its warnings, on
    the objective's Hessian (a MAP: the log-posterior's)."""
    comp = obj.comp
    record = ident.check_information(info["hessian"], ~at_bound, x, ll, lambda t: obj.value_and_grad(t)[0],
                                     comp.packing.labels(), info["jacobian"])
    if not record["identified"]:
        warnings.warn(ident.message(record), IdentificationWarning, stacklevel=5)
    n_units, n_free = info["scores"].shape[0], int(np.sum(~at_bound))
    record["units_below_parameters"] = se == "mlr" and n_units < n_free
    if record["units_below_parameters"]:
        warnings.warn(
            f"{obj.caller}: {n_free} free parameters but only {n_units} independent units ({model.unit_dim}s); the MLR "
            "sandwich has rank at most the number of units, so its SEs are not trustworthy (Mplus' non-positive "
            "definite first-order derivative product matrix). Fix: se='ml', or fewer parameters.",
            IdentificationWarning, stacklevel=5)
    return record


def _run_starts(model, obj, bounds, n_starts, n_final, short_iter, max_iter, gtol, seed, start, progress):
    """Mplus' two stages: ``short_iter`` iterations from each random start, then
    the best ``n_final`` (and ``start``, key -1) completed. Returns the short
    stage [(objective, x)] and the completed optimizer results by start index."""
    packing = obj.comp.packing
    rng = np.random.default_rng(seed)
    starts = [packing.pack(model.start_point(rng)) for _ in range(n_starts)]
    bar = tqdm(total=n_starts + min(n_final, n_starts), desc=f"{obj.short} random starts", disable=not progress,
               leave=False)
    short = []
    for x0 in starts:
        res = _minimize(obj, x0, short_iter, gtol, bounds)
        short.append((-res.fun if np.isfinite(res.fun) and res.fun < 1e299 else -np.inf, res.x))
        bar.update()
    order = np.argsort([-s[0] for s in short])[: min(n_final, n_starts)]
    finals = [(int(i), short[i][1]) for i in order]
    if start is not None:
        point = start.point if isinstance(start, MLResult) else start
        finals.append((-1, packing.pack(point)))
    final_res = {}
    for i, x0 in finals:
        final_res[i] = _minimize(obj, x0, max_iter, gtol, bounds)
        bar.update()
    bar.close()
    return short, final_res


def _starts_table(short, final_res, n_starts, name="loglik") -> pd.DataFrame:
    """The objective (``name``: LL, or the log-posterior of a MAP) of every start at
    both stages, best first (Mplus' RANDOM STARTS RESULTS)."""
    rows = []
    for i in range(n_starts):
        r = final_res.get(i)
        rows.append({"start": i + 1, f"{name}_initial_stage": short[i][0],
                     f"{name}_final": -r.fun if r is not None and r.fun < 1e299 else np.nan,
                     "iterations": r.nit if r is not None else np.nan,
                     "converged": bool(r.success) if r is not None else False})
    if -1 in final_res:
        r = final_res[-1]
        rows.append({"start": "user", f"{name}_initial_stage": np.nan, f"{name}_final": -r.fun if r.fun < 1e299 else np.nan,
                     "iterations": r.nit, "converged": bool(r.success)})
    return pd.DataFrame(rows).sort_values(f"{name}_final", ascending=False, na_position="last")

