"""FMA-GoM (section 8, eq. 38-41) at the size of the paper's ADHD example: compile time,
one LL + gradient, and the ML fit with and without fit_ml's integration check (prints
sizes, times and memory; asserts nothing).

Data: 425 persons x 18 binary items simulated from the 2-class FMA-GoM of
models/table6_lca_fma_fmagom.py (probit, invariant loadings, class-specific factor
variance, Var(alpha_1j) = 4, ICC 0.55; values repeated here so that the benchmark
does not import a script). The model is Table 6's FMA-GoM (57 parameters), integrated per
person over (eta_j, alpha_1j) on a ``--nodes`` trapezoid product rule (default 31 x 31,
the package default for two dimensions). BLAS on one thread (as inside fit_ml).

    .venv/bin/python benchmarks/bench_fma_gom.py [--nodes 31 31] [--starts 4 1] [--evals 20]
"""

from __future__ import annotations

import argparse
import importlib
import resource
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

import bayesmix as bm
from bayesmix.fit.compiled import compiled, get_backend

FG = importlib.import_module("bayesmix.families.fma_gom")


def simulate(n=425, n_inatt=9, n_hyper=9, seed=6):
    p1 = np.r_[np.linspace(0.70, 0.85, n_inatt), np.linspace(0.60, 0.80, n_hyper)]
    p2 = np.r_[np.linspace(0.65, 0.80, n_inatt), np.linspace(0.10, 0.25, n_hyper)]
    truth = {"tau": -stats.norm.ppf(np.vstack([p1, p2])),
             "lambda": np.r_[np.linspace(0.6, 1.2, n_inatt), np.linspace(0.7, 1.3, n_hyper)],
             "eta_variance": np.array([0.5, 1.0]), "alpha": np.array([0.2]), "psi": np.array([[4.0]])}
    y, _ = FG.simulate_fma_gom(truth, n, n_inatt + n_hyper, "probit", np.random.default_rng(seed))
    return pd.DataFrame(y, columns=[f"inatt{i + 1}" for i in range(n_inatt)] + [f"hyper{i + 1}" for i in range(n_hyper)])


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs=2, default=(31, 31), help="trapezoid points for (eta_j, alpha_1j)")
    ap.add_argument("--starts", type=int, nargs=2, default=(4, 1))
    ap.add_argument("--evals", type=int, default=20)
    args = ap.parse_args()
    warnings.simplefilter("ignore", bm.BayesmixWarning)
    df = simulate()
    rule = bm.Integration("trapezoid", n_points=tuple(args.nodes))
    t = time.perf_counter()
    fam = bm.fma_gom(df, list(df.columns), 2, link="probit", factor_variance="class", integration=rule)
    build = time.perf_counter() - t
    comp = compiled(fam)
    print(f"FMA-GoM K = 2: {df.shape[0]} persons x {df.shape[1]} binary items, {len(comp.packing.pack(fam.start_point(np.random.default_rng(0))))} "
          f"free parameters, {args.nodes[0]} x {args.nodes[1]} = {args.nodes[0] * args.nodes[1]} nodes per person; "
          f"backend {get_backend()}")
    theta = comp.packing.pack(fam.start_point(np.random.default_rng(1)))
    with threadpool_limits(limits=1, user_api="blas"):
        t = time.perf_counter()
        ll, _ = comp.ll_and_grad(theta)
        first = time.perf_counter() - t
        times = []
        for i in range(args.evals):
            th = theta + 1e-4 * i
            t = time.perf_counter()
            comp.ll_and_grad(th)
            times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    print(f"build model {build:.2f} s; compile + first LL+gradient {first:.1f} s; one LL+gradient median "
          f"{np.median(ms):.1f} ms (min {ms.min():.1f}, {args.evals} evals); LL at a random start {ll:.2f}; "
          f"peak RSS {rss_mib():.0f} MiB")
    for check in (False, True):
        t = time.perf_counter()
        res = bm.fit_ml(fam, n_starts=args.starts[0], n_final=args.starts[1], seed=1, progress=False,
                        check_integration=check)
        sec = time.perf_counter() - t
        integ = res.integration if isinstance(res.integration, dict) else {}
        extra = (f"; checked with {integ.get('checked_with')}: difference {integ.get('difference', float('nan')):+.4f}"
                 + (f", refined from {integ['refined_from']}" if integ.get("refined_from") else "")) if check else ""
        print(f"fit_ml STARTS = {args.starts[0]} {args.starts[1]}, check_integration={check}: {sec:.1f} s "
              f"(fit_ml's own {res.convergence['seconds']:.1f} s, compiling {res.convergence['compile_seconds']:.1f} s); "
              f"LL {res.loglik:.4f}, Var(alpha_1j) {float(np.ravel(res.natural['psi'])[0]):.2f}{extra}; "
              f"peak RSS {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
