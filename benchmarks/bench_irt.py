"""2PL and 3PL on the ability data: bayesmix's fit time beside girth's, with both LLs
(prints sizes, times, memory and LLs; asserts nothing).

Data: ``bm.load_dataset("ability")``, 1525 x 16 binary ICAR items with 1143 empty cells
(16 persons answered none: bayesmix drops them, they contribute log 1 everywhere).
Logit link (girth's model): P(y = 1 | eta) = g + (1 - g) expit(a (eta - b)), eta ~ N(0, 1).

* bayesmix: ``bm.irt_2pl`` / ``bm.irt_3pl`` (direct), ``fit_ml`` with ``--starts`` (default
  4 2), timed including compilation (JAX) and again on the compiled model; BLAS on one
  thread inside fit_ml.
* girth (PyPI, ``girth.twopl_mml`` / ``threepl_mml``, marginal ML by item-wise EM-like
  updates, missing cells tagged with ``girth.tag_missing_data``), run in a separate Python
  (``--girth-python``, a venv of its own: girth is a benchmark-only dependency, not in
  pyproject.toml). girth reports no LL; it is computed at girth's estimates by bayesmix's
  compiled per-person LL (61 trapezoid nodes) and by an independent numpy LL on a
  801-point grid (both printed). girth bounds a in [0.25, 4] and g in [0, 0.33].

    python -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install girth "numpy<2" "scipy<1.13"
    # girth 0.8.0's threepl_mml fails with numpy 2 / scipy 1.18 ("setting an array element
    # with a sequence" in its fminbound call); numpy 1.26.4 / scipy 1.12.0 run it
    .venv/bin/python benchmarks/bench_irt.py --girth-python /tmp/benchenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import special

import bayesmix as bm
from bayesmix.fit.compiled import compiled, get_backend

GIRTH_CHILD = r"""
import json, sys, time, resource
import numpy as np
import girth
y = np.load(sys.argv[1])  # persons x items, NaN missing
data = np.where(np.isnan(y), -1, y).astype(int).T  # girth: items x persons
data = girth.tag_missing_data(data, [0, 1])
from importlib.metadata import version
out = {"version": version("girth")}
import scipy
out["numpy"], out["scipy"] = np.__version__, scipy.__version__
for name, fn in (("2PL", girth.twopl_mml), ("3PL", girth.threepl_mml)):
    t = time.perf_counter()
    try:
        est = fn(data)
    except Exception as exc:  # girth 0.8.0's 3PL fails under numpy 2 / scipy >= 1.13 (fminbound)
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    out[name] = {"seconds": time.perf_counter() - t,
                 "a": np.asarray(est["Discrimination"], float).tolist(),
                 "b": np.asarray(est["Difficulty"], float).tolist(),
                 "g": np.asarray(est.get("Guessing", np.zeros(data.shape[0])), float).tolist()}
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def numpy_loglik(y, a, b, g, n=801, bound=9.0):
    """Independent marginal LL of eq. (42) (logit) on an n-point trapezoid grid: persons
    with no answer contribute 0."""
    z = np.linspace(-bound, bound, n)
    logw = -0.5 * z**2
    logw -= special.logsumexp(logw)
    lin = a[None] * (z[:, None] - b[None])
    p1 = g[None] + (1 - g[None]) * special.expit(lin)
    obs = ~np.isnan(y)
    y1, y0 = (obs & (y == 1)).astype(float), (obs & (y == 0)).astype(float)
    log_p0 = np.log1p(-g[None]) - np.logaddexp(0.0, lin)  # log((1 - g)(1 - expit)): finite where p1 rounds to 1
    nodes = y1 @ np.log(p1).T + y0 @ log_p0.T + logw[None]
    return float(special.logsumexp(nodes, axis=1).sum())


def bayesmix_fit(df, guessing, starts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        t = time.perf_counter()
        fam = bm.irt_3pl(df, link="logit", guessing=guessing)
        res = bm.fit_ml(fam, n_starts=starts[0], n_final=starts[1], seed=0, progress=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        bm.fit_ml(fam, n_starts=starts[0], n_final=starts[1], seed=0, progress=False)
        again = time.perf_counter() - t
    comp = compiled(fam)
    theta = comp.packing.pack(res.point)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        comp.ll_and_grad(theta)
        times.append(time.perf_counter() - t)
    return fam, res, first, again, 1e3 * float(np.median(times))


def ll_at(fam, a, b, g):
    """bayesmix's LL at given (a, b, g) (g = 0: 2PL; logit g clipped into the bounds)."""
    point = {"a": np.asarray(a, float), "b": np.asarray(b, float)}
    if fam.spec.guessing:
        point["gamma"] = special.logit(np.clip(np.asarray(g, float), 3.1e-7, 1 - 3.1e-7))
    return float(compiled(fam).unit_loglik(compiled(fam).packing.pack(point)).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, nargs=2, default=(4, 2))
    ap.add_argument("--girth-python", default=None, help="a Python with girth installed (skipped if not given)")
    args = ap.parse_args()
    df = bm.load_dataset("ability")
    y = df.to_numpy(float)
    print(f"ability: {y.shape[0]} persons x {y.shape[1]} binary items, {int(np.isnan(y).sum())} empty cells; "
          f"logit; backend {get_backend()}; bayesmix STARTS = {args.starts[0]} {args.starts[1]}, 61 trapezoid nodes")
    girth = None
    if args.girth_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "y.npy"
            np.save(path, y)
            t = time.perf_counter()
            proc = subprocess.run([args.girth_python, "-c", GIRTH_CHILD, str(path)], capture_output=True, text=True)
            wall = time.perf_counter() - t
        if proc.returncode == 0:
            girth = json.loads(proc.stdout.strip().splitlines()[-1])
            girth["wall"] = wall
        else:
            print("girth failed:", proc.stderr[-2000:])
    rows = []
    for name, guessing in (("2PL", False), ("3PL", True)):
        fam, res, first, again, ms = bayesmix_fit(df, guessing, args.starts)
        nat = res.natural
        g_hat = np.asarray(nat.get("g", np.zeros(y.shape[1])), float)
        row = {"model": name, "n_params": res.n_params, "ll": res.loglik,
               "ll_numpy": numpy_loglik(y, np.asarray(nat["a"]), np.asarray(nat["b"]), g_hat),
               "fit_first": first, "fit_again": again, "compile": res.convergence["compile_seconds"],
               "ms_ll_grad": ms, "at_bound": len(res.convergence["fixed_at_bound"])}
        if girth and "error" in girth[name]:
            row["girth_error"] = girth[name]["error"]
        elif girth:
            gi = girth[name]
            a, b, g = (np.asarray(gi[k], float) for k in ("a", "b", "g"))
            row.update(girth_seconds=gi["seconds"], girth_ll=ll_at(fam, a, b, g), girth_ll_numpy=numpy_loglik(y, a, b, g),
                       girth_max_da=float(np.max(np.abs(a - np.asarray(nat["a"])))),
                       girth_max_db=float(np.max(np.abs(b - np.asarray(nat["b"])))),
                       girth_max_dg=float(np.max(np.abs(g - g_hat))),
                       girth_at_bounds=int(np.sum(np.isclose(a, 0.25) | np.isclose(a, 4.0) | np.isclose(g, 0.33))),
                       bayesmix_beyond=int(np.sum((np.asarray(nat["a"]) > 4.0) | (g_hat > 0.33))))
        rows.append(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in rows:
        print(f"\n{r['model']} ({r['n_params']} parameters)")
        print(f"  bayesmix LL {r['ll']:.6f} (numpy 801-point LL at its estimates {r['ll_numpy']:.6f}); "
              f"{r['at_bound']} parameter(s) at a bound")
        print(f"  bayesmix fit incl. compilation {r['fit_first']:.1f} s (compile {r['compile']:.1f} s), "
              f"fit again on the compiled model {r['fit_again']:.1f} s, one LL+gradient {r['ms_ll_grad']:.2f} ms")
        if girth and "girth_error" in r:
            print(f"  girth failed: {r['girth_error']}")
        elif girth:
            print(f"  girth {girth.get('version')} (numpy {girth.get('numpy')}, scipy {girth.get('scipy')}): fit {r['girth_seconds']:.1f} s; LL at girth's estimates "
                  f"{r['girth_ll']:.6f} (bayesmix) / {r['girth_ll_numpy']:.6f} (numpy); bayesmix - girth "
                  f"{r['ll'] - r['girth_ll']:+.4f}")
            print(f"  max |difference| of estimates: a {r['girth_max_da']:.3f}, b {r['girth_max_db']:.3f}, "
                  f"g {r['girth_max_dg']:.3f}; girth estimates at its bounds (a 0.25 or 4, g 0.33): "
                  f"{r['girth_at_bounds']}; bayesmix estimates outside girth's box: {r['bayesmix_beyond']}")
    print(f"\npeak RSS bayesmix process {peak:.0f} MiB" +
          (f"; girth process {girth['peak_rss_mib']:.0f} MiB (wall incl. import {girth['wall']:.1f} s)" if girth else
           "; girth not run (give --girth-python)"))
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
