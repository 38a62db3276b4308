"""Table 2 of the paper (section 5): MSE of the class logit alpha_1 when the
latent class is a within- or a between-level variable.

Design (eq. 19): Y_ij = mu_cj + beta_cj X_ij + e_ij, two classes of equal size
(alpha_1 = 0), class means of the random intercept / slope mu = 1 / 0 and
beta = 0.2 / 0.8, theta = 1, X ~ N(0, 1), 50 clusters x 10 persons. The random
intercept and slope have variance v each and covariance 0.

    Model 1  class within  (C_ij),  v = 0
    Model 2  class between (C_j),   v = 0
    Model 3  class between (C_j),   v = 0.1
    Model 4  class between (C_j),   v = 0.2

Every model is generated and fitted with the correct specification (Models
1-2 without random effects since v = 0; Models 3-4 with a random intercept and
slope of diagonal covariance), R samples each, by ``bayesmix.run_simulation``
(parallel worker processes that reuse the compiled model through
``set_data``). Estimates are aligned to the true labelling by the
class-specific mu and beta before the MSE is computed.

    python models/table2_class_level_mse.py             # R = 100 per model, STARTS = 20 5 (as the paper)
    python models/table2_class_level_mse.py --quick     # R = 10 per model, STARTS = 10 3 (about 25 s)
    python models/table2_class_level_mse.py --reps 200 --jobs 2 --seed 3 --out table2.csv

Prints, per model: MSE(alpha_1) with its Monte Carlo SE beside the paper's
value, bias, coverage of the 95% Wald intervals, the share of converged fits,
then a check of the paper's ordering and of the agreement within 2 MC SEs.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import bayesmix as bm
from bayesmix.simulate import simulate_mixture_regression

# Paper, section 5, Table 2 ("Model specification and MSE of alpha_1"), 100 samples per model.
PAPER_MSE_ALPHA1 = {1: 0.31, 2: 0.10, 3: 0.26, 4: 0.44}
N_CLUSTERS, CLUSTER_SIZE = 50, 10
MODELS = {  # model -> (class_level, v)
    1: ("within", 0.0),
    2: ("between", 0.0),
    3: ("between", 0.1),
    4: ("between", 0.2),
}
# Mplus STARTS = 20 5 as in the paper; a warm 20/5 fit takes 0.1-0.4 s here, so
# the full 400-fit run needs no reduction (about 2 minutes on 2 cores).
FULL_STARTS, QUICK_STARTS = (20, 5), (10, 3)
FULL_REPS, QUICK_REPS = 100, 10
LABEL = "alpha[1]"


def design(model: int, starts=FULL_STARTS) -> bm.SimulationDesign:
    """The SimulationDesign of Table 2's Model ``model`` (1-4)."""
    level, v = MODELS[model]

    def generate(rng):
        df, truth = simulate_mixture_regression(N_CLUSTERS, CLUSTER_SIZE, class_level=level, v_intercept=v,
                                                v_slope=v, seed=rng)
        truth.pop("class")  # true memberships: not a parameter
        return df, truth

    random = dict(random=["intercept", "x"], re_cov="diagonal") if v > 0 else {}

    def build(df):
        return bm.mixture_regression(df, "y", ["x"], 2, cluster="cluster", class_level=level, **random)

    return bm.SimulationDesign(f"Model {model} ({level}, v = {v:g})", generate, build,
                               {"n_starts": starts[0], "n_final": starts[1]})


def run(reps: int | None = None, jobs: int | None = None, seed: int = 0, quick: bool = False,
        progress: bool = True) -> pd.DataFrame:
    """Run the four designs; one row per model with MSE(alpha_1), its Monte Carlo
    SE, the paper's value and the other summaries. ``reps`` defaults to 100 (10
    with ``quick``); ``jobs`` to all cores."""
    reps = (QUICK_REPS if quick else FULL_REPS) if reps is None else int(reps)
    starts = QUICK_STARTS if quick else FULL_STARTS
    rows = []
    for model, (level, v) in MODELS.items():
        # a different seed per model, so the four designs do not share draws
        res = bm.run_simulation(design(model, starts), reps, seed=seed * 1000 + model, n_jobs=jobs,
                                progress=progress)
        summ = res.summary().loc[LABEL]
        mcse = summ["mse_mcse"]
        paper = PAPER_MSE_ALPHA1[model]
        rows.append({
            "model": model, "class_level": level, "v": v, "reps": reps, "n_starts": starts[0],
            "n_final": starts[1], "converged": res.n_converged, "converged_share": summ["converged_share"],
            "failed": res.n_failed, "mean_alpha1": summ["mean"], "bias": summ["bias"], "sd": summ["sd"],
            "mean_se": summ["mean_se"], "coverage": summ["coverage"], "mse": summ["mse"], "mse_mcse": mcse,
            "paper_mse": paper,
            "within_2mcse": bool(np.isfinite(mcse) and abs(summ["mse"] - paper) <= 2 * mcse),
            "relabelled": int(sum(p is not None and tuple(p) != (0, 1) for p in res.fits["permutation"])),
            "seconds": res.seconds, "n_jobs": res.n_jobs,
        })
    return pd.DataFrame(rows).set_index("model")


def ordering(table: pd.DataFrame) -> tuple[bool, bool]:
    """(Model 2 has the lowest MSE, MSE grows from Model 2 to 3 to 4): the paper's pattern."""
    mse = table["mse"]
    lowest = bool(mse.idxmin() == 2)
    growing = bool(mse[2] < mse[3] < mse[4])
    return lowest, growing


def report(table: pd.DataFrame, total_seconds: float | None = None) -> str:
    r = table.iloc[0]
    lines = [f"Table 2 (section 5): MSE of alpha_1, {N_CLUSTERS} clusters x {CLUSTER_SIZE}, R = {r['reps']} samples "
             f"per model, STARTS = {r['n_starts']} {r['n_final']}, {r['n_jobs']} process(es).",
             "Truth alpha_1 = 0 (equal classes); estimates aligned to the true class order by mu and beta.", ""]
    head = (f"{'Model':<6}{'C':<9}{'v':>5}{'MSE':>9}{'MC SE':>8}{'paper':>7}{'|d|<2SE':>9}{'bias':>9}"
            f"{'sd':>8}{'mean SE':>9}{'cover':>7}{'conv':>7}{'relab':>7}{'sec':>7}")
    lines += [head, "-" * len(head)]
    for m, r in table.iterrows():
        lines.append(f"{m:<6}{r['class_level']:<9}{r['v']:>5.1f}{r['mse']:>9.3f}{r['mse_mcse']:>8.3f}"
                     f"{r['paper_mse']:>7.2f}{'yes' if r['within_2mcse'] else 'NO':>9}{r['bias']:>9.3f}"
                     f"{r['sd']:>8.3f}{r['mean_se']:>9.3f}{r['coverage']:>7.2f}{r['converged_share']:>7.2f}"
                     f"{r['relabelled']:>7d}{r['seconds']:>7.1f}")
    lowest, growing = ordering(table)
    lines += ["",
              "MSE = mean (alpha_1 - 0)^2 over converged fits; MC SE = sd of the squared errors / sqrt(n); "
              "cover = coverage of 95% Wald intervals; conv = converged share; relab = fits relabelled to the truth.",
              f"Paper's ordering: Model 2 lowest: {'yes' if lowest else 'NO'}; MSE growing Model 2 < 3 < 4: "
              f"{'yes' if growing else 'NO'}.",
              f"Within 2 MC SEs of the paper: {int(table['within_2mcse'].sum())} of {len(table)} models "
              f"({', '.join(f'Model {m}' for m in table.index[~table['within_2mcse']]) or 'all agree'}"
              f"{' differ' if not table['within_2mcse'].all() else ''})."]
    if total_seconds is not None:
        lines.append(f"Total wall time: {total_seconds:.1f} s for {int(table['reps'].sum())} fits "
                     f"({os.cpu_count()} cores).")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="R = 10 per model, STARTS = 10 3")
    ap.add_argument("--reps", type=int, default=None, help="samples per model (default 100; 10 with --quick)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the table as CSV")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = run(args.reps, args.jobs, args.seed, args.quick, progress=not args.no_progress)
    print(report(table, time.perf_counter() - t0))
    if args.out:
        table.to_csv(args.out)
        print(f"Wrote {args.out}")
    return table


if __name__ == "__main__":
    main()
