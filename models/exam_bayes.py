"""Bayesian estimation (NUTS, nutpie) of the Exam mixture regression chosen by ML.

The model is the one with the lowest BIC in ``exam_mixture_regression.py`` (rerun here
with the same settings), or a fixed candidate given with ``--model``. The chains start
at the ML solution; the script prints the ML-versus-Bayes table (``bm.compare_ml_bayes``),
the convergence diagnostics (R-hat, bulk and tail ESS, divergent transitions), how well
the two estimators agree ((posterior mean - ML) / posterior sd), and PSIS-LOO on the
school-wise log-likelihood (schools are the independent units of a two-level model).

    python models/exam_bayes.py                                # full comparison, 4 chains x 1000 draws
    python models/exam_bayes.py --quick                        # quick comparison, 2 chains x 300 draws
    python models/exam_bayes.py --model "K=2 between (int)"    # skip the comparison
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

import bayesmix as bm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exam_mixture_regression import candidates, choose, fit_all  # noqa: E402

COLUMNS = ["label", "ml_estimate", "ml_se", "post_mean", "post_sd", "r_hat", "ess_bulk", "z_diff"]


def fit_chosen(quick: bool, label: str | None = None, seed: int = 1):
    """(label, MLResult): the lowest-BIC model of ``fit_all(quick)``, or the candidate ``label``."""
    if label is None:
        fits = fit_all(quick, seed=seed)
        label = choose(fits)
        return label, fits[label]
    known = {c.label: c for c in candidates(False) + candidates(True)}
    if label not in known:
        raise SystemExit(f"--model: got {label!r}; valid choices are {sorted(known)}")
    return label, fit_all(quick, seed=seed, which=[known[label]])[label]


def diagnostics(dt, table: pd.DataFrame) -> dict:
    """Worst R-hat, smallest bulk / tail ESS over the reported parameters, divergences."""
    names = sorted(set(table["parameter"]))
    ess_tail = az.ess(dt, var_names=names, method="tail")
    return {
        "max_r_hat": float(np.nanmax(table["r_hat"])),
        "min_ess_bulk": float(np.nanmin(table["ess_bulk"])),
        "min_ess_tail": float(min(np.nanmin(ess_tail[n].to_numpy()) for n in ess_tail.data_vars)),
        "divergences": int(dt["sample_stats"]["diverging"].sum()),
        "draws": int(dt["posterior"].sizes["chain"] * dt["posterior"].sizes["draw"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="quick model comparison; 2 chains x 300 draws")
    parser.add_argument("--model", default=None, help="fit only this candidate (a label of the comparison)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    tune, draws, chains = (300, 300, 2) if args.quick else (1000, 1000, 4)

    label, res = fit_chosen(args.quick, args.model, args.seed)
    model = res.model
    print(f"\nModel: {label} (path {model.path}); ML LL = {res.loglik:.3f}, {res.n_params} parameters\n")

    t0 = time.perf_counter()
    dt = bm.sample(model, ml=res, tune=tune, draws=draws, chains=chains, seed=args.seed, progress=False)
    print(f"NUTS: {chains} chains x ({tune} tune + {draws} draws) in {time.perf_counter() - t0:.1f} s "
          f"(including nutpie's compilation)")
    print("label switching:", json.loads(dt["posterior"].attrs["label_switching"]))

    with warnings.catch_warnings():  # R-hat of a constant (class_share with K = 1) divides 0 by 0
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        table = bm.compare_ml_bayes(res, dt)
    table = table[table["post_sd"] > 0]  # drop constants (class_share with one class)
    print("\nML VERSUS BAYES  (z_diff = (posterior mean - ML) / posterior sd)")
    print(table[COLUMNS].set_index("label").to_string(float_format=lambda x: f"{x:.4f}"))

    diag = diagnostics(dt, table)
    print(f"\nmax R-hat {diag['max_r_hat']:.3f}; min ESS bulk {diag['min_ess_bulk']:.0f}, tail "
          f"{diag['min_ess_tail']:.0f}; divergences {diag['divergences']} of {diag['draws']} draws")
    z = table["z_diff"].abs()
    print(f"agreement: {int((z < 2).sum())} of {len(z)} reported parameters within 2 posterior sd of ML "
          f"(max |z_diff| {z.max():.2f}, at {table.loc[z.idxmax(), 'label']})")

    loo = az.loo(dt)
    print(f"\nPSIS-LOO over {dt['log_likelihood']['loglik'].shape[-1]} schools: elpd_loo {loo.elpd:.1f} "
          f"(SE {loo.se:.1f}), p_loo {loo.p:.1f}; Pareto k > {loo.good_k:.2f}: "
          f"{int((loo.pareto_k > loo.good_k).sum())} schools")
    return res, dt, table


if __name__ == "__main__":
    main()
