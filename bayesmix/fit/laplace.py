"""Laplace approximation: a Gaussian at the posterior mode, returned as the
DataTree ``bayesmix.sample`` returns.

theta | y ~ N(theta_MAP, Sigma), Sigma = -(H_loglik + H_logprior)^-1 at the mode
(``MAPResult.cov``). The free parameters are drawn on their own (real-line)
scale, where the approximation is made; every Deterministic and reported
quantity is the compiled natural-scale map of each draw (``Compiled.natural``),
so class shares, variances and item probabilities are not Gaussian.

Layout, as pymc-extras' ``fit_laplace`` (pymc_extras/inference/laplace_approx:
``add_fit_to_inference_data``, ``draws_from_laplace_approx``):
* ``posterior``: the draws, dims (chain, draw, *dims of the variable), the free
  variables then the Deterministics, with the model's coords (as NUTS);
* ``fit``: ``mean_vector`` (dim ``rows``) and ``covariance_matrix`` (dims
  ``rows``, ``columns``) of the flat free vector, rows labelled
  ``name[coord,coord]``;
* ``log_likelihood``: ``loglik`` per unit, as ``sample`` adds it.
pymc-extras' ``unconstrained_posterior`` group is not written: no free variable
has a transform, so it would repeat the posterior. The draws are independent, so
several chains are only there for the shape of the NUTS output (R-hat and ESS
of ``az.summary`` are those of independent draws). There is no relabelling: all
draws come from one Gaussian around one labelling.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import xarray as xr

from bayesmix import dims
from bayesmix.checks import check_bool, check_int, check_seed
from bayesmix.exceptions import FitError, SpecificationError
from bayesmix.fit.arguments import check_model
from bayesmix.fit.bayes import _add_log_likelihood
from bayesmix.fit.compiled import compiled, single_blas_thread
from bayesmix.fit.map import MAPResult, fit_map


def unpacked_names(fam) -> list[str]:
    """``name[coord,coord]`` for every element of the flat free vector, in its
    order (pymc-extras' ``make_unpacked_variable_names``)."""
    model = fam.model
    out = []
    for name in fam.free_names:
        var_dims = model.named_vars_to_dims.get(name, ())
        if not var_dims:
            out.append(name)
            continue
        for label in itertools.product(*(model.coords[d] for d in var_dims)):
            out.append(f"{name}[{','.join(map(str, label))}]")
    return out


def gaussian_draws(mean: np.ndarray, cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, P) draws of N(mean, cov) through the eigendecomposition of cov, which
    also serves a singular cov (parameters held at a bound have zero variance;
    an unidentified direction's pseudo-inverse): eigenvalues below 0 from
    rounding (|lambda| ~ 1e-16 max lambda) are set to 0."""
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    scale = np.sqrt(np.clip(vals, 0.0, None))
    return mean + (rng.standard_normal((n, mean.size)) * scale) @ vecs.T


def _check(model, map_result, draws, chains, seed, progress, fit_kwargs):
    check_model(model)
    check_int("draws", draws, 1)
    check_int("chains", chains, 1)
    check_seed("seed", seed)
    check_bool("progress", progress)
    if map_result is not None:
        if not isinstance(map_result, MAPResult):
            raise SpecificationError(
                f"map_result: got {type(map_result).__name__}; give the MAPResult of bm.fit_map(model) (an ML fit "
                "is not a posterior mode), or None to fit it here.")
        if fit_kwargs:
            raise SpecificationError(
                f"fit_laplace: got map_result and fit_map arguments {sorted(fit_kwargs)}; the mode is already "
                "fitted. Fix: pass them to fit_map, or leave map_result out.")
        if map_result.model is not model and map_result.model.cache.get("refined_from") is not model:
            raise SpecificationError("map_result: this MAPResult belongs to another model object; pass the "
                                     "result of fit_map(model).")


@single_blas_thread
def fit_laplace(model, *, map_result: MAPResult | None = None, draws: int = 1000, chains: int = 4,
                seed: int | None = 0, progress: bool = True, **fit_map_kwargs) -> xr.DataTree:
    """Laplace approximation of the posterior of ``model``: Gaussian draws at the
    posterior mode, as an ArviZ DataTree shaped like ``bayesmix.sample``'s.

    Parameters
    ----------
    map_result : MAPResult, optional
        The mode (``bm.fit_map(model)``); fitted here (with ``seed``, ``progress``
        and ``**fit_map_kwargs``, e.g. ``n_starts``) when omitted.
    draws, chains : int
        ``chains`` x ``draws`` independent draws (default 4 x 1000, NUTS' shape).
    seed : int
        Seeds the draws (and the fit when it is done here).

    Returns
    -------
    xarray.DataTree with groups ``posterior``, ``fit`` (``mean_vector``,
    ``covariance_matrix``: pymc-extras' layout) and ``log_likelihood``; its
    posterior attrs carry ``bayesmix_family``, ``bayesmix_class_variables`` and
    ``bayesmix_method = "laplace"``. ``az.summary``, ``bm.compare_ml_bayes``,
    ``bm.icc`` and the plots' ``posterior=`` take it as they take ``sample``'s.

    A function of the model (not a ``MAPResult`` method) so that it reads as
    ``sample(model, ml=...)`` and pymc-extras' ``fit_laplace`` do, and fits the
    mode itself when none is given.
    """
    _check(model, map_result, draws, chains, seed, progress, fit_map_kwargs)
    res = map_result if map_result is not None else fit_map(model, seed=seed, progress=progress, **fit_map_kwargs)
    fam = res.model  # the refined model when fit_map refined the integration rule
    comp = compiled(fam)
    mean, cov = np.asarray(res.theta, float), np.asarray(res.cov, float)
    if not np.all(np.isfinite(cov)):
        raise FitError("fit_laplace: the Hessian of the log-posterior at the mode could not be inverted, so there "
                       "is no Gaussian approximation. Fix: check res.identification and res.convergence of the "
                       "MAP, or give more informative priors.")
    rng = np.random.default_rng(seed)
    flat = gaussian_draws(mean, cov, chains * draws, rng).reshape(chains, draws, mean.size)
    data = dict(comp.packing.unpack(flat))
    natural = [comp.natural(flat[c, d]) for c in range(chains) for d in range(draws)]
    for name in natural[0]:
        if name not in data:
            data[name] = np.stack([nat[name] for nat in natural]).reshape(chains, draws, *np.shape(natural[0][name]))
    model = fam.model
    # the model's dims (a variable without them gets PyMC's name_dim_i, as in pm.sample)
    var_dims = {n: list(model.named_vars_to_dims.get(n) or [f"{n}_dim_{i}" for i in range(v.ndim - 2)])
                for n, v in data.items()}
    coords = {d: list(model.coords[d]) for ds in var_dims.values() for d in ds if d in model.coords}
    coords |= {dims.CHAIN: np.arange(chains), dims.DRAW: np.arange(draws)}
    post = xr.Dataset({n: ((dims.CHAIN, dims.DRAW, *var_dims[n]), v) for n, v in data.items()}, coords=coords)
    post.attrs.update({"sample_dims": [dims.CHAIN, dims.DRAW], "bayesmix_method": "laplace",
                       "bayesmix_family": fam.family,
                       "bayesmix_class_variables": json.dumps([cv.as_dict() for cv in fam.class_variables])})
    rows = unpacked_names(fam)
    fit = xr.Dataset({"mean_vector": (("rows",), mean), "covariance_matrix": (("rows", "columns"), cov)},
                     coords={"rows": rows, "columns": rows})
    dt = xr.DataTree.from_dict({"posterior": post, "fit": fit})
    _add_log_likelihood(fam, dt)
    return dt
