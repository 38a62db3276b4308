"""A derived quantity defined once, with its uncertainty from either estimator
(issue 10, part 6).

A derived quantity is a function ``fn(natural) -> {name: array}`` of the
natural-scale values (the model's reported quantities: ``MLResult.natural``, or
one posterior draw). ``derive`` evaluates that one definition

* at the ML (or MAP) estimate, with a delta-method SE: the Jacobian of ``fn``
  through the compiled map theta -> natural by central differences (step 1e-5:
  truncation ~1e-10, rounding ~1e-11 on O(1) values), J cov J'; a quantity driven
  by a parameter held at its bound gets no SE (``results.bound_driven``);
* on every draw of a posterior DataTree (NUTS or ``fit_laplace``): mean, sd and
  an equal-tailed interval.

The ICC (``bayesmix.icc``) and the LTA's R² (``bayesmix.lta_r_squared``) are
written this way, so their ML SE and their posterior come from the same code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.exceptions import SpecificationError
from bayesmix.fit.compiled import compiled
from bayesmix.fit.results import MLResult, bound_driven

STEP = 1e-5


def _flatten(values: dict) -> tuple[list[str], np.ndarray]:
    labels, flat = [], []
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        if v.ndim == 0:
            labels.append(name)
        else:
            labels += [f"{name}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*v.shape)]
        flat.append(v.reshape(-1))
    return labels, np.concatenate(flat) if flat else np.zeros(0)


def _posterior_naturals(dt, needed):
    post = dt["posterior"]
    missing = [n for n in needed if n not in post.data_vars]
    if missing:
        raise SpecificationError(f"derive: the posterior has no {missing}; give the DataTree of bayesmix.sample or "
                                 "bayesmix.fit_laplace for this model.")
    arrays = {n: post[n].to_numpy() for n in needed}
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    arrays = {n: a.reshape(n_draws, *a.shape[2:]) for n, a in arrays.items()}
    return [{n: arrays[n][i] for n in needed} for i in range(n_draws)]


def derive(result, fn, *, needs=None, prob: float = 0.95) -> pd.DataFrame:
    """Evaluate ``fn(natural) -> {name: array}`` with its uncertainty.

    Parameters
    ----------
    result : MLResult or xarray.DataTree
        A fit (delta method) or a posterior (draws).
    needs : list of str, optional
        The natural-scale names ``fn`` reads (posterior: only these are
        gathered per draw; default every reported quantity of the fit, or every
        posterior variable).
    prob : float
        Coverage of the interval (Wald for a fit, equal-tailed for draws).

    Returns
    -------
    DataFrame indexed by the quantity's label (``name`` or ``name[i, j]``):
    ``estimate``, ``se`` (fit) or ``sd`` (posterior), ``lower``, ``upper``.
    """
    if not 0 < prob < 1:
        raise SpecificationError(f"prob: got {prob!r}; give a probability in (0, 1) such as 0.95.")
    if isinstance(result, MLResult):
        labels, est = _flatten(fn(result.natural))
        comp = compiled(result.model)
        theta = np.asarray(result.theta, float)
        jac = np.empty((est.size, theta.size))
        for i in range(theta.size):
            step = np.zeros_like(theta)
            step[i] = STEP
            jac[:, i] = (_flatten(fn(comp.reported(theta + step)))[1]
                         - _flatten(fn(comp.reported(theta - step)))[1]) / (2 * STEP)
        var = np.einsum("rp,pq,rq->r", jac, np.asarray(result.cov, float), jac)
        se = np.sqrt(np.where(var > 1e-20, var, np.nan))
        fixed = np.isin(comp.packing.labels(), (result.convergence or {}).get("fixed_at_bound", []))
        se[bound_driven(jac, fixed)] = np.nan
        z = stats.norm.ppf(0.5 + prob / 2)
        return pd.DataFrame({"estimate": est, "se": se, "lower": est - z * se, "upper": est + z * se},
                            index=pd.Index(labels, name="quantity"))
    if not (hasattr(result, "children") and "posterior" in result.children):
        raise SpecificationError(f"derive: got {type(result).__name__}; give an MLResult or a posterior DataTree.")
    needed = list(needs) if needs is not None else list(result["posterior"].data_vars)
    draws = [_flatten(fn(nat)) for nat in _posterior_naturals(result, needed)]
    labels = draws[0][0]
    values = np.stack([d[1] for d in draws])
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return pd.DataFrame({"estimate": values.mean(axis=0), "sd": values.std(axis=0), "lower": lo, "upper": hi},
                        index=pd.Index(labels, name="quantity"))
