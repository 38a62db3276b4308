"""The 3PL guessing model as a special case of the FMA-GoM (paper section 9) on real data.

Data: ``bm.load_dataset("ability")`` (psychTools ``ability``: 1525 web respondents of the
SAPA project, 16 ICAR items scored correct/incorrect, 1143 empty cells, kept: full
information; the 16 persons who answered none are dropped by ``prepare_wide``).

Fits, all with the probit link (Psi = Phi in eq. 42) and 61 trapezoid nodes on eta_j:

* the 3PL fitted directly, ``bm.irt_3pl(..., parameterization="direct")``: free
  gamma_i = logit g_i, a_i, b_i of eq. (42);
* the same 3PL as the constrained 2-class FMA-GoM of eq. (43)-(47),
  ``parameterization="fma_gom"``: alpha_1j = 0, lambda_i1 = 0, tau_i1 = 15 held as
  constants, free tau_i2, lambda_i2, gamma_i; g, a, b by eq. (48)-(50) with
  delta-method SEs. Both are fitted from their own random starts; their LLs agree
  to the optimizer's tolerance (~1e-6 and below), and so do g, a, b and their SEs;
* the 2PL (g_i = 0), ``bm.irt_2pl``, for the likelihood-ratio test 2PL vs 3PL.

The LR test is at the boundary: the 2PL is the 3PL with every g_i = 0, the edge of
the parameter space, so LR is not chi-square(16) under H0 but (for nearly
orthogonal g_i) the chi-bar-square mixture sum_k C(16, k) 2^-16 chi-square(k); the
chi-square(16) p-value is conservative (too large). Both are printed. Items whose g_i
runs to its bound (gamma_i = -15, g = 3e-7) have no SE (ARCHITECTURE decision 9),
in both parameterisations.

    python models/irt_3pl_ability.py            # all 1525 x 16, STARTS = 8 2
    python models/irt_3pl_ability.py --quick    # the first 500 persons x 8 items, STARTS = 3 1
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import special, stats

import bayesmix as bm
from bayesmix.exceptions import BayesmixWarning, DroppedRowsWarning

LINK = "probit"
FULL_STARTS, QUICK_STARTS = (8, 2), (3, 1)
QUICK = {"n": 500, "items": 8}
DEFAULT_SEED = 1


def load(quick: bool = False) -> pd.DataFrame:
    """The ability items (quick: the first ``QUICK["n"]`` rows and ``QUICK["items"]`` columns)."""
    df = bm.load_dataset("ability")
    return df.iloc[:QUICK["n"], :QUICK["items"]].copy() if quick else df


def _fit(model, starts, seed):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", BayesmixWarning)
        t = time.perf_counter()
        res = bm.fit_ml(model, n_starts=starts[0], n_final=starts[1], seed=seed, progress=False)
        sec = time.perf_counter() - t
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in got
                               if issubclass(w.category, BayesmixWarning)
                               and not issubclass(w.category, DroppedRowsWarning)))
    return res, sec, texts


def gab_table(direct, fma_gom) -> pd.DataFrame:
    """Items x (g, a, b) estimates and SEs from both parameterisations (eq. 48-50)."""
    items = [it.name for it in direct.model.data.items]
    out = {}
    for tag, res in (("direct", direct), ("fma_gom", fma_gom)):
        p = res.params.set_index("label")
        for name in ("g", "a", "b"):
            labels = [f"{name}[{it}]" for it in items]
            out[(name, tag, "est")] = p.loc[labels, "estimate"].to_numpy(float)
            out[(name, tag, "se")] = p.loc[labels, "se"].to_numpy(float)
    table = pd.DataFrame(out, index=pd.Index(items, name="item"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["parameter", "fit", "value"])
    return table


def chibar_p(lr: float, k: int) -> float:
    """P(chi-bar-square >= lr) for k independent boundary parameters: weights C(k, j) 2^-k
    on chi-square(j), j = 0..k (chi-square(0) is a point mass at 0)."""
    w = special.comb(k, np.arange(k + 1)) / 2.0**k
    tail = np.array([float(lr <= 0)] + [stats.chi2.sf(lr, j) for j in range(1, k + 1)])
    return float(np.sum(w * tail))


def run(quick: bool = False, seed: int = DEFAULT_SEED, starts=None) -> dict:
    """Fit the 3PL both ways and the 2PL. Returns {"fits" {"3PL direct", "3PL fma_gom", "2PL"},
    "gab" (table), "lrt" (bm.LRTest), "chibar_p", "ll_gap", "checks", "seconds", "warnings", "settings"}."""
    df = load(quick)
    starts = tuple(starts or (QUICK_STARTS if quick else FULL_STARTS))
    fits, seconds, caught = {}, {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedRowsWarning)  # the persons without any answer
        models = {"3PL direct": bm.irt_3pl(df, link=LINK, parameterization="direct"),
                  "3PL fma_gom": bm.irt_3pl(df, link=LINK, parameterization="fma_gom"),
                  "2PL": bm.irt_2pl(df, link=LINK)}
    for name, model in models.items():
        fits[name], seconds[name], caught[name] = _fit(model, starts, seed)
    d, f, two = fits["3PL direct"], fits["3PL fma_gom"], fits["2PL"]
    gab = gab_table(d, f)
    lrt = bm.lr_test(two, d)
    gap = d.loglik - f.loglik
    est_diff = max(float(np.nanmax(np.abs(gab[(n, "direct", "est")] - gab[(n, "fma_gom", "est")])))
                   for n in ("g", "a", "b"))
    checks = [("3PL LL direct = LL as the constrained FMA-GoM (|gap| < 1e-6)", bool(abs(gap) < 1e-6)),
              ("g, a, b agree between the parameterisations (max |diff| < 1e-3)", bool(est_diff < 1e-3)),
              ("3PL LL >= 2PL LL (nested at g = 0)", bool(d.loglik >= two.loglik - 1e-6))]
    return {"fits": fits, "gab": gab, "lrt": lrt, "chibar_p": chibar_p(lrt.lr, lrt.df), "ll_gap": gap,
            "est_diff": est_diff, "checks": checks, "seconds": seconds, "warnings": caught,
            "settings": {"n_persons": d.n_obs, "n_items": df.shape[1], "starts": starts, "seed": seed,
                         "missing": int(df.isna().sum().sum())}}


def _fmt(v, width=7, digits=3):
    return f"{v:{width}.{digits}f}" if np.isfinite(v) else f"{'--':>{width}}"


def report(out: dict) -> str:
    s, fits, gab, lrt = out["settings"], out["fits"], out["gab"], out["lrt"]
    lines = [f"Section 9: the 3PL (eq. 42) on the ability data (ICAR, psychTools), {s['n_persons']} persons x "
             f"{s['n_items']} items ({s['missing']} empty cells, full information), {LINK} link, "
             f"STARTS = {s['starts'][0]} {s['starts'][1]} per model.", ""]
    head = f"{'model':<13}{'LL':>16}{'#par':>6}{'BIC':>12}{'best/done':>11}{'fit s':>8}"
    lines += [head, "-" * len(head)]
    for name, r in fits.items():
        done = int(r.starts["loglik_final"].notna().sum())
        lines.append(f"{name:<13}{r.loglik:>16.6f}{r.n_params:>6}{r.bic:>12.2f}"
                     f"{str(r.convergence['n_best']) + '/' + str(done):>11}{out['seconds'][name]:>8.1f}")
    lines += ["", f"LL(3PL direct) - LL(3PL as FMA-GoM) = {out['ll_gap']:.2e}; max |g, a, b difference| "
                  f"{out['est_diff']:.2e}", "",
              "g, a, b (eq. 48-50): estimate (SE), direct | constrained FMA-GoM",
              f"{'item':<10}" + "".join(f"{n + ' direct':>17}{n + ' fma_gom':>17}" for n in ("g", "a", "b"))]
    for item in gab.index:
        row = f"{item:<10}"
        for n in ("g", "a", "b"):
            for tag in ("direct", "fma_gom"):
                e, se = gab.loc[item, (n, tag, "est")], gab.loc[item, (n, tag, "se")]
                row += f"{_fmt(e)} ({_fmt(se, 6)})"[:17].rjust(17)
        lines.append(row)
    lines += ["", f"LR test 2PL vs 3PL: LR = {lrt.lr:.2f} on {lrt.df} df; chi-square({lrt.df}) p = {lrt.p:.3g}; "
                  f"chi-bar-square p = {out['chibar_p']:.3g}",
              "  (boundary: H0 puts every g_i at 0, the edge of the parameter space, so chi-square(df) is "
              "conservative;", "   the chi-bar-square mixture sum_k C(df, k) 2^-df chi-square(k) assumes nearly "
              "independent g_i.)"]
    if np.isfinite(lrt.scaled_lr):
        lines.append(f"  MLR-scaled LR = {lrt.scaled_lr:.2f}, p = {lrt.scaled_p:.3g}")
    lines += ["", "Checks:"] + [f"  [{'ok' if ok else 'NO'}] {t}" for t, ok in out["checks"]]
    for name, texts in out["warnings"].items():
        lines += [f"{name} warning: {t}" for t in texts]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"the first {QUICK['n']} persons x {QUICK['items']} items, "
                                                         f"STARTS = {QUICK_STARTS[0]} {QUICK_STARTS[1]}")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the random starts")
    args = ap.parse_args(argv)
    out = run(args.quick, args.seed)
    print(report(out))
    return out


if __name__ == "__main__":
    main()
