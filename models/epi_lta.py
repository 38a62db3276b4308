"""Latent transition analysis of the Eysenck Personality Inventory given twice (paper section 3).

Real data: ``bm.load_dataset("epi")`` (psychTools ``epiR``, 474 persons who answered the
57 EPI items twice, a few weeks apart; long form, one row per person and occasion). The
analysis is the one a user would run (paper sections 3, 7 and 10):

(a) the number of classes K is chosen by BIC at each occasion separately: an LCA
    (eq. 1-2) of the occasion's items for K = 1..4 (table of LL, #par, AIC, BIC, entropy);
(b) the LTA (eqs. 6-9, first-order Markov, reference class K) with that K is fitted with
    measurement invariance (one threshold set tau for both occasions) and without
    (``invariance=False``: occasion-specific tau), and invariance is tested by the
    likelihood-ratio test ``bm.lr_test`` (df = difference in free parameters,
    (T - 1) K P for P binary items; with MLR also the Satorra-Bentler scaled test);
(c) the invariant model is reported: class profiles P(item = code | class), model-implied
    class shares at each occasion (Deterministics ``class_share_C1``/``class_share_C2``) and
    the transition matrix P(C_2 = k | C_1 = j) (``transition_prob``), all with delta-method
    SEs (``MLResult.params``: the Jacobian of each Deterministic times the MLR covariance),
    the counts of the most likely class paths (Viterbi, ``bm.most_likely_paths``) and, for
    K = 2, the R^2 of C_2 on C_1 (eq. 14, ``bm.lta_r_squared``).

Items. The five items of ``bm.dataset_items("epi")``: V2, V9, V16, V40, V50. All five are
positively keyed items of the neuroticism scale N of psychTools' ``epi.keys`` (the key in
the example of ``?epi``), so the higher code (2) is the answer that raises the N score.
They were chosen (``bayesmix/data/datasets/README.md``) because one trait gives the
classes one meaning (higher / lower neuroticism) that should be stable over a few weeks,
which is what a transition table describes; their endorsement is moderate (share of
code 2: 0.45-0.51), so no class is pinned at 0 or 1; few cells are missing (13-19 of 948
rows, kept: full information); and 2^5 = 32 patterns per occasion keep fits fast.

    python models/epi_lta.py            # STARTS = 20 5 for every fit (about 15 s on 2 idle cores)
    python models/epi_lta.py --quick    # STARTS = 5 2 (about 10 s idle, 20 s on a loaded machine)

What it finds (full settings): K = 2 at both occasions by BIC (2979 and 2993 against 3004
and 3007 for K = 3); invariance is not rejected by the plain LR test at 5% (17.9 on 10 df,
p = 0.056) but is by the MLR-scaled test (28.9, p = 0.001; the invariant model's scaling
correction is 1.34 against 1.02, a sign of its misfit); the lower-N class is absorbing
(gamma_1_2 runs to its bound (30), P(stay) = 1.000, no SE) and 6.8% (SE 3.3%) of the
higher-N class move to the lower-N class; most likely paths: 262 stay lower-N, 204 stay
higher-N, 8 move from higher to lower N. The R^2 of eq. (14), 0.944, is the value at
gamma's bound (it tends to 1 as gamma grows) and has no SE.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayesmix as bm

ITEMS = bm.dataset_items("epi")
PERSON, TIME = "person", "time"
K_RANGE = (1, 2, 3, 4)
FULL_STARTS, QUICK_STARTS = (20, 5), (5, 2)
DEFAULT_SEED = 1


def load():
    """The epi data (long: person, time, V1..V57) and the item columns of the LTA."""
    return bm.load_dataset("epi"), list(ITEMS)


def fit(model, starts, seed, start=None):
    """fit_ml without progress output; the bayesmix warnings of the fit are returned
    as text (deduplicated) instead of printed, so that the report shows them once."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", bm.BayesmixWarning)
        res = bm.fit_ml(model, n_starts=starts[0], n_final=starts[1], seed=seed, start=start, progress=False)
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in got
                               if issubclass(w.category, bm.BayesmixWarning)
                               and not issubclass(w.category, bm.DroppedRowsWarning)))
    return res, texts


def bic_tables(df, items, starts, seed, k_range=K_RANGE) -> dict:
    """Occasion -> comparison table of the LCAs with K in ``k_range`` (``bm.compare_fits``:
    loglik, n_params, aic, bic, abic, entropy, best_ll_replicated), indexed by K."""
    out = {}
    for occ in sorted(df[TIME].unique()):
        wide = df[df[TIME] == occ]
        fits = {}
        with warnings.catch_warnings():
            # persons without any of the five items at this occasion are left out of
            # its LCA (5 per occasion); the LTA keeps them through the other occasion
            warnings.simplefilter("ignore", bm.DroppedRowsWarning)
            for k in k_range:
                fits[k] = fit(bm.lca(wide, items, n_classes=k), starts, seed)[0]
        table = bm.compare_fits(fits)
        table.index = pd.Index(list(k_range), name="K")
        table.attrs["n_obs"] = fits[k_range[0]].n_obs
        out[occ] = table
    return out


def invariant_start(restricted, full_model) -> dict:
    """The invariant ML point written in the occasion-specific model (tau repeated for
    each occasion, the class model unchanged): there the non-invariant model has the
    restricted LL, so its fit from this start cannot end below it (nesting)."""
    point = {k: np.array(v, dtype=float, copy=True) for k, v in restricted.point.items()}
    n_t = full_model.spec.n_occasions
    for name in ("tau", "tau_raw"):
        if name in point:  # (K, P) -> (K, T * P), occasion-major as the free model's columns
            point[name] = np.tile(point[name], (1, n_t))
    return point


def transition_table(res) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transition matrix P(C_2 = k | C_1 = j) (rows j) and its delta-method SEs."""
    k = res.n_classes
    rows = res.params[res.params.parameter == "transition_prob"]
    idx = pd.Index(range(1, k + 1), name="from C1")
    cols = pd.Index(range(1, k + 1), name="to C2")
    est = pd.DataFrame(rows["estimate"].to_numpy().reshape(-1, k, k)[0], index=idx, columns=cols)
    se = pd.DataFrame(rows["se"].to_numpy().reshape(-1, k, k)[0], index=idx, columns=cols)
    return est, se


def class_shares(res) -> pd.DataFrame:
    """Model-implied class shares per occasion with SEs (class_share_C1, class_share_C2)."""
    out = {}
    for cv in res.model.class_variables:
        rows = res.params[res.params.parameter == cv.share]
        out[f"{cv.name} share"] = rows["estimate"].to_numpy()
        out[f"{cv.name} se"] = rows["se"].to_numpy()
    return pd.DataFrame(out, index=pd.Index(range(1, res.n_classes + 1), name="class"))


def profiles(res) -> pd.DataFrame:
    """P(item = 2 | class): items as rows, classes as columns (code 2 raises the N score)."""
    tab = res.item_probabilities()
    tab = tab[tab["category"] == tab.groupby("item")["category"].transform("max")]
    out = tab.pivot(index="item", columns="class", values="probability").loc[list(res.model.spec.item_names)]
    out.columns = pd.Index([f"class {c}" for c in out.columns], name="P(code 2)")
    return out


def path_counts(res) -> pd.DataFrame:
    """Persons by most likely class path (C1 class x C2 class)."""
    paths = bm.most_likely_paths(res)
    occ = list(res.model.spec.occasions)
    return pd.crosstab(paths[occ[0]], paths[occ[1]], rownames=["C1"], colnames=["C2"])


def run(quick: bool = False, seed: int = DEFAULT_SEED, k_range=K_RANGE, starts=None) -> dict:
    """The whole analysis. Returns {"bic": occasion -> table, "chosen_k": occasion -> K,
    "k": K of the LTA, "invariant", "free" (MLResults), "lrt" (LRTest), "profiles",
    "shares", "transition", "transition_se", "paths", "r2" (or None), "warnings",
    "seconds" (per step), "starts"}. ``starts`` (n_starts, n_final) overrides the quick / full
    random starts."""
    starts = starts or (QUICK_STARTS if quick else FULL_STARTS)
    df, items = load()
    seconds = {}
    t = time.perf_counter()
    bic = bic_tables(df, items, starts, seed, k_range)
    seconds["LCA per occasion"] = time.perf_counter() - t
    chosen = {occ: int(tab["bic"].idxmin()) for occ, tab in bic.items()}
    # the LTA has one K for every occasion: the larger of the occasions' choices when they
    # differ (a class that is empty at one occasion is a share near 0, not a misfit)
    k = max(chosen.values())
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.DroppedRowsWarning)
        inv_model = bm.lta(df, items, k, person=PERSON, time=TIME)
        free_model = bm.lta(df, items, k, person=PERSON, time=TIME, invariance=False)
    invariant, warn_inv = fit(inv_model, starts, seed)
    seconds["LTA invariant"] = time.perf_counter() - t
    t = time.perf_counter()
    free, warn_free = fit(free_model, starts, seed, start=invariant_start(invariant, free_model))
    seconds["LTA occasion-specific"] = time.perf_counter() - t
    lrt = bm.lr_test(invariant, free)
    est, se = transition_table(invariant)
    t = time.perf_counter()
    r2 = bm.lta_r_squared(invariant) if k == 2 and len(invariant.model.spec.occasions) == 2 else None
    paths = path_counts(invariant)
    seconds["paths and R2"] = time.perf_counter() - t
    return {"bic": bic, "chosen_k": chosen, "k": k, "invariant": invariant, "free": free, "lrt": lrt,
            "profiles": profiles(invariant), "shares": class_shares(invariant), "transition": est,
            "transition_se": se, "paths": paths, "r2": r2, "starts": starts, "seconds": seconds,
            "warnings": {"invariant": warn_inv, "occasion-specific": warn_free}}


def _fmt(x):
    return f"{x:.3f}"


def _at_bound(res) -> list[str]:
    """Raw parameters fit_ml held at a bound (labels)."""
    return list(res.convergence.get("fixed_at_bound", []))


def report(out: dict) -> str:
    inv, free, lrt = out["invariant"], out["free"], out["lrt"]
    k = out["k"]
    lines = [f"EPI latent transition analysis: {inv.n_obs} persons, items {', '.join(ITEMS)} "
             f"(neuroticism, code 2 raises N) at two occasions; STARTS = {out['starts'][0]} {out['starts'][1]}.",
             "", "(a) Number of classes by BIC, LCA at each occasion separately"]
    for occ, tab in out["bic"].items():
        show = tab[["loglik", "n_params", "aic", "bic", "entropy", "best_ll_replicated"]]
        lines += ["", f"  occasion {occ} (n = {tab.attrs.get('n_obs', '?')} persons with an item observed):",
                  show.to_string(float_format=_fmt), f"  lowest BIC: K = {out['chosen_k'][occ]}"]
    lines += ["", f"LTA with K = {k} (the largest of the occasions' choices).", "",
              "(b) Measurement invariance: invariant (H0) against occasion-specific thresholds (H1)",
              str(lrt), ""]
    lines += ["(c) Invariant LTA", "", "  Class profiles P(item = 2 | class):",
              out["profiles"].to_string(float_format=_fmt), "",
              "  Model-implied class shares (delta-method SE):", out["shares"].to_string(float_format=_fmt), "",
              "  Transition matrix P(C2 = k | C1 = j), SE in parentheses:"]
    est, se = out["transition"], out["transition_se"]
    cells = est.copy().astype(object)
    for j in est.index:
        for c in est.columns:
            cells.loc[j, c] = f"{est.loc[j, c]:.3f} ({se.loc[j, c]:.3f})"
    lines += [cells.to_string()]
    bound = _at_bound(inv)
    if bound:
        lines += [f"  Held at a bound by fit_ml (no SE): {', '.join(bound)}. A gamma at its bound is a transition "
                  "that (nearly) never happens: the transition probabilities it drives are at 0 or 1 and their "
                  "delta-method SEs (~0) carry no information."]
    lines += ["", "  Most likely class paths (persons, Viterbi):", out["paths"].to_string()]
    if out["r2"] is not None:
        r2 = out["r2"].iloc[0]
        lines += ["", f"  R^2 of C2 on C1 (eq. 14): {r2['estimate']:.3f} (SE {r2['se']:.3f})"]
        if any(b.startswith("gamma") for b in bound):
            # eq. (14): R^2 = gamma^2 Var(I) / (gamma^2 Var(I) + pi^2/3) -> 1 as gamma -> infinity
            lines += ["  gamma is at its bound, so this R^2 is the value at the bound (it tends to 1 as gamma "
                      "grows, at almost no change in LL) and its SE is not meaningful."]
    lines += ["", f"  LL invariant {inv.loglik:.3f} ({inv.n_params} par), occasion-specific {free.loglik:.3f} "
                  f"({free.n_params} par)",
              "  Times (incl. compilation): " + ", ".join(f"{n} {s:.1f} s" for n, s in out["seconds"].items())]
    for name, texts in out["warnings"].items():
        for text in texts:
            lines.append(f"  {name} fit warning: {text}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="STARTS = 5 2 for every fit")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the random starts")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    out = run(quick=args.quick, seed=args.seed)
    print(report(out))
    print(f"\nTotal {time.perf_counter() - t:.1f} s")
    return out


if __name__ == "__main__":
    main()
