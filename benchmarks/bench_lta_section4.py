"""The paper's section 4 two-level LTA: time to compile and fit (prints times, asserts nothing).

Data: the section 4 population (``bayesmix.families.lta_section4``), 100
classrooms x 20 students, 10 binary TOCA items at 2 occasions, K = 2, random
alpha_1j and alpha_2j (eq. 15): a 2-D integral per classroom, by default the
31 x 31 trapezoid grid. Measured in one process:

* compile: the first log-likelihood + gradient call (JAX traces and compiles on it);
* ll+grad: median of 10 calls of the compiled log-likelihood + gradient;
* one start: ``fit_ml`` with one random start (short stage + L-BFGS to
  convergence + sandwich SEs), no integration check;
* whole fit: ``fit_ml`` with STARTS = 20 5 and the integration check
  (target of issue 8: under 60 s on the 2-core machine once compiled).

Every call of the compiled functions is counted and timed (``Compiled._call``
wrapped in this process only), so the report says how many likelihood /
gradient evaluations each stage needed and how much of its time they took.

    .venv/bin/python benchmarks/bench_lta_section4.py
    .venv/bin/python benchmarks/bench_lta_section4.py --points 21        # 21 x 21 trapezoid grid
    .venv/bin/python benchmarks/bench_lta_section4.py --starts 10 3 --profile
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import pstats
import time
import warnings

import numpy as np

import bayesmix as bm
from bayesmix.families.lta_section4 import CLUSTER, SECTION4_ITEMS, simulate_section4
from bayesmix.fit import compiled as compiled_mod

TARGET_FIT_S = 60.0
CALLS = collections.defaultdict(lambda: [0, 0.0])  # key -> [calls, seconds]


def _counting(original):
    def call(self, key, build, theta):
        t = time.perf_counter()
        try:
            out = original(self, key, build, theta)
            # JAX returns before it has computed: wait for the values, so the time is the call's
            for o in (out if isinstance(out, (list, tuple)) else [out]):
                np.asarray(o)
            return out
        finally:
            CALLS[key][0] += 1
            CALLS[key][1] += time.perf_counter() - t
    return call


def _calls_since(before: dict) -> str:
    parts = []
    for key, (n, s) in CALLS.items():
        n0, s0 = before.get(key, (0, 0.0))
        if n > n0:
            parts.append(f"{key}: {n - n0} calls, {s - s0:.1f} s")
    return "; ".join(parts) or "none"


def _snapshot() -> dict:
    return {k: tuple(v) for k, v in CALLS.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--size", type=int, default=20)
    ap.add_argument("--points", type=int, default=None, help="trapezoid points per dimension (default: 31)")
    ap.add_argument("--starts", type=int, nargs=2, default=(20, 5))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="cProfile the whole fit (top 25 by cumulative time)")
    args = ap.parse_args()
    compiled_mod.Compiled._call = _counting(compiled_mod.Compiled._call)
    integration = "trapezoid" if args.points is None else {"rule": "trapezoid", "n_points": args.points}
    df = simulate_section4(args.clusters, args.size, seed=args.seed)

    t0 = time.perf_counter()
    fam = bm.lta(df, SECTION4_ITEMS, 2, cluster=CLUSTER, integration=integration)
    comp = compiled_mod.compiled(fam)
    theta = comp.packing.pack(fam.start_point(np.random.default_rng(0)))
    t1 = time.perf_counter()
    comp.ll_and_grad(theta)
    t2 = time.perf_counter()
    times = []
    for i in range(10):
        a = time.perf_counter()
        comp.ll_and_grad(theta + 1e-4 * i)
        times.append(time.perf_counter() - a)
    print(f"section 4 two-level LTA: {args.clusters} classrooms x {args.size}, 10 binary items x 2 occasions, "
          f"K = 2, {fam.describe_integration()}")
    print(f"  build {t1 - t0:.2f} s; compile (first ll+grad) {t2 - t1:.2f} s; ll+grad median {np.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f})")

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", bm.BayesmixWarning)
        before = _snapshot()
        a = time.perf_counter()
        one = bm.fit_ml(fam, n_starts=1, n_final=1, seed=args.seed, progress=False, check_integration=False)
        t_one = time.perf_counter() - a
        print(f"  one start (short stage + L-BFGS + SEs) {t_one:.1f} s, "
              f"{int(one.starts['iterations'].fillna(0).sum())} final iterations; calls: {_calls_since(before)}")
        before = _snapshot()
        prof = cProfile.Profile() if args.profile else None
        a = time.perf_counter()
        if prof:
            prof.enable()
        res = bm.fit_ml(fam, n_starts=args.starts[0], n_final=args.starts[1], seed=args.seed, progress=False)
        if prof:
            prof.disable()
        t_fit = time.perf_counter() - a
    tab = res.starts
    done = tab.dropna(subset=["loglik_final"])
    best = np.isclose(done["loglik_final"], res.loglik, atol=1e-3).sum()
    print(f"  whole fit (STARTS = {args.starts[0]} {args.starts[1]}, integration check) {t_fit:.1f} s "
          f"(target {TARGET_FIT_S:.0f} s: {'met' if t_fit <= TARGET_FIT_S else 'NOT met'}); LL {res.loglik:.3f}, "
          f"best LL reached by {best} of {len(done)} completed starts; final iterations "
          f"{done['iterations'].astype(int).tolist()}")
    print(f"  calls during the whole fit: {_calls_since(before)}")
    if res.integration:
        print(f"  integration check: {res.integration['checked_with']}: LL difference "
              f"{res.integration['difference']:+.2e}")
    for text in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in got):
        print("  warning:", text)
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        print(buf.getvalue())


if __name__ == "__main__":
    main()
