"""Choosing the number of classes: fit K = 1..K_max of one specification and
tabulate what Mplus users compare (LL, AIC, BIC, aBIC, entropy, the smallest
class, replicated best LL, TECH11's VLMR / adjusted LMR and TECH14's BLRT).

The tests themselves live in ``bayesmix.enumerate_lrt`` (formulas and caveats
there)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from bayesmix.checks import check_int
from bayesmix.enumerate_lrt import BLRTest, VLMRTest, bootstrap_lrt, vlmr_test, weighted_chi2_sf
from bayesmix.exceptions import BayesmixWarning, SpecificationError
from bayesmix.fit.ml import fit_ml

__all__ = ["ClassEnumeration", "compare_loo", "enumerate_classes", "vlmr_test", "bootstrap_lrt", "VLMRTest", "BLRTest",
           "weighted_chi2_sf"]

CRITERIA = ("aic", "bic", "abic", "lmr", "lmr_adjusted", "blrt")


@dataclass
class ClassEnumeration:
    """Result of :func:`enumerate_classes`.

    Attributes
    ----------
    table : DataFrame
        One row per K (columns in ``enumerate_classes``), with ``picked_by``.
    fits : dict
        K -> MLResult.
    tests : dict
        K -> {"lmr": VLMRTest, "blrt": BLRTest} (K-1 vs K; those computed).
    picks : dict
        Criterion ("aic", "bic", "abic", "lmr", "lmr_adjusted", "blrt") -> the K it picks.

    (The fits are not kept in ``table.attrs``: pandas deep-copies ``attrs`` on
    every operation on the frame.)
    """

    table: pd.DataFrame
    fits: dict = field(default_factory=dict)
    tests: dict = field(default_factory=dict)
    picks: dict = field(default_factory=dict)

    def __str__(self) -> str:
        cols = ["k", "loglik", "n_params", "aic", "bic", "abic", "entropy", "smallest_class", "n_best",
                "lmr_p", "lmr_adjusted_p", "blrt_p", "picked_by"]
        return "CLASS ENUMERATION\n" + self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")

    def _repr_html_(self):
        return self.table._repr_html_()


def _check_k_range(k_range) -> list[int]:
    try:
        ks = [int(k) for k in k_range]
    except TypeError:
        ks = []
    if not ks or any(k < 1 for k in ks) or ks != sorted(set(ks)):
        raise SpecificationError(f"k_range: got {k_range!r}; give increasing class counts >= 1, "
                                 "e.g. range(1, 5).")
    return ks


def _picked_by_test(ks, pvals, alpha) -> int | None:
    """The K a sequential K-1 vs K test picks: the last K before the first
    non-significant test (Nylund et al. 2007); the largest K if all are significant."""
    pick = ks[0]
    for k, p in zip(ks[1:], pvals[1:]):
        if not np.isfinite(p):
            return None
        if p >= alpha:
            break
        pick = k
    return pick


def enumerate_classes(build, data, k_range=range(1, 5), *, n_starts: int = 20, n_final: int = 5, seed: int = 0,
                      lmr: bool = True, blrt: bool = False, n_boot: int = 49,
                      blrt_starts: tuple[int, int] | None = None,
                      alpha: float = 0.05, ll_tol: float = 1e-3, executor=None, progress: bool = True,
                      fit_kwargs: dict | None = None) -> ClassEnumeration:
    """Fit ``build(data, k)`` for every K in ``k_range`` by ``fit_ml`` and tabulate them.

    Parameters
    ----------
    build : callable
        ``build(data, k) -> model``, e.g. ``lambda df, k: bm.lca(df, items, n_classes=k)``;
        any registered family. The BLRT calls it on simulated copies of ``data``.
    data : DataFrame
        The data ``build`` takes.
    k_range : iterable of int
        Increasing class counts; the K-1 vs K tests need consecutive values.
    n_starts, n_final, seed :
        Random starts of every ``fit_ml`` (same seed for each K).
    lmr : bool
        Vuong-Lo-Mendell-Rubin and adjusted LMR p-values of K-1 vs K (Mplus TECH11;
        ``vlmr_test``, whose docstring has the caveats).
    blrt : bool
        Parametric bootstrap LRT p-values (Mplus TECH14; ``bootstrap_lrt``) with
        ``n_boot`` replicates, each refitted with ``blrt_starts`` = (n_starts, n_final)
        (default: those of the main fits); ``executor`` runs the replicates in
        parallel (see ``bootstrap_lrt``).
    alpha : float
        Level at which a sequential test stops (the K it picks is the last K
        before the first p >= alpha).

    Returns
    -------
    ClassEnumeration; its ``table`` has one row per K: ``k, loglik, n_params, aic, bic, abic, entropy,
    smallest_class`` (smallest model-implied share of the primary class variable),
    ``smallest_count`` (persons in the smallest most-likely class), ``n_best`` (of
    the completed starts, how many reached the best LL within ``ll_tol``),
    ``n_completed``, ``lmr_p``, ``lmr_adjusted_p``, ``blrt_p`` (NaN where not
    computed, and for the first K) and ``picked_by`` (the criteria that pick this
    K: AIC, BIC, aBIC minimal; LMR / adjusted LMR / BLRT sequential); ``fits``,
    ``tests`` and ``picks`` hold the MLResults, the test objects and the picks.
    """
    ks = _check_k_range(k_range)
    check_int("n_boot", n_boot, 1)
    if not 0 < alpha < 1:
        raise SpecificationError(f"alpha: got {alpha!r}; give a level in (0, 1), e.g. 0.05.")
    fit_kwargs = dict(fit_kwargs or {})
    if blrt and 1.0 / (n_boot + 1) >= alpha:
        warnings.warn(f"enumerate_classes: with n_boot={n_boot} the smallest BLRT p-value is 1/{n_boot + 1} >= "
                      f"alpha={alpha}, so the BLRT can never reject; raise n_boot (e.g. 99).", BayesmixWarning,
                      stacklevel=2)
    fits = {}
    for k in tqdm(ks, desc="classes", disable=not progress, leave=False):
        fits[k] = fit_ml(build(data, k), n_starts=n_starts, n_final=n_final, seed=seed, ll_tol=ll_tol,
                         progress=False, **fit_kwargs)
    b_starts = blrt_starts or (n_starts, n_final)
    tests: dict[int, dict] = {k: {} for k in ks}
    rows = []
    for i, k in enumerate(ks):
        res = fits[k]
        finals = res.starts["loglik_final"].to_numpy(float)
        share = res.class_proportions()
        row = {"k": k, "loglik": res.loglik, "n_params": res.n_params, "aic": res.aic, "bic": res.bic,
               "abic": res.abic, "entropy": res.entropy, "smallest_class": float(np.min(share["model"])),
               "smallest_count": int(np.min(share["count_most_likely"])),
               "n_best": int(res.convergence["n_best"]), "n_completed": int(np.isfinite(finals).sum()),
               "lmr_p": np.nan, "lmr_adjusted_p": np.nan, "blrt_p": np.nan}
        prev = ks[i - 1] if i else None
        if prev is not None and prev == k - 1:
            if lmr:
                t = vlmr_test(fits[prev], res)
                tests[k]["lmr"] = t
                row.update(lmr_p=t.p_value, lmr_adjusted_p=t.adjusted_p_value)
                res.class_tests["lmr"] = {"k_null": t.k_null, "k_alt": t.k_alt, "loglik_null": float(t.loglik_null),
                                          "statistic": float(t.statistic), "df": int(t.df),
                                          "p_value": float(t.p_value),
                                          "adjusted_statistic": float(t.adjusted_statistic),
                                          "adjusted_p_value": float(t.adjusted_p_value)}
            if blrt:
                t = bootstrap_lrt(build, data, fits[prev], res, n_boot=n_boot, n_starts=b_starts[0],
                                  n_final=b_starts[1], seed=seed + k, executor=executor, progress=progress,
                                  fit_kwargs=fit_kwargs)
                tests[k]["blrt"] = t
                row["blrt_p"] = t.p_value
                res.class_tests["blrt"] = {"k_null": t.k_null, "k_alt": t.k_alt, "statistic": float(t.statistic),
                                           "p_value": float(t.p_value), "n_boot": int(t.n_boot)}
        rows.append(row)
    table = pd.DataFrame(rows)
    picks = {c: int(table.loc[table[c].idxmin(), "k"]) for c in ("aic", "bic", "abic")}
    for name, col, on in (("lmr", "lmr_p", lmr), ("lmr_adjusted", "lmr_adjusted_p", lmr), ("blrt", "blrt_p", blrt)):
        if on and len(ks) > 1:
            picks[name] = _picked_by_test(ks, table[col].to_numpy(float), alpha)
    names = {"aic": "AIC", "bic": "BIC", "abic": "aBIC", "lmr": "LMR", "lmr_adjusted": "aLMR", "blrt": "BLRT"}
    table["picked_by"] = [", ".join(names[c] for c, v in picks.items() if v == k) for k in table["k"]]
    return ClassEnumeration(table=table, fits=fits, tests=tests, picks=picks)


def compare_loo(posteriors, *, method: str = "stacking") -> pd.DataFrame:
    """PSIS-LOO across models fitted to the same data (e.g. K = 1..K_max with NUTS
    or ``fit_laplace``): ``arviz.compare`` on each posterior's pointwise
    ``loglik``, which is per cluster for two-level models and per person
    otherwise (leave-one-cluster-out: the cluster is the exchangeable unit).

    Parameters
    ----------
    posteriors : dict
        Label (e.g. ``"K=2"`` or 2) -> DataTree with a ``log_likelihood`` group
        (``bayesmix.sample`` and ``fit_laplace`` add it).
    method : str
        ArviZ's weighting method ("stacking", "bb-pseudo-bma", "pseudo-bma").

    Returns
    -------
    DataFrame
        ArviZ's comparison table, unrounded (rank, elpd, p, elpd_diff, weight, se,
        dse, warning) plus ``unit``, ``pareto_k_threshold`` (ArviZ's, from the number of
        draws) and ``n_bad_pareto_k`` (units above it, whose importance weights are
        unreliable: refit those or use K-fold CV).
    """
    import arviz as az

    if not isinstance(posteriors, dict) or len(posteriors) < 2:
        raise SpecificationError(f"compare_loo: posteriors: got {type(posteriors).__name__} with "
                                 f"{len(posteriors) if hasattr(posteriors, '__len__') else 0} entries; give a dict "
                                 "label -> DataTree of at least two models.")
    units = {}
    for label, dt in posteriors.items():
        groups = getattr(dt, "children", {})
        if "log_likelihood" not in groups or "loglik" not in dt["log_likelihood"].data_vars:
            raise SpecificationError(f"compare_loo: posteriors[{label!r}] has no log_likelihood/loglik; use the "
                                     "DataTree of bayesmix.sample or bayesmix.fit_laplace.")
        da = dt["log_likelihood"]["loglik"]
        unit = [d for d in da.dims if d not in ("chain", "draw")][0]
        units[label] = (unit, tuple(np.asarray(da[unit].values).tolist()))
    first = next(iter(units.values()))
    differ = [lab for lab, u in units.items() if u != first]
    if differ:
        raise SpecificationError(f"compare_loo: posteriors {differ} have other units ({units[differ[0]][0]}: "
                                 f"{len(units[differ[0]][1])}) than the first ({first[0]}: {len(first[1])}); LOO "
                                 "compares models of the same data only.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ repeats the Pareto-k warning per model
        loos = {str(k): az.loo(dt, var_name="loglik", pointwise=True) for k, dt in posteriors.items()}
        table = az.compare(loos, method=method, round_to="none")  # one PSIS-LOO per model, reused
    table["unit"] = first[0]
    # ArviZ's own threshold: it depends on the number of draws (0.7 only for >= 2200 draws)
    table["pareto_k_threshold"] = [float(loos[str(i)].good_k) for i in table.index]
    table["n_bad_pareto_k"] = [int(np.sum(np.asarray(loos[str(i)].pareto_k) > loos[str(i)].good_k))
                               for i in table.index]
    return table
