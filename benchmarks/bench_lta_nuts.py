"""NUTS efficiency on the real-data LTA (prints numbers, asserts nothing).

The single-level EPI LTA of ``models/epi_lta.py``: 474 persons, items V2, V9, V16, V40,
V50 at two occasions, K = 2, measurement invariance, first-order Markov (13 free
parameters). Reports

* the ML fit time (the chains start at the ML point, ``bm.sample``'s policy);
* compile time of nutpie's model (``fit.bayes._nutpie_model``: JAX with the JAX backend);
* sampling time of ``nutpie.sample`` alone (tune + draws, all chains; a first run, which
  also JIT-compiles the JAX functions, and a second one, used for ESS/s) and the wall time
  of ``bm.sample`` with bayesmix's post-processing (relabelling, pointwise
  log-likelihood), on the compiled model;
* min and median bulk ESS over the free parameters (tau, alpha_1, alpha_2, gamma_1_2),
  and ESS per second of sampling.

    .venv/bin/python benchmarks/bench_lta_nuts.py [--draws 1000] [--tune 1000] [--chains 4]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    import arviz as az
    import nutpie

    import bayesmix as bm
    from bayesmix.fit.bayes import _nutpie_model
    from bayesmix.fit.compiled import get_backend

    warnings.simplefilter("ignore", bm.BayesmixWarning)
    df = bm.load_dataset("epi")
    t = time.perf_counter()
    m = bm.lta(df, bm.dataset_items("epi"), 2, person="person", time="time")
    res = bm.fit_ml(m, n_starts=20, n_final=5, seed=1, progress=False)
    t_ml = time.perf_counter() - t

    t = time.perf_counter()
    cm = _nutpie_model(m, res.point)
    t_compile = time.perf_counter() - t

    # the first call also traces and JIT-compiles the JAX logp/gradient (lazily, inside
    # nutpie): timed apart as the first run; ESS/s is taken from the second run
    t = time.perf_counter()
    nutpie.sample(cm, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed + 1, progress_bar=False)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    raw = nutpie.sample(cm, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                        progress_bar=False)
    t_sample = time.perf_counter() - t
    ess = az.ess(raw, var_names=list(m.free_names), method="bulk")
    values = np.concatenate([ess[n].to_numpy().ravel() for n in m.free_names])
    rhat = az.rhat(raw, var_names=list(m.free_names))
    rh = np.concatenate([rhat[n].to_numpy().ravel() for n in m.free_names])
    div = int(raw["sample_stats"]["diverging"].sum())
    steps = raw["sample_stats"]["n_steps"].to_numpy()

    t = time.perf_counter()
    bm.sample(m, ml=res, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, progress=False)
    t_bm = time.perf_counter() - t

    print(f"EPI LTA (K=2, invariant, Markov; {m.data.n_persons} persons, {len(m.free_names)} free blocks, "
          f"{res.n_params} parameters); backend {get_backend()}, {os.cpu_count()} CPUs")
    print(f"  chains {args.chains}, tune {args.tune}, draws {args.draws} per chain")
    print(f"  ML fit (20/5 starts, incl. its compilation): {t_ml:.1f} s")
    print(f"  nutpie compile: {t_compile:.2f} s")
    print(f"  nutpie first run (may include lazy JAX tracing): {t_first:.2f} s")
    print(f"  nutpie sampling (second run): {t_sample:.2f} s ({args.chains * (args.tune + args.draws) / t_sample:.0f} "
          "iterations/s over all chains)")
    print(f"  bm.sample wall time on the compiled model (sampling + relabel + pointwise LL): {t_bm:.2f} s")
    print(f"  bulk ESS over {values.size} free elements: min {values.min():.0f}, median {np.median(values):.0f}")
    print(f"  ESS per second of sampling: min {values.min() / t_sample:.0f}, median "
          f"{np.median(values) / t_sample:.0f}; per second of bm.sample: min {values.min() / t_bm:.0f}")
    print(f"  max R-hat {rh.max():.4f}; divergences {div}; mean leapfrog steps per draw {steps.mean():.1f}")


if __name__ == "__main__":
    main()
