#!/usr/bin/env python
"""Performance benchmark of bayesmix latent class analysis (LCA) at the size of
the paper's NLSY example: N = 7326 persons, 17 binary items, K = 2 and 3 classes.

For each K the script measures, each in a fresh Python process:

* ``cold``  : PyTensor compile cache emptied (PYTENSOR_FLAGS=base_compiledir=<new
  temporary directory>; PyTensor 3 compiles with Numba by default and keeps that
  cache under base_compiledir/numba, NUMBA_CACHE_DIR is pointed there too): model build + first log-likelihood/gradient call, then a
  complete ``fit_ml`` (20 starts / 5 final) as a first-time user would see it.
* ``warm``  : same cache directory, new process (so only the C cache is warm):
  model build + ``fit_ml`` including compilation, then on the compiled model the
  time of one log-likelihood + gradient evaluation (median of 50), the time of
  single complete L-BFGS starts, peak memory, and, optionally, NUTS (nutpie)
  with 4 chains x 1000 draws started from the ML solution.
* ``stepmix``: StepMix (EM) with the same number of random starts, when it is
  installed, as an external reference for time and log-likelihood.

Run (on 2 cores: ~16 minutes with everything, of which ~9 min is K=3 NUTS with
the default BLAS threading; ~4 min with --no-nuts; ~2 min for
--blas-threads 1 --no-cold --no-stepmix):

    .venv/bin/python benchmarks/bench_lca.py                 # K = 2 3, everything
    .venv/bin/python benchmarks/bench_lca.py --classes 2 --no-nuts --no-cold
    .venv/bin/python benchmarks/bench_lca.py --blas-threads 1 # OPENBLAS_NUM_THREADS=1

Results are printed as a table and written to benchmarks/results/lca_<date>.json.
See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _env import child_env  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)
import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"

# Targets (from the project brief), judged on a 2-core machine.
TARGET_ONE_START_S = 2.0    # one complete start after compilation
TARGET_FIT_S = 30.0         # 20-start / 5-final ML fit including compilation

# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def class_structure(n_classes: int, n_items: int, seed: int):
    """Item probabilities (K, P) and class shares (K,) of an NLSY-like structure.

    Class 1 is a low-offence majority (P(y=1) between 0.02 and 0.2); the last class
    is a high-offence minority (0.3-0.8 on every item); classes in between are
    "specialised" groups that are high (0.3-0.7) on a random half of the items and
    low (0.05-0.25) on the rest. Shares: 0.75/0.25 for K=2, 0.65/0.23/0.12 for K=3,
    in general 0.6 for class 1 and geometric shares for the others.
    """
    rng = np.random.default_rng([seed, n_classes, n_items, 12345])
    probs = np.empty((n_classes, n_items))
    probs[0] = rng.uniform(0.02, 0.2, n_items)
    if n_classes > 1:
        probs[-1] = rng.uniform(0.3, 0.8, n_items)
    for c in range(1, n_classes - 1):
        high = rng.permutation(n_items) < n_items // 2
        probs[c] = np.where(high, rng.uniform(0.3, 0.7, n_items), rng.uniform(0.05, 0.25, n_items))
    if n_classes == 1:
        shares = np.array([1.0])
    elif n_classes == 2:
        shares = np.array([0.75, 0.25])
    elif n_classes == 3:
        shares = np.array([0.65, 0.23, 0.12])
    else:
        rest = 0.5 ** np.arange(n_classes - 1)
        shares = np.concatenate([[0.6], 0.4 * rest / rest.sum()])
    return probs, shares


def simulate(n_persons: int, n_items: int, n_classes: int, seed: int):
    """Binary LCA data (pandas DataFrame with columns y1..yP) and the truth."""
    import pandas as pd

    probs, shares = class_structure(n_classes, n_items, seed)
    rng = np.random.default_rng([seed, n_classes, n_persons, n_items])
    cls = rng.choice(n_classes, size=n_persons, p=shares)
    y = (rng.random((n_persons, n_items)) < probs[cls]).astype(np.int64)
    df = pd.DataFrame(y, columns=[f"y{j + 1}" for j in range(n_items)])
    return df, {"item_prob": probs.tolist(), "class_share": shares.tolist(),
                "sample_share": np.bincount(cls, minlength=n_classes).tolist()}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def children_peak_rss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def instrument_compiles():
    """Record how long each compiled function of ``Compiled`` takes to become usable.

    Wraps ``Compiled._call`` (benchmark-side only, the package is unchanged). The
    first request of a key builds the PyTensor function (graph rewrites, code
    generation); with PyTensor's default Numba backend the machine code is then
    JIT-compiled, or loaded from the on-disk cache, on the *first call*. Both are
    recorded under the key (the first call also includes one evaluation, which is
    milliseconds here).
    """
    from bayesmix.fit import compiled as cmod

    orig = cmod.Compiled._call
    if getattr(orig, "_bench_wrapped", False):
        return orig._bench_record
    record: dict[str, float] = {}

    def _call(self, key, build, theta):
        if (key, cmod.get_backend()) in self._fns:
            return orig(self, key, build, theta)
        t = time.perf_counter()
        out = orig(self, key, build, theta)  # build + first call (JAX/Numba compile on it)
        record[key] = record.get(key, 0.0) + time.perf_counter() - t
        return out

    _call._bench_wrapped = True
    _call._bench_record = record
    cmod.Compiled._call = _call
    return record


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "scipy", "pymc", "pytensor", "nutpie", "arviz", "stepmix", "sklearn", "bayesmix"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 - optional packages
            out[mod] = None
    return out


def git_commit() -> str | None:
    try:
        root = HERE.parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bayesmix"], cwd=root, capture_output=True,
                               text=True, timeout=10)
        if head.returncode != 0:
            return None
        return head.stdout.strip() + (" (bayesmix/ modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# --------------------------------------------------------------------------------------
# Workers (each runs in its own process)
# --------------------------------------------------------------------------------------


def _import_bayesmix() -> float:
    t = time.perf_counter()
    import bayesmix  # noqa: F401

    return time.perf_counter() - t


def _fit(df, items, k, args, record):
    """Build the model and run fit_ml; return (model, result, timings)."""
    import bayesmix

    t0 = time.perf_counter()
    m = bayesmix.lca(df, items, n_classes=k)
    t_build = time.perf_counter() - t0
    before = dict(record)
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = bayesmix.fit_ml(m, n_starts=args.starts, n_final=args.final, seed=args.seed, progress=False)
    t_fit_call = time.perf_counter() - t1
    total = time.perf_counter() - t0
    conv = res.convergence
    compiles = {key: record[key] - before.get(key, 0.0) for key in record if record[key] != before.get(key, 0.0)}
    out = {
        "build_s": t_build,
        # brief's "compile time": build the model + first ll_and_grad call (fit_ml's compile_seconds)
        "compile_s": t_build + float(conv["compile_seconds"]),
        "fit_ml_call_s": t_fit_call,
        "fit_ml_reported_seconds": float(conv["seconds"]),
        "fit_total_s": total,
        "compile_by_function_s": compiles,
        "compile_all_functions_s": sum(compiles.values()),
        "loglik": float(res.loglik),
        "n_best": int(conv["n_best"]),
        "max_abs_gradient": float(conv["max_abs_gradient"]),
        "warnings": sorted({f"{x.category.__name__}: {str(x.message)[:160]}" for x in w}),
    }
    out["fit_minus_compiles_s"] = total - t_build - out["compile_all_functions_s"]
    return m, res, out


def worker_cold(args) -> dict:
    t_imp = _import_bayesmix()
    record = instrument_compiles()
    df, _ = simulate(args.n, args.items, args.k, args.seed)
    _, _, fit = _fit(df, list(df.columns), args.k, args, record)
    return {"import_s": t_imp, **fit, "peak_rss_mib": peak_rss_mib(), "children_peak_rss_mib": children_peak_rss_mib(),
            "compiledir": os.environ.get("PYTENSOR_FLAGS", "")}


def worker_warm(args) -> dict:
    t_imp = _import_bayesmix()
    import bayesmix
    from bayesmix.fit.compiled import compiled

    record = instrument_compiles()
    df, truth = simulate(args.n, args.items, args.k, args.seed)
    items = list(df.columns)
    m, res, fit = _fit(df, items, args.k, args, record)
    out = {"import_s": t_imp, **fit, "truth": truth}

    # -- one log-likelihood + gradient evaluation ------------------------------------
    comp = compiled(m)
    rng = np.random.default_rng([args.seed, 99])
    x = comp.packing.pack(m.start_point(rng))
    for _ in range(3):
        comp.ll_and_grad(x)
    def call_times(n=50):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            comp.ll_and_grad(x)
            times.append(time.perf_counter() - t)
        return times

    times = call_times()
    out["ll_grad_median_ms"] = 1e3 * statistics.median(times)
    out["ll_grad_min_ms"] = 1e3 * min(times)
    try:
        from threadpoolctl import threadpool_limits as _limits

        with _limits(limits=1):
            times1 = call_times()
        out["ll_grad_median_blas1_ms"] = 1e3 * statistics.median(times1)
    except ImportError:
        pass
    out["n_params"] = int(x.size)

    # -- single complete starts (one L-BFGS run to convergence) -----------------------
    # Timed twice: with the BLAS thread pool as it is (what a user gets) and limited
    # to one thread (threadpoolctl). scipy's L-BFGS-B calls OpenBLAS on tiny vectors;
    # with 2 threads on a busy 2-core machine those calls can dominate a start.
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        threadpool_info = threadpool_limits = None
    if threadpool_info is not None:
        out["blas_threadpools"] = [{"lib": Path(d.get("filepath", "?")).name, "api": d.get("internal_api"),
                                    "num_threads": d.get("num_threads")} for d in threadpool_info()]
    starts_x0 = [comp.packing.pack(m.start_point(rng)) for _ in range(args.single_starts)]

    def time_starts():
        res_ = []
        try:
            from bayesmix.fit.ml import _minimize
        except ImportError:
            _minimize = None
        for i, x0 in enumerate(starts_x0):
            t = time.perf_counter()
            if _minimize is not None:
                r = _minimize(comp, x0, 2000, 1e-5)
                res_.append({"seconds": time.perf_counter() - t, "iterations": int(r.nit), "evaluations": int(r.nfev),
                             "loglik": float(-r.fun), "success": bool(r.success)})
            else:  # fallback: a whole one-start fit (includes Newton polish and SEs)
                r1 = bayesmix.fit_ml(m, n_starts=1, n_final=1, seed=args.seed + 1 + i, progress=False)
                res_.append({"seconds": time.perf_counter() - t, "iterations": int(r1.convergence["iterations"]),
                             "evaluations": None, "loglik": float(r1.loglik),
                             "success": bool(r1.convergence["success"])})
        out["single_start_method"] = ("bayesmix.fit.ml._minimize(comp, x0, 2000, 1e-5)" if _minimize is not None
                                      else "fit_ml(n_starts=1, n_final=1) incl. Newton polish and SEs")
        secs = [s_["seconds"] for s_ in res_]
        return {"starts": res_, "median_s": statistics.median(secs), "max_s": max(secs),
                "reached_best": int(sum(abs(s_["loglik"] - out["loglik"]) < 1e-3 for s_ in res_))}

    def time_refit():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bayesmix.fit_ml(m, n_starts=args.starts, n_final=args.final, seed=args.seed, progress=False)
        return time.perf_counter() - t

    single = time_starts()
    out["single_starts"] = single["starts"]
    out["single_start_median_s"] = single["median_s"]
    out["single_start_max_s"] = single["max_s"]
    out["single_start_reached_best"] = single["reached_best"]
    # fit_ml again on the already compiled model: starts + polish + SEs + result, no compilation
    out["refit_compiled_s"] = time_refit()
    if threadpool_limits is not None:
        with threadpool_limits(limits=1):
            single1 = time_starts()
            out["refit_compiled_blas1_s"] = time_refit()
        out["single_starts_blas1"] = single1["starts"]
        out["single_start_median_blas1_s"] = single1["median_s"]
        out["single_start_max_blas1_s"] = single1["max_s"]
    out["peak_rss_mib_ml"] = peak_rss_mib()

    # -- NUTS ---------------------------------------------------------------------------
    if args.nuts:
        out["nuts"] = _nuts(m, res, args, record)
        out["peak_rss_mib_with_nuts"] = peak_rss_mib()
    out["children_peak_rss_mib"] = children_peak_rss_mib()
    return out


def _nuts(m, res, args, record) -> dict:
    import bayesmix

    if not hasattr(bayesmix, "sample"):
        return {"skipped": "bayesmix.sample does not exist in this version"}
    try:
        import arviz as az
        import nutpie
    except ImportError as e:
        return {"skipped": f"missing dependency: {e}"}

    out = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    # nutpie compilation (cached on the model by bayesmix, so sample() reuses it)
    try:
        from bayesmix.fit.bayes import _nutpie_model

        t = time.perf_counter()
        _nutpie_model(m, res.point)
        out["nutpie_compile_s"] = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - private helper may change
        out["nutpie_compile_s"] = None
        out["nutpie_compile_note"] = f"not timed separately ({type(e).__name__}); included in sample_total_s"

    sampler_time = []
    orig = nutpie.sample

    def timed_sample(*a, **kw):
        t = time.perf_counter()
        r = orig(*a, **kw)
        sampler_time.append(time.perf_counter() - t)
        return r

    nutpie.sample = timed_sample
    before = dict(record)
    try:
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            dt = bayesmix.sample(m, ml=res, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                                 progress=False)
        out["sample_total_s"] = time.perf_counter() - t
    finally:
        nutpie.sample = orig
    out["sampling_s"] = sampler_time[0] if sampler_time else None
    out["postprocess_s"] = out["sample_total_s"] - (out["sampling_s"] or 0.0)
    out["postprocess_compiles_s"] = {k: record[k] - before.get(k, 0.0) for k in record
                                     if record[k] != before.get(k, 0.0)}
    out["warnings"] = sorted({f"{x.category.__name__}: {str(x.message)[:160]}" for x in w})

    post = dt["posterior"]
    names = [n for n in m.reported_names if n in post.data_vars]

    def _min_over(obj):
        ds = obj.to_dataset() if hasattr(obj, "to_dataset") else obj
        vals = [np.asarray(ds[n]).ravel() for n in names if n in ds.data_vars]
        return float(np.nanmin(np.concatenate(vals))), float(np.nanmax(np.concatenate(vals)))

    ess_min, _ = _min_over(az.ess(dt, var_names=names, method="bulk"))
    ess_tail_min, _ = _min_over(az.ess(dt, var_names=names, method="tail"))
    _, rhat_max = _min_over(az.rhat(dt, var_names=names))
    stats = dt["sample_stats"]
    out.update({
        "ess_variables": names,
        "min_ess_bulk": ess_min,
        "min_ess_tail": ess_tail_min,
        "max_rhat": rhat_max,
        "min_ess_bulk_per_s_sampling": ess_min / out["sampling_s"] if out["sampling_s"] else None,
        "min_ess_bulk_per_s_total": ess_min / out["sample_total_s"],
        "divergences": int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats.data_vars else None,
        "mean_steps_per_draw": float(np.asarray(stats["n_steps"]).mean()) if "n_steps" in stats.data_vars else None,
        "label_switching": post.attrs.get("label_switching"),
    })
    return out


def worker_stepmix(args) -> dict:
    try:
        from stepmix.stepmix import StepMix
    except ImportError:
        return {"skipped": "stepmix is not installed (pip install stepmix)"}
    import stepmix

    df, _ = simulate(args.n, args.items, args.k, args.seed)
    x = df.to_numpy()
    n = x.shape[0]
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sm = StepMix(n_components=args.k, measurement="binary", n_init=args.starts, max_iter=args.stepmix_max_iter,
                     abs_tol=args.stepmix_abs_tol, rel_tol=0.0, init_params="random", random_state=args.seed,
                     verbose=0, progress_bar=0)
        sm.fit(x)
    secs = time.perf_counter() - t
    ll = float(sm.score(x)) * n  # score() is the average log-likelihood per person
    per_init = np.asarray(sm.lower_bound_buffer_, dtype=float) * n
    return {
        "version": getattr(stepmix, "__version__", "?"),
        "seconds": secs,
        "loglik": ll,
        "n_best": int(np.sum(np.abs(per_init - per_init.max()) < 1e-3)),
        "n_init": args.starts,
        "max_iter": args.stepmix_max_iter,
        "abs_tol_avg_ll": args.stepmix_abs_tol,
        "abs_tol_total_ll": args.stepmix_abs_tol * n,
        "n_iter_best": int(sm.n_iter_),
        "converged": bool(sm.converged_),
        "peak_rss_mib": peak_rss_mib(),
        "warnings": sorted({f"{x_.category.__name__}: {str(x_.message)[:160]}" for x_ in w}),
    }


WORKERS = {"cold": worker_cold, "warm": worker_warm, "stepmix": worker_stepmix}


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


def run_worker(kind: str, k: int, args, compiledir: str | None) -> dict:
    env = child_env(compiledir)
    if args.blas_threads is not None and kind != "stepmix":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.blas_threads)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out_path = fh.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind, "--_k", str(k), "--_out", out_path,
           "--n", str(args.n), "--items", str(args.items), "--starts", str(args.starts), "--final", str(args.final),
           "--seed", str(args.seed), "--single-starts", str(args.single_starts), "--draws", str(args.draws),
           "--tune", str(args.tune), "--chains", str(args.chains), "--stepmix-max-iter", str(args.stepmix_max_iter),
           "--stepmix-abs-tol", repr(args.stepmix_abs_tol), "--nuts" if args.nuts else "--no-nuts"]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-25:])
            return {"error": f"worker {kind} K={k} exited with {proc.returncode}", "stderr_tail": tail,
                    "process_wall_s": wall}
        res = json.loads(Path(out_path).read_text())
        res["process_wall_s"] = wall
        return res
    except subprocess.TimeoutExpired:
        return {"error": f"worker {kind} K={k} timed out after {args.timeout} s"}
    finally:
        Path(out_path).unlink(missing_ok=True)


def _fmt(v, spec="{:.2f}", none="-"):
    if v is None:
        return none
    if isinstance(v, str):
        return v
    try:
        return spec.format(v)
    except (TypeError, ValueError):
        return str(v)


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def build_table(results: dict, args) -> tuple[str, list[dict]]:
    ks = [str(k) for k in args.classes]
    rows = []

    def row(label, fn, spec="{:.2f}"):
        rows.append((label, [_fmt(fn(results["per_k"][k]), spec) for k in ks]))

    row("import bayesmix (s)", lambda r: _get(r, "warm", "import_s"))
    row("build model, lca() (s)", lambda r: _get(r, "warm", "build_s"))
    row("compile = build + 1st ll+grad, cold cache (s)", lambda r: _get(r, "cold", "compile_s"), "{:.1f}")
    row("compile = build + 1st ll+grad, warm cache (s)", lambda r: _get(r, "warm", "compile_s"), "{:.1f}")
    row("free parameters", lambda r: _get(r, "warm", "n_params"), "{:d}")
    row("ll+grad evaluation, median of 50 (ms)", lambda r: _get(r, "warm", "ll_grad_median_ms"))
    row("ll+grad evaluation, median, BLAS 1 thread (ms)", lambda r: _get(r, "warm", "ll_grad_median_blas1_ms"))
    row("one complete start, median (s)", lambda r: _get(r, "warm", "single_start_median_s"), "{:.3f}")
    row("one complete start, max (s)", lambda r: _get(r, "warm", "single_start_max_s"), "{:.3f}")
    row("one complete start, median, BLAS 1 thread (s)", lambda r: _get(r, "warm", "single_start_median_blas1_s"),
        "{:.3f}")
    row("one complete start, max, BLAS 1 thread (s)", lambda r: _get(r, "warm", "single_start_max_blas1_s"), "{:.3f}")
    row("  L-BFGS iterations, median", lambda r: (statistics.median([s["iterations"] for s in r["warm"]["single_starts"]])
                                                  if _get(r, "warm", "single_starts") else None), "{:.0f}")
    row("ML fit incl. compile, cold cache (s)", lambda r: _get(r, "cold", "fit_total_s"), "{:.1f}")
    row("ML fit incl. compile, warm cache (s)", lambda r: _get(r, "warm", "fit_total_s"), "{:.1f}")
    row("ML fit, model already compiled (s)", lambda r: _get(r, "warm", "refit_compiled_s"), "{:.1f}")
    row("ML fit, model already compiled, BLAS 1 thread (s)", lambda r: _get(r, "warm", "refit_compiled_blas1_s"),
        "{:.1f}")
    row("  of which compiling, cold (s)", lambda r: _get(r, "cold", "compile_all_functions_s"), "{:.1f}")
    row("  of which compiling, warm (s)", lambda r: _get(r, "warm", "compile_all_functions_s"), "{:.1f}")
    row("  of which not compiling, warm (s)", lambda r: _get(r, "warm", "fit_minus_compiles_s"), "{:.1f}")
    row("peak RSS, cold ML process (MiB)", lambda r: _get(r, "cold", "peak_rss_mib"), "{:.0f}")
    row("peak RSS, warm ML process (MiB)", lambda r: _get(r, "warm", "peak_rss_mib_ml"), "{:.0f}")
    row("LL bayesmix", lambda r: _get(r, "warm", "loglik"), "{:.4f}")
    row("n_best (of final starts)", lambda r: (f"{r['warm']['n_best']}/{args.final}" if _get(r, "warm", "n_best") is not None
                                               else None))
    if args.stepmix:
        row("LL StepMix", lambda r: _get(r, "stepmix", "loglik"), "{:.4f}")
        row("LL bayesmix - LL StepMix", lambda r: (r["warm"]["loglik"] - r["stepmix"]["loglik"]
                                                   if _get(r, "warm", "loglik") is not None
                                                   and _get(r, "stepmix", "loglik") is not None else None), "{:+.5f}")
        row(f"StepMix fit, {args.starts} inits (s)", lambda r: _get(r, "stepmix", "seconds"), "{:.1f}")
        row("StepMix inits at best LL", lambda r: (f"{r['stepmix']['n_best']}/{args.starts}"
                                                   if _get(r, "stepmix", "n_best") is not None else None))
    if args.nuts:
        row("NUTS nutpie compile (s)", lambda r: _get(r, "warm", "nuts", "nutpie_compile_s"), "{:.1f}")
        row(f"NUTS sampling {args.chains}x({args.tune}+{args.draws}) (s)",
            lambda r: _get(r, "warm", "nuts", "sampling_s"), "{:.1f}")
        row("NUTS sample() total incl. post-processing (s)", lambda r: _get(r, "warm", "nuts", "sample_total_s"), "{:.1f}")
        row("NUTS min bulk ESS", lambda r: _get(r, "warm", "nuts", "min_ess_bulk"), "{:.0f}")
        row("NUTS min bulk ESS / s (sampling)", lambda r: _get(r, "warm", "nuts", "min_ess_bulk_per_s_sampling"), "{:.1f}")
        row("NUTS min bulk ESS / s (sample() total)", lambda r: _get(r, "warm", "nuts", "min_ess_bulk_per_s_total"),
            "{:.1f}")
        row("NUTS max R-hat / divergences", lambda r: (f"{r['warm']['nuts']['max_rhat']:.3f} / {r['warm']['nuts']['divergences']}"
                                                       if _get(r, "warm", "nuts", "max_rhat") is not None else
                                                       _get(r, "warm", "nuts", "skipped")))
        row("peak RSS incl. NUTS (MiB)", lambda r: _get(r, "warm", "peak_rss_mib_with_nuts"), "{:.0f}")

    width = max(len(r[0]) for r in rows) + 2
    colw = 14
    lines = [" " * width + "".join(f"K={k}".rjust(colw) for k in ks)]
    lines += [label.ljust(width) + "".join(v.rjust(colw) for v in vals) for label, vals in rows]

    targets = []
    for k in ks:
        r = results["per_k"][k]
        one = _get(r, "warm", "single_start_max_s")
        targets.append({"K": int(k), "target": f"one complete start < {TARGET_ONE_START_S:g} s after compilation (max)",
                        "value_s": one, "met": None if one is None else one < TARGET_ONE_START_S})
        one1 = _get(r, "warm", "single_start_max_blas1_s")
        if one1 is not None:
            targets.append({"K": int(k), "target": f"one complete start < {TARGET_ONE_START_S:g} s, BLAS 1 thread (max)",
                            "value_s": one1, "met": one1 < TARGET_ONE_START_S})
        for cache in ("warm", "cold"):
            v = _get(r, cache, "fit_total_s")
            targets.append({"K": int(k), "target": f"{args.starts}-start fit < {TARGET_FIT_S:g} s incl. compilation, "
                                                   f"{cache} cache", "value_s": v,
                            "met": None if v is None else v < TARGET_FIT_S})
    lines.append("")
    lines.append(f"Targets (machine: {os.cpu_count()} cores)")
    for t in targets:
        met = "not run" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        lines.append(f"  K={t['K']}  {t['target']:<58} {_fmt(t['value_s'], '{:7.2f}', none='      -')} s   {met}")
    return "\n".join(lines), targets


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[2, 3], help="numbers of classes K (default 2 3)")
    p.add_argument("--n", type=int, default=7326, help="persons (default 7326, as the NLSY example)")
    p.add_argument("--items", type=int, default=17, help="binary items (default 17)")
    p.add_argument("--starts", type=int, default=20, help="random starts (default 20)")
    p.add_argument("--final", type=int, default=5, help="completed final-stage starts (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nuts", action=argparse.BooleanOptionalAction, default=True, help="run NUTS (default on)")
    p.add_argument("--stepmix", action=argparse.BooleanOptionalAction, default=True,
                   help="run StepMix when installed (default on)")
    p.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                   help="measure with an empty PyTensor compile cache first (default on); with --no-cold the warm "
                        "run uses your normal cache, which is warm only if you ran this before")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--single-starts", type=int, default=5, help="single complete starts to time (default 5)")
    p.add_argument("--stepmix-max-iter", type=int, default=2000, help="EM iterations per init (default 2000)")
    p.add_argument("--stepmix-abs-tol", type=float, default=1e-10,
                   help="StepMix abs_tol on the change of the *average* LL per EM iteration (default 1e-10, "
                        "i.e. N*1e-10 ~ 7e-7 on the total LL)")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="set OPENBLAS/OMP/MKL_NUM_THREADS for the bayesmix processes (default: unset, as a user "
                        "gets it); results go to lca_<date>_blas<N>.json")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per worker process")
    p.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/lca_<date>.json)")
    p.add_argument("--_worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--_k", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._worker:
        warnings.filterwarnings("ignore")
        args.k = args._k
        res = WORKERS[args._worker](args)
        Path(args._out).write_text(json.dumps(res, default=float))
        return 0

    start = _dt.datetime.now()
    results = {
        "benchmark": "bayesmix LCA (binary items), simulated NLSY-sized data",
        "date": start.isoformat(timespec="seconds"),
        "settings": {"n_persons": args.n, "n_items": args.items, "classes": args.classes, "n_starts": args.starts,
                     "n_final": args.final, "seed": args.seed, "nuts": args.nuts, "draws": args.draws,
                     "tune": args.tune, "chains": args.chains, "stepmix": args.stepmix, "cold": args.cold,
                     "blas_threads_env": args.blas_threads},
        "machine": {"cpu_count": os.cpu_count(), "cpu": cpu_name(), "platform": platform.platform(),
                    "loadavg_start": list(os.getloadavg())},
        "versions": versions(),
        "bayesmix_commit": git_commit(),
        "targets_definition": {"one_start_s": TARGET_ONE_START_S, "fit_incl_compile_s": TARGET_FIT_S},
        "per_k": {},
    }
    if args.blas_threads is not None:
        print(f"BLAS threads limited to {args.blas_threads} in the bayesmix processes (OPENBLAS_NUM_THREADS etc.)")
    print(f"bayesmix LCA benchmark: N={args.n} persons, {args.items} binary items, K in {args.classes}, "
          f"starts {args.starts}/{args.final}, seed {args.seed}")
    print(f"machine: {os.cpu_count()} cores ({results['machine']['cpu']}), load average "
          f"{results['machine']['loadavg_start'][0]:.2f} at start -- timings on a shared machine are noisy", flush=True)

    for k in args.classes:
        per = results["per_k"][str(k)] = {}
        df, truth = simulate(args.n, args.items, k, args.seed)
        per["data"] = {"class_share_true": truth["class_share"], "class_count_sample": truth["sample_share"],
                       "item_mean": df.mean().round(4).tolist()}
        tmp = tempfile.mkdtemp(prefix=f"bench_lca_pytensor_K{k}_") if args.cold else None
        try:
            if args.cold:
                print(f"[K={k}] cold run (empty PyTensor cache {tmp}) ...", flush=True)
                per["cold"] = run_worker("cold", k, args, tmp)
                print(f"[K={k}]   done in {_fmt(per['cold'].get('process_wall_s'), '{:.0f}')} s", flush=True)
            print(f"[K={k}] warm run{' + NUTS' if args.nuts else ''} ...", flush=True)
            per["warm"] = run_worker("warm", k, args, tmp)
            per["warm"]["cache"] = "same directory as the cold run" if args.cold else "default PyTensor cache"
            print(f"[K={k}]   done in {_fmt(per['warm'].get('process_wall_s'), '{:.0f}')} s", flush=True)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.stepmix:
            print(f"[K={k}] StepMix ...", flush=True)
            per["stepmix"] = run_worker("stepmix", k, args, None)
        for part in ("cold", "warm", "stepmix"):
            if "error" in per.get(part, {}):
                print(f"[K={k}] {part} FAILED: {per[part]['error']}\n{per[part].get('stderr_tail', '')}", flush=True)
            elif "skipped" in per.get(part, {}):
                print(f"[K={k}] {part} skipped: {per[part]['skipped']}", flush=True)

    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["total_wall_s"] = (_dt.datetime.now() - start).total_seconds()
    table, targets = build_table(results, args)
    results["targets"] = targets
    print()
    print(f"Sizes: N = {args.n} persons, {args.items} binary items, starts = {args.starts} random / {args.final} final; "
          f"NUTS {args.chains} chains x {args.draws} draws ({args.tune} tune)")
    print(table)
    print(f"\nload average: {results['machine']['loadavg_start'][0]:.2f} at start, "
          f"{results['machine']['loadavg_end'][0]:.2f} at end; total {results['total_wall_s'] / 60:.1f} min")

    suffix = "" if args.blas_threads is None else f"_blas{args.blas_threads}"
    out = args.output or RESULTS_DIR / f"lca_{start.date().isoformat()}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
