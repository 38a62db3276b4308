"""Two-level FMA against the single-level FMA on the same persons: compile time
and the cost of one log-likelihood + gradient (prints times, asserts nothing).

J clusters of n persons, P binary items, K = 2, invariant loadings, free factor
variance; two-level on ``--nodes`` x ``--nodes`` trapezoid nodes (person x cluster),
single level on 61 (its default) and on ``--nodes`` person nodes (the same inner rule).
BLAS on one thread, as inside ``fit_ml``.

    .venv/bin/python benchmarks/bench_fma_two_level.py [--clusters 100] [--size 10] [--items 10] [--nodes 31]
"""

from __future__ import annotations

import argparse
import importlib
import time
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import bayesmix as bm
from bayesmix.fit.compiled import compiled, get_backend

F = importlib.import_module("bayesmix.families.fma")


def simulate(clusters, size, n_items, seed=0):
    rng = np.random.default_rng(seed)
    shift = np.linspace(-0.8, 0.8, n_items)
    truth = {"tau": np.vstack([-1.0 + shift, 1.2 - shift]), "lambda": np.linspace(0.8, 1.8, n_items),
             "eta_variance": np.array([0.5, 1.0]), "alpha": np.array([0.3]), "psi_between": np.array([[1.5]])}
    cidx = np.repeat(np.arange(clusters), size)
    y, _, _ = F.simulate_fma(truth, np.arange(n_items), cidx.size, "logit", rng, cluster_idx=cidx)
    df = pd.DataFrame(y, columns=[f"u{i + 1}" for i in range(n_items)])
    df["school"] = cidx
    return df


def time_model(label, fam, n_evals):
    comp = compiled(fam)
    theta = comp.packing.pack(fam.start_point(np.random.default_rng(1)))
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        ll, _ = comp.ll_and_grad(theta)
        first = time.perf_counter() - t0
        times = []
        for i in range(n_evals):
            th = theta + 1e-3 * i
            t0 = time.perf_counter()
            comp.ll_and_grad(th)
            times.append(time.perf_counter() - t0)
    times = np.array(times) * 1e3
    print(f"{label:58s} compile+first {first:6.2f} s   LL+grad median {np.median(times):8.2f} ms "
          f"(min {times.min():.2f}, {n_evals} evals)   LL {ll:.3f}")
    return np.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--items", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=31)
    ap.add_argument("--evals", type=int, default=20)
    args = ap.parse_args()
    warnings.simplefilter("ignore", bm.BayesmixWarning)
    df = simulate(args.clusters, args.size, args.items)
    items = [c for c in df.columns if c != "school"]
    print(f"{args.clusters} clusters x {args.size} persons x {args.items} binary items, K = 2, backend "
          f"{get_backend()}")
    kw = dict(factor_variance="class")
    n = args.nodes
    two = time_model(f"two-level, {n} x {n} trapezoid", F.fma(df, items, 2, cluster="school",
                     integration=bm.Integration("trapezoid", n_points=(n, n)), **kw), args.evals)
    same = time_model(f"single level, {n} trapezoid (same person rule)",
                      F.fma(df[items], items, 2, integration=bm.Integration("trapezoid", n_points=n), **kw),
                      args.evals)
    default = time_model("single level, 61 trapezoid (default)", F.fma(df[items], items, 2, **kw), args.evals)
    print(f"ratio two-level / single level: {two / same:.1f}x (same person rule), {two / default:.1f}x (default)")


if __name__ == "__main__":
    main()
