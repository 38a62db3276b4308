#!/usr/bin/env python
"""Memory of models built (and fitted) in a loop, as a simulation study or a notebook does.

Three loops of ``--builds`` iterations (default 30), each in a fresh Python process:

* ``lca``      : ``bayesmix.families.example("lca")`` (48 persons, 4 binary items, K = 2)
* ``twolevel`` : ``bayesmix.families.example("lca", two_level=True)`` (8 clusters of 6,
  random class-logit intercept)
* ``fit``      : the single-level example built and fitted, ``fit_ml(n_starts=1, n_final=1)``

After each iteration the previous model is dropped and ``gc.collect()`` runs; the
resident set size (psutil, else /proc/self/statm) is recorded. Printed per loop: RSS after
the first iteration (compilation and imports are paid there), after the last, and the
growth per iteration as the least-squares slope over iterations 5..N (the first ones
still fill caches). Also printed: the number of entries in PyMC's ``_logprob`` dispatch
registry, which grew by one class per build before the fix (every ``pm.CustomDist``
created a new ``CustomDistRV`` subclass registered globally, whose logp closure kept the
whole model alive).

Run:

    .venv/bin/python benchmarks/bench_memory.py                # ~1-2 min warm on 2 cores
    .venv/bin/python benchmarks/bench_memory.py --builds 50 --loops lca fit
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _env import child_env  # noqa: E402


def rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil is optional
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(loop: str, n: int) -> dict:
    import gc
    import warnings

    warnings.simplefilter("ignore")
    import bayesmix as bm
    from bayesmix.families import example
    from pymc.logprob.abstract import _logprob

    rss, registry = [], []
    model = None
    for _ in range(n):
        model = None
        gc.collect()
        if loop == "lca":
            model = example("lca")
        elif loop == "twolevel":
            model = example("lca", two_level=True)
        else:
            model = example("lca")
            bm.fit_ml(model, n_starts=1, n_final=1, seed=0, progress=False)
        gc.collect()
        rss.append(rss_mib())
        registry.append(len(_logprob.registry))
    return {"rss": rss, "registry": registry}


def slope(y: list[float], first: int = 4) -> float:
    import numpy as np

    ys = np.asarray(y[first:], float)
    if ys.size < 2:
        return float("nan")
    x = np.arange(ys.size, dtype=float)
    return float(np.polyfit(x, ys, 1)[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builds", type=int, default=30)
    ap.add_argument("--loops", nargs="+", default=["lca", "twolevel", "fit"], choices=["lca", "twolevel", "fit"])
    ap.add_argument("--backend", default=None, choices=["jax", "c", "numba"],
                    help="BAYESMIX_BACKEND of the children (default: the package default)")
    ap.add_argument("--compiledir", default=None, help="PyTensor base_compiledir of the children (default: inherited)")
    ap.add_argument("--child", nargs=2, metavar=("LOOP", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    env = child_env(args.compiledir)
    if args.backend:
        env["BAYESMIX_BACKEND"] = args.backend
    print(f"backend: {env.get('BAYESMIX_BACKEND', 'package default')}")
    print(f"{'loop':<10}{'builds':>7}{'RSS 1st (MiB)':>15}{'RSS last':>10}{'MiB/build':>11}{'registry 1st->last':>20}")
    for loop in args.loops:
        out = subprocess.run([sys.executable, __file__, "--child", loop, str(args.builds)], capture_output=True,
                             text=True, env=env, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rss, reg = res["rss"], res["registry"]
        print(f"{loop:<10}{len(rss):>7}{rss[0]:>15.1f}{rss[-1]:>10.1f}{slope(rss):>11.3f}"
              f"{f'{reg[0]} -> {reg[-1]}':>20}", flush=True)


if __name__ == "__main__":
    main()
