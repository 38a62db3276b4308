"""Table 5 and Figure 4 of the paper (section 7): latent class analysis (LCA)
against the grade of membership model (GoM) with 2 and 3 classes.

The paper fits the NLSY 1980 antisocial-behaviour items (7326 persons x 17
binary items: 8 property, 5 personal, 4 drug offences), which are not public.
This script simulates data of that size from a 3-class *restricted* GoM
(eq. 35), whose generating values are below (``TRUTH``), and fits

* LCA with K = 2 and 3 classes (eq. 1-2),
* GoM K = 2 (eq. 28 + 30: one random class logit alpha_1j ~ N(alpha_1, psi)),
  from 30 random starts completing the best 5 plus the LCA-based start the paper
  recommends (``GoMModel.start_from_lca``: the LCA solution with sd(alpha_1j) = 20),
* GoM K = 3 restricted (eq. 35: alpha_cj = alpha_c + lambda_c eta_j), 30 / 5
  random starts plus the start from the 3-class LCA (loadings 20 x (2, 1): the
  classes follow one another along eta_j, ``start_from_lca``),

all with the logit link. It prints a table like Table 5 (LL, number of free
parameters, BIC) beside the paper's LLs, checks that the GoM LL is above the
LCA LL for K = 2 and K = 3, and draws Figure 4: the item probabilities
P(y = 1 | offense-prone class) of the 2-class GoM against those of the 2-class
LCA, with their correlation (paper: 0.99, GoM probabilities all higher).

Nesting (section 7): the 2-class LCA is the 2-class GoM at psi = infinity (one
parameter fewer, eq. 16). The 3-class LCA is not a parameter restriction of
the restricted GoM (the paper says "not nested"), but it is its limit when the
loadings grow with the class regions along eta_j set by alpha (with 3 lines
alpha_c + lambda_c eta every class can win on an interval), so the restricted
GoM LL should also reach the LCA's or exceed it.

    python models/table5_gom_vs_lca.py                  # N = 7326, STARTS = 30 5 (about 1.5 min)
    python models/table5_gom_vs_lca.py --quick          # N = 1000, STARTS = 6 2, <= 300 iterations
    python models/table5_gom_vs_lca.py --out figs/      # Figure 4 as figs/figure4_gom_vs_lca.png

Times (2-core machine, load 2-3 from other jobs, 2026-12-02): the full run 91 s wall
for the four models at N = 7326 with 30 / 5 starts each (GoM K=2 11.9 s, restricted
GoM K=3 67 s; LL -53194.84 / -53042.80 LCA, -53092.57 / -53037.44 GoM, every check
[ok]); before the GoM's table form of the node log-likelihood (benchmarks/bench_gom.py)
its K=2 fit alone took 219 s at load 3.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

import bayesmix as bm
from bayesmix.exceptions import BayesmixWarning

G = importlib.import_module("bayesmix.families.gom")  # the module (bm.gom is the factory)

N_PERSONS, N_ITEMS = 7326, 17
ITEM_GROUPS = {"property": 8, "personal": 5, "drug": 4}  # the NLSY battery's 17 items
# Generating values: a 3-class restricted GoM (eq. 35), logit link. P(y = 1 | c) per
# item (property, personal, drug blocks), class 3 the reference of the class logits:
#   class 1 "offense-prone" extreme profile: high on every item (0.35-0.85);
#   class 2 "property / drug": moderate property and drug, rare personal offences;
#   class 3 "low": rare everywhere (0.01-0.08).
# alpha_cj = alpha_c + lambda_c eta_j, eta_j ~ N(0, 1): a person with eta_j = 1.5 has
# memberships (0.52, 0.41, 0.07); the mean memberships are about (0.14, 0.31, 0.55).
P_OFFENSE = np.r_[np.linspace(0.45, 0.8, 8), np.linspace(0.35, 0.6, 5), np.linspace(0.5, 0.85, 4)]
P_PROPERTY_DRUG = np.r_[np.linspace(0.15, 0.35, 8), np.linspace(0.03, 0.1, 5), np.linspace(0.4, 0.7, 4)]
P_LOW = np.r_[np.linspace(0.01, 0.06, 8), np.linspace(0.01, 0.04, 5), np.linspace(0.02, 0.08, 4)]
TRUTH = {
    # Mplus' convention P(y = 0 | c) = F(tau): tau = logit(1 - P(y = 1 | c))
    "tau": special.logit(1 - np.vstack([P_OFFENSE, P_PROPERTY_DRUG, P_LOW])),
    "alpha": np.array([-2.5, -0.5]),
    "lambda": np.array([3.0, 1.5]),
}
# Paper, section 7, Table 5 "Log-Likelihood Comparison for the LCA and GoM Models"
# (NLSY data, K = 3 GoM the restricted model (35)) and the Figure 4 text.
PAPER = {"LCA": {2: -42625.7, 3: -41713.1}, "GoM": {2: -42159.1, 3: -41554.6}, "figure4_correlation": 0.99}
FULL_STARTS, QUICK_STARTS = (30, 5), (6, 2)
QUICK_N = 1000
# --quick caps L-BFGS-B at 300 iterations: the restricted K = 3 fit can creep along a
# ridge towards the LCA limit (a loading growing to its bound) for the whole default
# 2000 iterations (67 s at N = 1000); the full run keeps fit_ml's default
QUICK_MAX_ITER = 300
DEFAULT_SEED = 7


def item_names() -> list[str]:
    return [f"{group}{i + 1}" for group, n in ITEM_GROUPS.items() for i in range(n)]


def simulate(n_persons: int = N_PERSONS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """(N, 17) binary data from the restricted 3-class GoM at ``TRUTH`` (eq. 35)."""
    rng = np.random.default_rng(seed)
    y, _ = G.simulate_gom(TRUTH, np.arange(N_ITEMS), n_persons, "logit", rng)
    return pd.DataFrame(y, columns=item_names())


def models(df: pd.DataFrame) -> dict:
    """The four models of Table 5, built (not fitted)."""
    items = list(df.columns)
    return {("LCA", 2): bm.lca(df, items, n_classes=2), ("LCA", 3): bm.lca(df, items, n_classes=3),
            ("GoM", 2): bm.gom(df, items, n_classes=2),
            ("GoM", 3): bm.gom(df, items, n_classes=3, structure="restricted")}


def p_yes(res) -> np.ndarray:
    """(K, P) P(y = 1 | c) of a binary-item LCA or GoM fit (logit: 1 - expit(tau))."""
    return 1.0 - special.expit(np.asarray(res.natural["tau"], float))


def offense_prone(res) -> int:
    """0-based class with the highest mean P(y = 1) (the paper's offense-prone class)."""
    return int(np.argmax(p_yes(res).mean(axis=1)))


def run(quick: bool = False, seed: int = DEFAULT_SEED, fit_seed: int = 1, n_persons: int | None = None,
        starts=None, out: str | None = None, max_iter: int | None = None) -> dict:
    """Simulate, fit the four models and draw Figure 4. Returns {"fits" {(model, K): MLResult},
    "table" (DataFrame), "checks" (list of (text, bool)), "correlation", "p_lca", "p_gom",
    "figure" (path), "seconds" {(model, K): s incl. compilation}, "warnings", "settings"}."""
    n = n_persons or (QUICK_N if quick else N_PERSONS)
    starts = tuple(starts or (QUICK_STARTS if quick else FULL_STARTS))
    max_iter = max_iter or (QUICK_MAX_ITER if quick else 2000)
    df = simulate(n, seed)
    fits, seconds, caught = {}, {}, {}
    for key, model in models(df).items():
        start = None
        if key[0] == "GoM":  # the paper's recommended start: the LCA estimates, Var(alpha_j) large
            start = model.start_from_lca(fits[("LCA", key[1])])
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always", BayesmixWarning)
            t = time.perf_counter()
            fits[key] = bm.fit_ml(model, n_starts=starts[0], n_final=starts[1], seed=fit_seed, start=start,
                                  max_iter=max_iter, progress=False)
            seconds[key] = time.perf_counter() - t
        caught[key] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in got
                                         if issubclass(w.category, BayesmixWarning)))
    rows = []
    for (name, k), res in fits.items():
        rows.append({"model": name, "classes": k, "loglik": res.loglik, "n_params": res.n_params, "bic": res.bic,
                     "n_best": res.convergence["n_best"], "paper_loglik": PAPER[name][k],
                     "paper_bic": -2 * PAPER[name][k] + res.n_params * np.log(N_PERSONS)})
    table = pd.DataFrame(rows).set_index(["model", "classes"])
    gom2, lca2 = fits[("GoM", 2)], fits[("LCA", 2)]
    p_lca, p_gom = p_yes(lca2)[offense_prone(lca2)], p_yes(gom2)[offense_prone(gom2)]
    corr = float(np.corrcoef(p_lca, p_gom)[0, 1])
    ll = table["loglik"]
    npar = table["n_params"]
    checks = [
        ("GoM K=2 LL > LCA K=2 LL (nesting: the LCA is psi = infinity)", bool(ll["GoM", 2] > ll["LCA", 2])),
        ("GoM K=3 (restricted) LL > LCA K=3 LL", bool(ll["GoM", 3] > ll["LCA", 3])),
        ("GoM K=2 has one parameter more than LCA K=2 (psi)", bool(npar["GoM", 2] == npar["LCA", 2] + 1)),
        ("restricted GoM K=3 has K-1 = 2 parameters more than LCA K=3 (lambda_1, lambda_2)",
         bool(npar["GoM", 3] == npar["LCA", 3] + 2)),
        ("LL rises from K=2 to K=3 in both models (paper: yes)",
         bool(ll["LCA", 3] > ll["LCA", 2] and ll["GoM", 3] > ll["GoM", 2])),
        ("the GoM gain is larger at K=2 than at K=3 (paper: 466.6 against 158.5)",
         bool(ll["GoM", 2] - ll["LCA", 2] > ll["GoM", 3] - ll["LCA", 3])),
        ("Figure 4: GoM offense-prone probabilities all above the LCA ones (paper: yes)", bool(np.all(p_gom > p_lca))),
        ("Figure 4: correlation above 0.95 (paper: 0.99)", bool(corr > 0.95)),
    ]
    fig_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="table5_gom_"))
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir / "figure4_gom_vs_lca.png"
    fig, _ = figure4(p_lca, p_gom, corr)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return {"fits": fits, "table": table, "checks": checks, "correlation": corr, "p_lca": p_lca, "p_gom": p_gom,
            "figure": str(path), "seconds": seconds, "warnings": caught,
            "settings": {"n_persons": n, "starts": starts, "seed": seed, "fit_seed": fit_seed,
                         "max_iter": max_iter}}


def figure4(p_lca, p_gom, corr=None, ax=None):
    """Figure 4: one point per item, x = LCA and y = GoM P(y = 1 | offense-prone
    class), with the diagonal. Returns (fig, ax)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
    else:
        fig = ax.figure
    ax.scatter(p_lca, p_gom, color="0.15", s=22, zorder=3)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", zorder=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("LCA P(y = 1 | offense-prone class)")
    ax.set_ylabel("GoM P(y = 1 | offense-prone class)")
    r = np.corrcoef(p_lca, p_gom)[0, 1] if corr is None else corr
    ax.set_title(f"{len(p_lca)} items, offense-prone class; r = {r:.3f}", fontsize=10)
    fig.tight_layout()
    return fig, ax


def report(out: dict) -> str:
    t, s = out["table"], out["settings"]
    gom2, gom3 = out["fits"][("GoM", 2)], out["fits"][("GoM", 3)]
    lines = [f"Table 5 (section 7): LCA and GoM on simulated NLSY-sized data, N = {s['n_persons']} x {N_ITEMS} binary "
             f"items (seed {s['seed']}), generated by a 3-class restricted GoM (eq. 35, TRUTH in the script).",
             f"STARTS = {s['starts'][0]} {s['starts'][1]} for every model; the GoMs also from the LCA estimates "
             f"(start_from_lca); at most {s['max_iter']} L-BFGS-B iterations per start. GoM K=3 is the restricted "
             "model (35). 'paper' = the NLSY values (other data: compare "
             "the shape, not the numbers; paper BIC = -2 LL + these parameter counts x log 7326).", ""]
    head = (f"{'model':<6}{'K':>3}{'LL':>13}{'#par':>6}{'BIC':>12}{'best/done':>11}{'paper LL':>12}"
            f"{'paper BIC':>12}{'fit s':>8}")
    lines += [head, "-" * len(head)]
    for (name, k), r in t.iterrows():
        done = int(out["fits"][(name, k)].starts["loglik_final"].notna().sum())
        lines.append(f"{name:<6}{k:>3}{r['loglik']:>13.2f}{int(r['n_params']):>6}{r['bic']:>12.2f}"
                     f"{str(int(r['n_best'])) + '/' + str(done):>11}{r['paper_loglik']:>12.1f}{r['paper_bic']:>12.1f}"
                     f"{out['seconds'][(name, k)]:>8.1f}")
    ll = t["loglik"]
    lines += ["",
              f"GoM - LCA LL: K=2 {ll['GoM', 2] - ll['LCA', 2]:+.2f} (paper {PAPER['GoM'][2] - PAPER['LCA'][2]:+.1f}), "
              f"K=3 {ll['GoM', 3] - ll['LCA', 3]:+.2f} (paper {PAPER['GoM'][3] - PAPER['LCA'][3]:+.1f})",
              f"Lowest BIC: {' K='.join(map(str, t['bic'].idxmin()))}",
              f"GoM K=2: psi = Var(alpha_1j) = {float(np.ravel(gom2.natural['psi'])[0]):.3f}, alpha_1 = "
              f"{float(np.ravel(gom2.natural['alpha'])[0]):.3f}; mean memberships "
              f"{np.round(np.asarray(gom2.natural['class_share']), 3).tolist()}",
              f"GoM K=3 (restricted): alpha = {np.round(np.asarray(gom3.natural['alpha']), 3).tolist()}, lambda = "
              f"{np.round(np.asarray(gom3.natural['lambda']), 3).tolist()} (truth alpha {TRUTH['alpha'].tolist()}, "
              f"lambda {TRUTH['lambda'].tolist()} up to class order and the sign of eta)",
              "",
              "Figure 4: P(y = 1 | offense-prone class), 2-class LCA against 2-class GoM",
              "  item       " + " ".join(f"{n[:4] + n[-1]:>6}" if len(n) > 6 else f"{n:>6}" for n in item_names()),
              "  LCA        " + " ".join(f"{v:6.3f}" for v in out["p_lca"]),
              "  GoM        " + " ".join(f"{v:6.3f}" for v in out["p_gom"]),
              f"  correlation {out['correlation']:.4f} (paper {PAPER['figure4_correlation']}); GoM above LCA on "
              f"{int(np.sum(out['p_gom'] > out['p_lca']))} of {N_ITEMS} items (paper: all)",
              f"  saved: {out['figure']}",
              "", "Checks against the paper's shape:"]
    lines += [f"  [{'ok' if ok else 'NO'}] {text}" for text, ok in out["checks"]]
    for (name, k), texts in out["warnings"].items():
        for text in texts:
            lines.append(f"{name} K={k} warning: {text}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"N = {QUICK_N}, STARTS = {QUICK_STARTS[0]} "
                                                         f"{QUICK_STARTS[1]}, at most {QUICK_MAX_ITER} iterations")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the simulated sample")
    ap.add_argument("--fit-seed", type=int, default=1, help="seed of the random starts")
    ap.add_argument("--n", type=int, default=None, help="persons (default 7326; --quick 1000)")
    ap.add_argument("--out", metavar="DIR", default=None, help="folder for Figure 4 (default: a temporary folder)")
    args = ap.parse_args(argv)
    out = run(args.quick, args.seed, args.fit_seed, args.n, out=args.out)
    print(report(out))
    return out


if __name__ == "__main__":
    main()
