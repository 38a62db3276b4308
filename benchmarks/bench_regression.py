#!/usr/bin/env python
"""Benchmark of ``bayesmix.mixture_regression`` at the sizes of the paper's section 5.

Measurements (each in its own Python process, so peak memory is per measurement):

* ``m4_cold``  : Table 2's Model 4 (50 clusters x 10 persons, between-level class,
  K = 2, random intercept + slope with diagonal covariance, analytic marginal),
  build + ``fit_ml(n_starts=20, n_final=5)`` with an EMPTY PyTensor compile cache
  (``PYTENSOR_FLAGS=base_compiledir=<new temporary directory>``): what a first
  run on a new machine costs.
* ``m4``       : the same with the usual (warm) cache: first build + fit in a fresh
  process, then ``set_data`` on a new sample and a second fit (the compiled
  functions are reused, as ``run_simulation`` does), and the median time of one
  log-likelihood + gradient evaluation.
* ``m6``       : Table 3's Model 6 (100 clusters x 10, within-level class with a
  random class-logit intercept, random outcome intercept: a 2-D trapezoid
  integral with the points of ``models/table3_model5_vs_model6.py``'s
  ``M6_INTEGRATION``, 15 x 101 nodes), build + fit from Model 5's estimates
  (as ``table3 --quick``; warm cache), one LL + gradient of Model 6 and of
  Model 5 (analytic); with ``--m6-random-starts`` also a 20/5 random-start fit.
* ``table2``   : the whole Table 2 study, ``run(reps, jobs=None)`` of
  ``models/table2_class_level_mse.py`` (4 models x R fits, 20/5 starts, all
  cores). Target: 400 fits under 10 minutes on 2 cores.

Peak memory is ``resource.getrusage`` maxrss of the measuring process (and of
its largest worker for ``table2``).

    .venv/bin/python benchmarks/bench_regression.py                     # everything (~5-10 min on 2 cores)
    .venv/bin/python benchmarks/bench_regression.py --no-cold --table2-reps 20
    .venv/bin/python benchmarks/bench_regression.py --only m6
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _env import child_env  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)
import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent / "models"
TARGET_TABLE2_S = 600.0
STARTS = (20, 5)
N_EVAL = 50

SIZES = {
    "m4_cold": "Model 4: 50 clusters x 10, between class K = 2, random intercept + slope (diagonal V), "
               "analytic marginal; fit_ml 20 starts / 5 final; EMPTY compile cache",
    "m4": "Model 4 as above, warm compile cache; then set_data on a new sample and refit",
    "m6": "Model 6: 100 clusters x 10, within-between class K = 2 (random class-logit intercept) + random "
          "outcome intercept: 2-D trapezoid quadrature 15 x 101; fit from Model 5's estimates; warm cache",
    "table2": "Table 2: 4 models x R samples of 50 clusters x 10, fit_ml 20/5 each, all cores",
}


def _load(name):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rss():
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _eval_time(model, theta) -> float:
    from threadpoolctl import threadpool_limits

    from bayesmix.fit.compiled import compiled

    comp = compiled(model)
    with threadpool_limits(limits=1):
        comp.ll_and_grad(theta)
        times = []
        for _ in range(N_EVAL):
            t = time.perf_counter()
            comp.ll_and_grad(theta)
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def _m4_data(seed):
    from bayesmix.simulate import simulate_mixture_regression

    df, _ = simulate_mixture_regression(50, 10, class_level="between", v_intercept=0.2, v_slope=0.2, seed=seed)
    return df


def _m4_build(df):
    import bayesmix as bm

    return bm.mixture_regression(df, "y", ["x"], 2, cluster="cluster", class_level="between",
                                 random=["intercept", "x"], re_cov="diagonal")


def child(kind: str, table2_reps: int, m6_random_starts: bool = False) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    t = time.perf_counter()
    import bayesmix as bm

    out = {"kind": kind, "import_s": time.perf_counter() - t}
    if kind in ("m4", "m4_cold"):
        df = _m4_data(1)
        t = time.perf_counter()
        model = _m4_build(df)
        res = bm.fit_ml(model, n_starts=STARTS[0], n_final=STARTS[1], seed=0, progress=False)
        out.update(first_fit_s=time.perf_counter() - t, compile_s=float(res.convergence.get("compile_seconds",
                                                                                          np.nan)),
                   loglik=float(res.loglik), n_best=int(res.convergence["n_best"]))
        if kind == "m4":
            t = time.perf_counter()
            model.set_data(_m4_data(2))
            res2 = bm.fit_ml(model, n_starts=STARTS[0], n_final=STARTS[1], seed=0, progress=False)
            out.update(warm_fit_s=time.perf_counter() - t, loglik_2=float(res2.loglik))
            out["ll_grad_ms"] = 1e3 * _eval_time(model, res2.theta)
    elif kind == "m6":
        table3 = _load("table3_model5_vs_model6")
        df, truth = table3.simulate(table3.DEFAULT_SEED)
        m5 = table3.model5(df)
        t = time.perf_counter()
        r5 = table3.fit_aligned(m5, truth, STARTS, 1)
        out.update(model5_fit_s=time.perf_counter() - t, loglik_model5=float(r5.loglik),
                   ll_grad_model5_ms=1e3 * _eval_time(m5, r5.theta))
        t = time.perf_counter()
        model = table3.model6(df)
        res = bm.fit_ml(model, n_starts=0, start=table3.model6_start(r5), progress=False)
        out.update(first_fit_s=time.perf_counter() - t, compile_s=float(res.convergence["compile_seconds"]),
                   loglik=float(res.loglik), var_alpha1=float(np.asarray(res.natural["psi"]).ravel()[0]),
                   integration=model.describe_integration())
        out["ll_grad_ms"] = 1e3 * _eval_time(model, res.theta)
        if m6_random_starts:
            t = time.perf_counter()
            r20 = bm.fit_ml(model, n_starts=STARTS[0], n_final=STARTS[1], seed=1, progress=False)
            out.update(random_fit_s=time.perf_counter() - t, loglik_random=float(r20.loglik))
    elif kind == "table2":
        table2 = _load("table2_class_level_mse")
        t = time.perf_counter()
        table = table2.run(reps=table2_reps, jobs=None, seed=0, quick=False, progress=False)
        out.update(seconds=time.perf_counter() - t, reps=table2_reps, n_fits=4 * table2_reps,
                   n_jobs=int(table["n_jobs"].iloc[0]),
                   per_model_s={int(m): float(s) for m, s in table["seconds"].items()},
                   mse={int(m): float(v) for m, v in table["mse"].items()},
                   mse_mcse={int(m): float(v) for m, v in table["mse_mcse"].items()},
                   converged={int(m): int(v) for m, v in table["converged"].items()})
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    out.update(_rss())
    return out


def run_child(kind: str, table2_reps: int, compiledir: str | None = None, m6_random_starts=False) -> dict:
    env = child_env(compiledir)
    t = time.perf_counter()
    cmd = [sys.executable, __file__, "--_child", kind, "--table2-reps", str(table2_reps)]
    proc = subprocess.run(cmd + (["--m6-random-starts"] if m6_random_starts else []), env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = time.perf_counter() - t
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table2-reps", type=int, default=100, help="samples per model of the Table 2 run")
    ap.add_argument("--no-cold", action="store_true", help="skip the empty-cache measurement")
    ap.add_argument("--only", nargs="+", choices=sorted(SIZES), default=None)
    ap.add_argument("--output", default=None, help="write the raw numbers as JSON")
    ap.add_argument("--m6-random-starts", action="store_true",
                    help="also time Model 6 with 20 random starts / 5 final (slow: 1515 nodes per cluster)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        print(json.dumps(child(args._child, args.table2_reps, args.m6_random_starts)))
        return None

    kinds = args.only or [k for k in ("m4_cold", "m4", "m6", "table2") if not (args.no_cold and k == "m4_cold")]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    results = {}
    for kind in kinds:
        desc = SIZES[kind] if kind != "table2" else SIZES[kind].replace("R samples", f"R = {args.table2_reps}")
        print(f"\n{kind}: {desc}", flush=True)
        if kind == "m4_cold":
            with tempfile.TemporaryDirectory(prefix="bayesmix_cold_") as tmp:
                r = run_child(kind, args.table2_reps, compiledir=tmp)
        else:
            r = run_child(kind, args.table2_reps, m6_random_starts=args.m6_random_starts)
        results[kind] = r
        if kind in ("m4", "m4_cold"):
            print(f"  first build + fit (compile included): {r['first_fit_s']:.2f} s (of which compile "
                  f"{r['compile_s']:.2f} s), LL {r['loglik']:.3f}, {r['n_best']}/5 final starts at the best")
            if kind == "m4":
                print(f"  set_data on a new sample + fit (compiled functions reused): {r['warm_fit_s']:.2f} s")
                print(f"  one LL + gradient evaluation (median of {N_EVAL}): {r['ll_grad_ms']:.3f} ms")
        elif kind == "m6":
            print(f"  integration: {r['integration']}")
            print(f"  Model 5 (analytic) fit 20/5 incl. compile: {r['model5_fit_s']:.2f} s, "
                  f"LL {r['loglik_model5']:.3f}")
            print(f"  Model 6 build + fit from Model 5's estimates (compile included): {r['first_fit_s']:.2f} s (of "
                  f"which compile {r['compile_s']:.2f} s), LL {r['loglik']:.3f}, Var(alpha_1) {r['var_alpha1']:.4g}")
            if "random_fit_s" in r:
                print(f"  Model 6 fit, 20 random starts / 5 final (compiled): {r['random_fit_s']:.1f} s, "
                      f"LL {r['loglik_random']:.3f}")
            print(f"  one LL + gradient evaluation (median of {N_EVAL}): Model 6 {r['ll_grad_ms']:.1f} ms, "
                  f"Model 5 {r['ll_grad_model5_ms']:.3f} ms")
        else:
            verdict = "meets" if r["seconds"] < TARGET_TABLE2_S else "MISSES"
            print(f"  {r['seconds']:.1f} s for {r['n_fits']} fits on {r['n_jobs']} processes ({verdict} the "
                  f"{TARGET_TABLE2_S:.0f} s target); per model: "
                  + ", ".join(f"M{m} {s:.0f} s" for m, s in r["per_model_s"].items()))
            print("  MSE(alpha_1): " + ", ".join(f"M{m} {v:.3f} ({r['mse_mcse'][m]:.3f})"
                                                 for m, v in r["mse"].items()))
        print(f"  peak RSS {r['peak_rss_mib']:.0f} MiB" + (f", largest worker {r['peak_rss_children_mib']:.0f} MiB"
                                                          if kind == "table2" else ""))
    if args.output:
        Path(args.output).write_text(json.dumps({"load": os.getloadavg(), "results": results}, indent=1))
        print(f"\nWrote {args.output}")
    return results


if __name__ == "__main__":
    main()
