"""Model comparison tables (LL, parameters, AIC, BIC, aBIC, entropy)."""

from __future__ import annotations

import pandas as pd

from bayesmix.exceptions import SpecificationError


def compare_fits(fits) -> pd.DataFrame:
    """One row per ML fit: classes, LL, free parameters, AIC, BIC, sample-size
    adjusted BIC, entropy, and how many completed starts reached the best LL.

    ``fits`` is a list of ``MLResult`` or a dict label -> ``MLResult``.
    """
    from bayesmix.fit.results import MLResult

    items = fits.items() if isinstance(fits, dict) else [(None, f) for f in fits]
    rows = []
    for label, res in items:
        if not isinstance(res, MLResult):
            raise SpecificationError(f"compare_fits: got {type(res).__name__}; give MLResult objects from fit_ml.")
        rows.append({
            "model": label if label is not None else f"{res.model.family} K={res.n_classes}",
            "classes": res.n_classes, "loglik": res.loglik, "n_params": res.n_params,
            "aic": res.aic, "bic": res.bic, "abic": res.abic, "entropy": res.entropy,
            "best_ll_replicated": res.convergence["n_best"],
        })
    table = pd.DataFrame(rows).set_index("model")
    ns = {res.n_obs for _, res in (fits.items() if isinstance(fits, dict) else [(None, f) for f in fits])}
    if len(ns) > 1:
        raise SpecificationError(f"compare_fits: the fits use different numbers of observations {sorted(ns)}; "
                                 "information criteria are only comparable on the same data.")
    return table
