#!/usr/bin/env python
"""Benchmark of ``bayesmix.run_simulation`` (simulation studies), serial against parallel.

Designs (all K = 2 classes, binary items, truth from ``bayesmix.simstudy.lca_truth``):

* ``lca``     : single-level LCA, N = 200 persons, 5 items, fit_ml with 4 starts / 2 final.
* ``twolevel``: two-level LCA with a random class-logit intercept (psi = 1),
  50 clusters x 10 persons, 10 items, trapezoid rule, fit_ml with 4 starts / 2 final.

Each (design, n_jobs) measurement runs in a fresh Python process, after one
warm-up process per design that fills PyTensor's C cache, so the timings compare
warm-cache runs. Peak memory is ``resource.getrusage`` maxrss of the measuring
process (parent) and of its largest worker (RUSAGE_CHILDREN).

Run:

    .venv/bin/python benchmarks/bench_simstudy.py                  # R = 20, n_jobs 1 and 2, both designs (~1-2 min)
    .venv/bin/python benchmarks/bench_simstudy.py --designs lca --reps 40
    .venv/bin/python benchmarks/bench_simstudy.py --target         # + 400 two-level fits on 2 processes
                                                                  #   (target: under 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGET_400_S = 600.0

TAU5 = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2], [1.0, 1.5, 0.8, 2.0, 1.2]])
TAU10 = np.hstack([TAU5, TAU5[:, ::-1]])
ALPHA = np.array([0.4])
PSI = np.array([[1.0]])

SIZES = {
    "lca": "single-level LCA, N = 200 persons, 5 binary items, K = 2; fit_ml 4 starts / 2 final",
    "twolevel": ("two-level LCA, random class-logit intercept (psi = 1), 50 clusters x 10 persons, "
                 "10 binary items, K = 2; fit_ml 4 starts / 2 final"),
}


def design(name: str):
    import bayesmix as bm
    from bayesmix.simstudy import lca_truth
    from bayesmix.simulate import simulate_lca

    if name == "lca":
        items = [f"y{j}" for j in range(1, 6)]

        def generate(rng):
            df, _ = simulate_lca(TAU5, ALPHA, n_persons=200, seed=rng)
            return df, lca_truth(TAU5, ALPHA)

        return bm.SimulationDesign("lca N=200 P=5 K=2", generate, lambda df: bm.lca(df, items, n_classes=2),
                                   {"n_starts": 4, "n_final": 2})
    if name == "twolevel":
        items = [f"y{j}" for j in range(1, 11)]

        def generate(rng):
            df, _ = simulate_lca(TAU10, ALPHA, n_clusters=50, cluster_size=10, psi=PSI, seed=rng)
            return df, lca_truth(TAU10, ALPHA, psi=PSI)

        return bm.SimulationDesign("two-level lca 50x10 P=10 K=2", generate,
                                   lambda df: bm.lca(df, items, n_classes=2, cluster="cluster"),
                                   {"n_starts": 4, "n_final": 2})
    raise SystemExit(f"unknown design {name!r}; give one of {sorted(SIZES)}")


def child(name: str, reps: int, n_jobs: int) -> dict:
    import bayesmix as bm

    t0 = time.perf_counter()
    res = bm.run_simulation(design(name), reps, seed=1, n_jobs=n_jobs, progress=False)
    wall = time.perf_counter() - t0
    summ = res.summary()
    return {
        "design": name, "reps": reps, "n_jobs": n_jobs, "seconds": wall,
        "seconds_per_fit": wall / reps,
        "mean_rep_seconds": float(res.fits["seconds"].mean()),
        "converged": res.n_converged, "failed": res.n_failed,
        "mean_coverage": float(summ["coverage"].mean()) if len(summ) else float("nan"),
        "max_abs_bias": float(summ["bias"].abs().max()) if len(summ) else float("nan"),
        # maxrss is in KiB on Linux
        "peak_rss_parent_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def run_child(name, reps, n_jobs) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, str(reps), str(n_jobs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--designs", nargs="+", default=["lca", "twolevel"], choices=sorted(SIZES))
    ap.add_argument("--target", action="store_true",
                    help="also run 400 two-level replications on 2 processes (target < 10 min)")
    ap.add_argument("--child", nargs=3, metavar=("DESIGN", "REPS", "JOBS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name in args.designs:
        print(f"\n{name}: {SIZES[name]}")
        run_child(name, 1, 1)  # warm PyTensor's C cache
        for n_jobs in args.jobs:
            rows.append(run_child(name, args.reps, n_jobs))
            r = rows[-1]
            print(f"  R={r['reps']:4d} n_jobs={n_jobs}: {r['seconds']:7.2f} s ({r['seconds_per_fit']:.3f} s/fit, "
                  f"{r['mean_rep_seconds']:.3f} s per replication in its process), converged {r['converged']}/"
                  f"{r['reps']}, peak RSS parent {r['peak_rss_parent_mib']:.0f} MiB, largest worker "
                  f"{r['peak_rss_worker_mib']:.0f} MiB")
    if args.target:
        print(f"\ntarget: 400 replications of {SIZES['twolevel']} on 2 processes")
        r = run_child("twolevel", 400, 2)
        rows.append(r)
        verdict = "meets" if r["seconds"] < TARGET_400_S else "MISSES"
        print(f"  {r['seconds']:.1f} s ({verdict} the {TARGET_400_S:.0f} s target), converged "
              f"{r['converged']}/400, mean coverage {r['mean_coverage']:.3f}, max |bias| {r['max_abs_bias']:.3f}, "
              f"peak RSS parent {r['peak_rss_parent_mib']:.0f} MiB, worker {r['peak_rss_worker_mib']:.0f} MiB")
    return rows


if __name__ == "__main__":
    main()
