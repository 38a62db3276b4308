"""Integration accuracy with default arguments (issue "Right by default", item 1).

For every design of the tests and models/ scripts that integrates random effects
numerically, fit with ``fit_ml``'s defaults (its own integration check on, so a
refinement happens where the defaults would be off) and compare the reported LL
with a dense reference integral at the same parameters: a trapezoid rule with 801
points on +-8 sd (1-D) or 201 x 201 points (2-D). Target: |difference| <= 0.01.

    python benchmarks/integration_audit.py            # all designs (several minutes)
    python benchmarks/integration_audit.py --quick    # the first three
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import bayesmix as bm
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca, simulate_mixture_regression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

TAU = np.array([[-1.5, -1.2, -1.0, -1.4, -0.8, -1.1], [1.2, 1.5, 0.9, 1.3, 1.0, 1.4]])
ITEMS = [f"y{j}" for j in range(1, 7)]


def dense(dim: int) -> bm.Integration:
    return bm.Integration("trapezoid", n_points=801 if dim == 1 else 201, bound=8.0)


def lca_issue():
    """The issue's two-level LCA: 100 clusters x 15, 6 binary items, K = 2, Var(alpha) 2.6."""
    df, _ = simulate_lca(TAU, [0.3], n_clusters=100, cluster_size=15, psi=[[2.6]], seed=11)
    return bm.lca(df, ITEMS, 2, cluster="cluster")


def lca_large_clusters():
    """8 clusters x 400 persons: narrow random-effect posteriors."""
    df, _ = simulate_lca(TAU, [0.3], n_clusters=8, cluster_size=400, psi=[[1.0]], seed=3)
    return bm.lca(df, ITEMS, 2, cluster="cluster")


def lca_three_classes():
    """K = 3: two correlated class-logit intercepts (2-D)."""
    tau = np.vstack([TAU, np.zeros(6)])
    df, _ = simulate_lca(tau, [0.3, 0.1], n_clusters=60, cluster_size=12, psi=[[1.5, 0.5], [0.5, 1.0]], seed=5)
    return bm.lca(df, ITEMS, 3, cluster="cluster")


def table2_model(k):
    import table2_class_level_mse as t2

    design = t2.design(k)
    df, _ = design.generate(np.random.default_rng(0))
    return design.build(df)


def table3_model6():
    import table3_model5_vs_model6 as t3

    df, _ = t3.simulate()
    return bm.mixture_regression(df, "y", ["x"], 2, cluster="cluster", class_level="within-between",
                                 random=["intercept"])


def exam_within():
    import exam_mixture_regression as ex

    data = bm.load_dataset("exam")
    return bm.mixture_regression(data, ex.OUTCOME, [ex.COVARIATE], 2, cluster=ex.CLUSTER, class_level="within",
                                 random=["intercept"])


def registry(name):
    return lambda: bm.families.example(name, True)


DESIGNS = [("LCA 100 x 15, K=2 (issue)", lca_issue), ("LCA 8 x 400, K=2", lca_large_clusters),
           ("Table 2 Model 2 (within, v=0)", lambda: table2_model(2)),
           ("Table 2 Model 4 (within, v=0.2)", lambda: table2_model(4)),
           ("LCA 60 x 12, K=3 (2-D)", lca_three_classes), ("Exam, within class, random intercept", exam_within),
           ("Table 3 Model 6 (2-D)", table3_model6)]
DESIGNS += [(f"registry example {n} (two-level)", registry(n)) for n in bm.families.REGISTRY]


def audit(name, make):
    model = make()
    if model is None or not model.integration_dim:
        return None
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bm.fit_ml(model, n_starts=4, n_final=2, seed=1, progress=False)
    seconds = time.perf_counter() - t0
    fam = res.model
    ref = float(compiled(fam.with_spec(integration=dense(fam.integration_dim))).unit_loglik_only(res.theta).sum())
    refined = any(issubclass(w.category, bm.exceptions.IntegrationWarning) for w in caught)
    return {"design": name, "dim": fam.integration_dim, "rule": fam.spec.integration.describe(fam.integration_dim),
            "refined": refined, "loglik": res.loglik, "dense": ref, "diff": res.loglik - ref, "seconds": seconds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N designs")
    args = ap.parse_args(argv)
    rows = []
    for name, make in (DESIGNS[:3] if args.quick else DESIGNS)[args.skip:]:
        row = audit(name, make)
        if row is None:
            continue
        rows.append(row)
        print(f"{row['design']:<42} dim {row['dim']}  {row['rule']:<48} refined={row['refined']!s:<5} "
              f"LL {row['loglik']:.4f}  dense {row['dense']:.4f}  diff {row['diff']:+.2e}  ({row['seconds']:.0f} s)",
              flush=True)
    worst = max(rows, key=lambda r: abs(r["diff"]))
    print(f"\nworst |LL - dense| = {abs(worst['diff']):.2e} ({worst['design']}); target <= 0.01: "
          f"{'met' if abs(worst['diff']) <= 0.01 else 'NOT met'}")


if __name__ == "__main__":
    main()
