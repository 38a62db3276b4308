"""NUTS on the marginal likelihood (nutpie), label-switching repair and the
ML-versus-Bayes table.

* Classes are summed out and random effects integrated exactly as for ML, so
  the sampler sees only the continuous free parameters (DESIGN.md section 3).
* Every chain starts at the ML solution, without jitter: random initial points
  land chains in different label permutations (R-hat 1.73 measured here, see
  PYMC_NOTES), while the ML start puts all chains in the same mode.
* Label switching is still checked draw by draw, for every class variable
  (``fit.relabel``): each draw's class profile is matched to the ML profile
  (Hungarian assignment on squared distances) and the draw relabelled if
  another permutation fits better. The counts per chain are stored in
  ``posterior.attrs["label_switching"]`` and a ``LabelSwitchingWarning`` is
  issued: never silent.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import dims
from bayesmix.exceptions import SpecificationError
from bayesmix.checks import check_int
from bayesmix.fit.arguments import check_sample
from bayesmix.fit.compiled import announce, compiled, get_backend, single_blas_thread
from bayesmix.fit.ml import fit_ml
from bayesmix.fit.relabel import relabel
from bayesmix.fit.results import MLResult


# nutpie's gradient: PyTensor's symbolic gradient (as bayesmix's own functions)
NUTPIE_GRADIENT = {"jax": "pytensor", "numba": "pytensor"}


def _nutpie_model(fam, init: dict):
    import nutpie

    key = (get_backend(),) + tuple((k, np.asarray(v).tobytes()) for k, v in sorted(init.items()))
    cache = fam.cache.get("nutpie")
    if cache is not None and cache[0] == key:
        return cache[1]
    # nutpie compiles the model its own way, with Numba or JAX: JAX when bayesmix's
    # backend is JAX (seconds to the first draw against about half a minute for
    # Numba with an empty cache; ARCHITECTURE.md decision 10), else Numba
    backend = "jax" if get_backend() == "jax" else "numba"
    with announce(fam, f"the NUTS sampler (nutpie, {backend})"):
        cm = nutpie.compile_pymc_model(fam.model, initial_points=dict(init), jitter_rvs=set(), backend=backend,
                                       gradient_backend=NUTPIE_GRADIENT[backend])
    fam.cache["nutpie"] = (key, cm)
    return cm


@single_blas_thread
def sample(
    model,
    *,
    ml: MLResult | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = 0,
    posterior_predictive: bool = False,
    ppc_draws: int = 200,
    progress: bool = True,
    adaptation: str = "low_rank",
    **nutpie_kwargs,
):
    """Sample the posterior of ``model`` with NUTS (nutpie).

    Parameters
    ----------
    ml : MLResult, optional
        ML solution used to start the chains and as the label reference; fitted
        with 10 starts when omitted.
    draws, tune, chains, seed : sampler settings.
    posterior_predictive : bool
        Add ``posterior_predictive`` / ``observed_data`` groups with replicated
        item responses ``y`` (person, item) for ``ppc_draws`` thinned draws.

    Returns
    -------
    xarray.DataTree with groups posterior, sample_stats, log_likelihood
    (per cluster for two-level models, per person otherwise: ``az.loo`` works
    cluster-wise) and, on request, posterior_predictive and observed_data.
    """
    check_sample(model, ml=ml, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress, ppc_draws=ppc_draws,
                 posterior_predictive=posterior_predictive, adaptation=adaptation)
    import nutpie

    for name, val in (("draws", draws), ("tune", tune), ("chains", chains), ("ppc_draws", ppc_draws)):
        check_int(name, val, 1)
    if ml is None:
        ml = fit_ml(model, n_starts=10, n_final=3, seed=seed, progress=progress)
    elif ml.model is not model:
        if ml.model.cache.get("refined_from") is not model:
            raise SpecificationError("ml: this MLResult belongs to another model object; pass the result of "
                                     "fit_ml(model).")
        model = ml.model  # fit_ml refined the integration rule: sample the refined model
    cm = _nutpie_model(model, ml.point)
    dt = nutpie.sample(cm, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progress,
                       adaptation=adaptation, **nutpie_kwargs)
    for group in ("warmup_posterior", "warmup_sample_stats"):
        if group in dt.children:
            del dt[group]
    report = relabel(model, dt, ml)
    _add_log_likelihood(model, dt)
    if posterior_predictive:
        add_posterior_predictive(model, dt, n_draws=ppc_draws, seed=seed)
    dt["posterior"].attrs["label_switching"] = json.dumps(report)
    dt["posterior"].attrs["bayesmix_family"] = model.family
    dt["posterior"].attrs["bayesmix_class_variables"] = json.dumps([cv.as_dict() for cv in model.class_variables])
    return dt


def _flat_draws(model, dt) -> np.ndarray:
    post = dt["posterior"]
    return np.concatenate([post[n].to_numpy().reshape(post.sizes["chain"], post.sizes["draw"], -1)
                           for n in model.free_names], axis=-1)


def _add_log_likelihood(model, dt):
    comp = compiled(model)
    flat = _flat_draws(model, dt)
    ll = np.stack([[comp.unit_loglik(flat[c, d]) for d in range(flat.shape[1])] for c in range(flat.shape[0])])
    unit = model.unit_dim
    coords = {dims.CHAIN: dt["posterior"][dims.CHAIN].values, dims.DRAW: dt["posterior"][dims.DRAW].values,
              unit: list(model.model.coords[unit])}
    dt["log_likelihood"] = xr.DataTree(xr.Dataset({"loglik": ((dims.CHAIN, dims.DRAW, unit), ll)}, coords=coords))


def add_posterior_predictive(model, dt, n_draws: int = 200, seed: int | None = 0):
    """Replicate the item responses at ``n_draws`` thinned posterior draws."""
    comp = compiled(model)
    flat = _flat_draws(model, dt)
    n_chain, n_draw = flat.shape[:2]
    per_chain = max(1, int(np.ceil(n_draws / n_chain)))
    idx = np.unique(np.linspace(0, n_draw - 1, min(per_chain, n_draw)).astype(int))
    rng = np.random.default_rng(seed)
    reps = np.empty((n_chain, idx.size, model.data.n_persons, len(model.data.items)))
    for c in range(n_chain):
        for j, d in enumerate(idx):
            reps[c, j] = model.simulate(comp.reported(flat[c, d]), rng)[0]
    persons = list(model.model.coords[dims.PERSON])
    items = [str(it.name) for it in model.data.items]
    dt["posterior_predictive"] = xr.DataTree(xr.Dataset(
        {"y": ((dims.CHAIN, dims.DRAW, dims.PERSON, dims.OBSERVED_ITEM), reps)},
        coords={dims.CHAIN: dt["posterior"][dims.CHAIN].values, dims.DRAW: dt["posterior"][dims.DRAW].values[idx],
                dims.PERSON: persons, dims.OBSERVED_ITEM: items}))
    y_obs = np.where(model.data.observed, model.data.y, np.nan)
    dt["observed_data"] = xr.DataTree(xr.Dataset(
        {"y": ((dims.PERSON, dims.OBSERVED_ITEM), y_obs)}, coords={dims.PERSON: persons, dims.OBSERVED_ITEM: items}))
    return dt


def compare_ml_bayes(ml: MLResult, dt) -> pd.DataFrame:
    """ML estimate and SE beside posterior mean, sd, R-hat and bulk ESS, for every
    reported parameter; ``z_diff`` = (posterior mean - ML) / posterior sd."""
    import arviz as az

    fam = ml.model
    names = [n for n in fam.reported_names if n in dt["posterior"].data_vars]
    post = dt["posterior"]
    mean = np.concatenate([post[n].mean(("chain", "draw")).to_numpy().reshape(-1) for n in names])
    sd = np.concatenate([post[n].std(("chain", "draw")).to_numpy().reshape(-1) for n in names])
    with warnings.catch_warnings():
        # constants (class_share of a 1-class model) give 0/0 in R-hat: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(dt, var_names=names)
        ess = az.ess(dt, var_names=names, method="bulk")
    rh = np.concatenate([rhat[n].to_numpy().reshape(-1) for n in names])
    es = np.concatenate([ess[n].to_numpy().reshape(-1) for n in names])
    table = fam.labels(names)
    table["class"] = table["class"].astype("Int64")
    ml_rows = ml.params.set_index("label")
    table["ml_estimate"] = ml_rows.loc[table["label"], "estimate"].to_numpy()
    table["ml_se"] = ml_rows.loc[table["label"], "se"].to_numpy()
    table["post_mean"] = mean
    table["post_sd"] = sd
    table["r_hat"] = rh
    table["ess_bulk"] = es
    table["z_diff"] = (table["post_mean"] - table["ml_estimate"]) / table["post_sd"]
    return table
