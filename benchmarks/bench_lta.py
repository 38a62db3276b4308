"""Latent transition analysis: time to build, compile and fit (prints times, asserts nothing).

Single level: N persons, 8 binary items at T occasions, K classes (measurement
invariance, first-order Markov), 10 random starts. With ``--two-level``: the
section 4 model (K = 2, T = 2, random alpha_1j, alpha_2j with eq. 15) on
J clusters of 15, default integration (31 x 31 trapezoid nodes).

    .venv/bin/python benchmarks/bench_lta.py [--n 2000] [--k 3] [--t 3] [--two-level] [--clusters 80]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import special

import bayesmix as bm


def simulate(n, k, n_t, clusters=None, seed=0):
    rng = np.random.default_rng(seed)
    tau = np.linspace(-2.0, 2.0, k)[:, None] + rng.uniform(-0.5, 0.5, size=(k, 8))
    stay = 0.8
    trans = np.full((k, k), (1 - stay) / max(k - 1, 1)) + np.eye(k) * (stay - (1 - stay) / max(k - 1, 1))
    cols = {}
    if clusters:
        cols["school"] = np.repeat(np.arange(clusters), n // clusters)
        n = len(cols["school"])
        u = rng.normal(0, 1.0, size=clusters)[cols["school"]]
        c = (rng.uniform(size=n) > special.expit(0.3 + u)).astype(int)
    else:
        c = rng.integers(0, k, size=n)
    for t in range(n_t):
        if t:
            c = np.array([rng.choice(k, p=trans[j]) for j in c])
        y = (rng.uniform(size=(n, 8)) < 1 - special.expit(tau[c])).astype(float)
        for p in range(8):
            cols[f"u{p + 1}_{t + 1}"] = y[:, p]
    items = {f"t{t + 1}": [f"u{p + 1}_{t + 1}" for p in range(8)] for t in range(n_t)}
    return pd.DataFrame(cols), items


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--t", type=int, default=3)
    ap.add_argument("--two-level", action="store_true")
    ap.add_argument("--clusters", type=int, default=80)
    args = ap.parse_args()
    if args.two_level:
        df, items = simulate(args.clusters * 15, 2, 2, clusters=args.clusters)
        label = f"two-level LTA, {args.clusters} clusters x 15, K=2, T=2"
    else:
        df, items = simulate(args.n, args.k, args.t)
        label = f"LTA, N={args.n}, K={args.k}, T={args.t}, 8 binary items"
    t0 = time.perf_counter()
    fam = bm.lta(df, items, 2 if args.two_level else args.k, cluster="school" if args.two_level else None)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=10, n_final=3, seed=0, progress=False)
    t2 = time.perf_counter()
    print(f"{label}: build {t1 - t0:.1f} s, fit_ml (10 starts, SEs, integration check) {t2 - t1:.1f} s, "
          f"LL {res.loglik:.3f}")
    print(np.round(res.natural["transition_prob"], 3))


if __name__ == "__main__":
    main()
