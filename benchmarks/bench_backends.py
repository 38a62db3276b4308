#!/usr/bin/env python
"""Time to a first result with each PyTensor backend (issue 11, item 2).

For every backend (C, Numba, JAX) and model, in FRESH Python processes with an
EMPTY compile directory (a new temporary ``base_compiledir``, ``NUMBA_CACHE_DIR``
inside it; JAX keeps no persistent cache unless configured, so every JAX process
is cold), then again with that directory filled ("warm"):

* ``lca``  : 3-class LCA, 7326 persons x 17 binary items (the NLSY size of
  ``bench_lca.py``, simulated with its ``simulate``)
* ``lca2`` : two-level LCA, 100 clusters x 15 persons, 6 binary items, K = 2,
  random class-logit intercepts (the design of tests/test_integration_default.py)
* ``m6``   : Table 3 Model 6 (within-between mixture regression, 100 x 10,
  2-D trapezoid 15 x 101 nodes, ``models/table3_model5_vs_model6.py``)

it records import, build, compile + first call of the LL + gradient function,
the per-evaluation time (median of 30, BLAS on one thread), and the end-to-end
``build + fit_ml`` wall time (``lca``, ``lca2``: 20 starts / 5 final, defaults;
``m6``: 4 / 1 without the integration check, a 20 / 5 Model 6 fit takes minutes
whatever the backend). With ``--nuts`` also nutpie's compile time and the time
to the first draw with ``backend="numba"`` and ``backend="jax"`` (cold), and the
time per gradient during sampling (``lca``, ``lca2``). The log-likelihood and
gradient at one fixed point, the ML log-likelihood and the SEs are compared
with the C backend's.

Each timing is repeated ``--repeats`` times (new empty directory each time) and
the minimum is reported: the machine is shared. ``uptime`` is printed before and
after.

    .venv/bin/python benchmarks/bench_backends.py                  # everything (~30 min on 2 cores)
    .venv/bin/python benchmarks/bench_backends.py --models lca --backends jax c --repeats 1 --no-nuts
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _env import child_env  # noqa: E402

RESULTS_DIR = HERE / "results"
MODELS = ("lca", "lca2", "m6")
BACKENDS = ("c", "numba", "jax")
SIZES = {"lca": "3-class LCA, 7326 x 17 binary items",
         "lca2": "two-level LCA, 100 clusters x 15 persons, 6 items, K = 2 (61-point rule)",
         "m6": "Table 3 Model 6, 100 x 10, trapezoid 15 x 101 nodes"}


# ---------------------------------------------------------------------------- child
def _build(which):
    import numpy as np

    import bayesmix as bm

    if which == "lca":
        from bench_lca import simulate

        df = simulate(7326, 17, 3, 0)[0]
        return bm.lca(df, list(df.columns), n_classes=3)
    if which == "lca2":
        from bayesmix.simulate import simulate_lca

        tau = np.array([[-1.5, -1.2, -1.0, -1.4, -0.8, -1.1], [1.2, 1.5, 0.9, 1.3, 1.0, 1.4]])
        df, _ = simulate_lca(tau, [0.3], n_clusters=100, cluster_size=15, psi=[[2.6]], seed=11)
        return bm.lca(df, [f"y{j}" for j in range(1, 7)], 2, cluster="cluster")
    spec = importlib.util.spec_from_file_location("table3", HERE.parent / "models" / "table3_model5_vs_model6.py")
    table3 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table3)
    return table3.model6(table3.simulate()[0])


def _fit_kwargs(which):
    return dict(n_starts=4, n_final=1, check_integration=False) if which == "m6" else dict(n_starts=20, n_final=5)


def child_fit(which):
    t0 = time.perf_counter()
    import numpy as np
    from threadpoolctl import threadpool_limits

    import bayesmix as bm
    from bayesmix.fit import compiled as cmod

    out = {"import_s": time.perf_counter() - t0, "backend": cmod.get_backend()}
    record = {}
    orig = cmod.Compiled._call

    def _call(self, key, build, theta):  # build + first call of every compiled function
        if (key, cmod.get_backend()) in self._fns:
            return orig(self, key, build, theta)
        t = time.perf_counter()
        res = orig(self, key, build, theta)
        record[key] = record.get(key, 0.0) + time.perf_counter() - t
        return res

    cmod.Compiled._call = _call
    t = time.perf_counter()
    m = _build(which)
    out["build_s"] = time.perf_counter() - t
    comp = cmod.compiled(m)
    x0 = comp.packing.pack(m.start_point(np.random.default_rng(0)))
    t = time.perf_counter()
    ll0, g0 = comp.ll_and_grad(x0)
    out["compile_first_call_s"] = time.perf_counter() - t
    res = bm.fit_ml(m, progress=False, seed=0, **_fit_kwargs(which))
    out["end_to_end_s"] = time.perf_counter() - t0 - out["import_s"]
    out["compile_by_function_s"] = record
    with threadpool_limits(limits=1, user_api="blas"):
        comp.ll_and_grad(res.theta)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            comp.ll_and_grad(res.theta)
            times.append(time.perf_counter() - t)
    out.update(eval_ms=1e3 * float(np.median(times)), ll_x0=float(ll0), grad_x0=np.asarray(g0).tolist(),
               loglik=float(res.loglik), se=res.params["se"].astype(float).tolist())
    return out


def child_nuts(which, nutpie_backend):
    t0 = time.perf_counter()
    import nutpie
    import numpy as np

    out = {"import_s": time.perf_counter() - t0}
    m = _build(which)
    init = m.start_point(np.random.default_rng(0))
    t = time.perf_counter()
    cm = nutpie.compile_pymc_model(m.model, initial_points=dict(init), jitter_rvs=set(), backend=nutpie_backend,
                                   gradient_backend="pytensor")
    out["nutpie_compile_s"] = time.perf_counter() - t
    t1 = time.perf_counter()
    nutpie.sample(cm, draws=1, tune=1, chains=1, progress_bar=False, seed=0)
    out["first_draw_s"] = time.perf_counter() - t1
    out["to_first_draw_s"] = time.perf_counter() - t
    if which != "m6":
        t = time.perf_counter()
        dt = nutpie.sample(cm, draws=150, tune=150, chains=2, cores=2, progress_bar=False, seed=1)
        secs = time.perf_counter() - t
        steps = int(dt["sample_stats"]["n_steps"].sum())
        if "warmup_sample_stats" in dt.children:
            steps += int(dt["warmup_sample_stats"]["n_steps"].sum())
        out.update(sampling_s=secs, gradients=steps, ms_per_gradient=1e3 * secs / max(steps, 1))
    return out


# --------------------------------------------------------------------------- parent
def run_child(args, compiledir, backend=None):
    env = child_env(compiledir)
    if backend is not None:
        env["BAYESMIX_BACKEND"] = backend
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:], "process_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    out["stderr_lines"] = [ln for ln in proc.stderr.splitlines() if ln.startswith("bayesmix:")]
    return out


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--nuts", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--output", default=None)
    ap.add_argument("--report", default=None, metavar="JSON", help="only print the tables of an earlier run")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return
    if args.child:
        kind, which, *rest = args.child
        out = child_fit(which) if kind == "fit" else child_nuts(which, rest[0])
        print(json.dumps(out))
        return
    runs = {"uptime_start": uptime(), "fit": [], "nuts": []}
    print(runs["uptime_start"], flush=True)
    for rep in range(args.repeats):
        for which in args.models:
            for backend in args.backends:
                with tempfile.TemporaryDirectory(prefix="bm_backend_") as d:
                    for phase in ("cold", "warm"):
                        r = run_child(["fit", which], d, backend)
                        r.update(model=which, backend=backend, phase=phase, repeat=rep)
                        runs["fit"].append(r)
                        print(f"[{rep}] {which:5s} {backend:6s} {phase}: "
                              + (r["error"][-300:] if "error" in r else
                                 f"e2e {r['end_to_end_s']:.1f} s, compile+1st {r['compile_first_call_s']:.1f} s, "
                                 f"eval {r['eval_ms']:.2f} ms, LL {r['loglik']:.4f}"), flush=True)
            if args.nuts:
                for nb in ("numba", "jax"):
                    with tempfile.TemporaryDirectory(prefix="bm_nutpie_") as d:
                        r = run_child(["nuts", which, nb], d)
                    r.update(model=which, nutpie_backend=nb, repeat=rep)
                    runs["nuts"].append(r)
                    print(f"[{rep}] {which:5s} nutpie {nb}: " + (r["error"][-300:] if "error" in r else
                          f"compile {r['nutpie_compile_s']:.1f} s, first draw after {r['to_first_draw_s']:.1f} s"
                          + (f", {r['ms_per_gradient']:.2f} ms/gradient" if "ms_per_gradient" in r else "")),
                          flush=True)
    runs["uptime_end"] = uptime()
    print(runs["uptime_end"])
    print(report(runs))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = Path(args.output or RESULTS_DIR / f"backends_{_dt.date.today().isoformat()}.json")
    path.write_text(json.dumps(runs, indent=1))
    print(f"raw numbers: {path}")


def _min(rows, key):
    vals = [r[key] for r in rows if key in r]
    return min(vals) if vals else float("nan")


def report(runs) -> str:
    import numpy as np

    lines = ["| model | backend | cold: end to end (s) | cold: compile + 1st LL+grad (s) | warm: end to end (s) "
             "| warm: compile + 1st (s) | LL+grad (ms) | max abs difference from C |", "|" + "---|" * 8]
    for which in MODELS:
        ref = [r for r in runs["fit"] if r["model"] == which and r["backend"] == "c" and "ll_x0" in r]
        for backend in BACKENDS:
            rows = [r for r in runs["fit"] if r["model"] == which and r["backend"] == backend and "error" not in r]
            if not rows:
                continue
            cold = [r for r in rows if r["phase"] == "cold"]
            warm = [r for r in rows if r["phase"] == "warm"]
            diff = "ref" if backend == "c" else (
                f"{max(abs(r['ll_x0'] - ref[0]['ll_x0']) for r in rows):.1e} (x0), "
                f"{max(abs(r['loglik'] - ref[0]['loglik']) for r in rows):.1e} (ML), grad "
                f"{max(np.max(np.abs(np.subtract(r['grad_x0'], ref[0]['grad_x0']))) for r in rows):.1e}, SE "
                f"{max(np.nanmax(np.abs(np.subtract(r['se'], ref[0]['se']))) for r in rows):.1e}"
                if ref else "n/a")
            lines.append(f"| {which} | {backend} | {_min(cold, 'end_to_end_s'):.1f} | "
                         f"{_min(cold, 'compile_first_call_s'):.1f} | {_min(warm, 'end_to_end_s'):.1f} | "
                         f"{_min(warm, 'compile_first_call_s'):.2f} | {_min(rows, 'eval_ms'):.2f} | {diff} |")
    if runs["nuts"]:
        lines += ["", "| model | nutpie backend | compile (s) | to first draw (s) | ms per gradient (sampling) |",
                  "|---|---|---|---|---|"]
        for which in MODELS:
            for nb in ("numba", "jax"):
                rows = [r for r in runs["nuts"] if r["model"] == which and r["nutpie_backend"] == nb
                        and "error" not in r]
                if rows:
                    lines.append(f"| {which} | {nb} | {_min(rows, 'nutpie_compile_s'):.1f} | "
                                 f"{_min(rows, 'to_first_draw_s'):.1f} | {_min(rows, 'ms_per_gradient'):.2f} |")
    lines += ["", "sizes: " + "; ".join(f"{k}: {v}" for k, v in SIZES.items()),
              f"load: {runs['uptime_start']} -> {runs.get('uptime_end', '')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
