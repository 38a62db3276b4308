"""Two-level mixture regression of the London Exam data: are there latent classes of
students (within level) or of schools (between level)?

The embedded Exam data (mlmRev::Exam; Goldstein et al., 1993) hold 4059 students in 65
inner-London schools. The outcome is ``normexam``, the normalised GCSE exam score at 16;
the covariate is ``standLRT``, the standardised London Reading Test score at 11. The
models are the paper's eq. (19) mixture regression (sections 2 and 5)

    normexam_ij = mu_c + beta_c standLRT_ij + u_j (+ b_j standLRT_ij) + e_ij,
    e_ij ~ N(0, theta), (u_j, b_j) ~ N(0, V),

with the class C_ij of each student (class level "within", eq. 4: the random
intercept needs numerical integration) or C_j of each school (class level
"between", eq. 16-17: integrated in closed form). K = 1 is the ordinary
random-intercept (random-slope) regression. Every model is fitted by ML with random
starts (Mplus STARTS = 20 5, MLR standard errors); the script prints the comparison
table (with the class level and the likelihood path, ``model.path``), the Mplus-style
summary of the model with the lowest BIC and, for a between-level class, how many
schools fall in each class.

    python models/exam_mixture_regression.py            # K = 1..3, random intercepts and slopes
    python models/exam_mixture_regression.py --quick    # K = 1..2, random intercepts, 8 starts

Within-level classes with a random *slope* are left out: their 2-D quadrature
(15 x 15 trapezoid nodes for 4059 students) took 214 s per fit here, and 15 nodes per
dimension are too coarse for schools of up to 198 students (see WITHIN_INTEGRATION).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import pandas as pd

import bayesmix as bm

OUTCOME, COVARIATE, CLUSTER = "normexam", "standLRT", "school"

# A within-level class with a school random intercept is integrated numerically. In
# schools of up to 198 students the posterior of u_j is narrow (sd ~0.07 against a prior
# sd ~0.3), so Mplus' default 15-point trapezoid grid (spacing 0.7 sd) overstates the
# log-likelihood of the K = 2 within model by 1.3 here; 61 points agree with 15-point
# adaptive quadrature to 1e-3 and cost ~4 s more per fit.
WITHIN_INTEGRATION = bm.Integration("trapezoid", n_points=61)


@dataclass(frozen=True)
class Candidate:
    """One model of the comparison."""

    n_classes: int
    class_level: str = "within"  # irrelevant for K = 1
    random: tuple = ("intercept",)

    @property
    def label(self) -> str:
        re = "int+slope" if COVARIATE in self.random else "int"
        if self.n_classes == 1:
            return f"K=1 ({re})"
        return f"K={self.n_classes} {self.class_level} ({re})"


def candidates(quick: bool = False) -> list[Candidate]:
    """The models compared: quick = K 1..2 with a random intercept; full = K 1..3,
    within and between, plus random slopes where the likelihood is analytic."""
    slope = ("intercept", COVARIATE)
    if quick:
        return [Candidate(1), Candidate(2, "within"), Candidate(2, "between")]
    out = [Candidate(1), Candidate(1, random=slope)]
    for k in (2, 3):
        out += [Candidate(k, "within"), Candidate(k, "between"), Candidate(k, "between", slope)]
    return out


def build(data: pd.DataFrame, cand: Candidate):
    """The bayesmix model of one candidate."""
    integration = WITHIN_INTEGRATION if cand.class_level == "within" and cand.n_classes > 1 else "trapezoid"
    return bm.mixture_regression(data, OUTCOME, [COVARIATE], cand.n_classes, cluster=CLUSTER,
                                 class_level=cand.class_level, random=list(cand.random),
                                 integration=integration)


def starts(quick: bool) -> tuple[int, int]:
    """Random starts (initial, completed): Mplus' default 20 5, or 8 3 in quick mode."""
    return (8, 3) if quick else (20, 5)


def fit_all(quick: bool = False, *, data: pd.DataFrame | None = None, seed: int = 1, n_starts=None,
            n_final=None, which=None, verbose: bool = True) -> dict:
    """ML fits of ``candidates(quick)`` (or of the candidates in ``which``): label -> MLResult."""
    data = bm.load_dataset("exam") if data is None else data
    default_starts, default_final = starts(quick)
    n_starts = default_starts if n_starts is None else n_starts
    n_final = default_final if n_final is None else n_final
    fits = {}
    for cand in candidates(quick) if which is None else which:
        t0 = time.perf_counter()
        model = build(data, cand)
        fits[cand.label] = res = bm.fit_ml(model, n_starts=n_starts, n_final=n_final, seed=seed, progress=False)
        if verbose:
            print(f"  {cand.label:<26} path={model.path:<10} LL={res.loglik:11.3f}  best LL reached by "
                  f"{res.convergence['n_best']}/{n_final} starts  ({time.perf_counter() - t0:5.1f} s)", flush=True)
    return fits


def comparison_table(fits: dict) -> pd.DataFrame:
    """``bm.compare_fits`` with the class level, the random effects and the likelihood path."""
    table = bm.compare_fits(fits)
    table.insert(1, "class_level",
                 [res.model.class_level if res.n_classes > 1 else "-" for res in fits.values()])
    table.insert(2, "random", ["+".join(res.model.spec.random) for res in fits.values()])
    table.insert(3, "path", [res.model.path for res in fits.values()])
    table["delta_bic"] = table["bic"] - table["bic"].min()
    return table


def choose(fits: dict) -> str:
    """Label of the model with the lowest BIC."""
    return comparison_table(fits)["bic"].idxmin()


def school_classes(res) -> pd.DataFrame:
    """Schools per most likely class, with the mean posterior probability of that class."""
    cm = res.cluster_membership()
    probs = cm.filter(like="p_class").to_numpy()
    rows = []
    for c in range(probs.shape[1]):
        mine = cm["class"].to_numpy() == c + 1
        rows.append({"class": c + 1, "schools": int(mine.sum()),
                     "students": int(res.membership["class"].eq(c + 1).sum()),
                     "mean_p_assigned": float(probs[mine, c].mean()) if mine.any() else float("nan"),
                     "expected_schools": float(probs[:, c].sum())})
    return pd.DataFrame(rows).set_index("class")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="K = 1..2, random intercepts only, STARTS = 8 3")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    n_starts, n_final = starts(args.quick)
    data = bm.load_dataset("exam")
    print(f"Exam: {len(data)} students in {data[CLUSTER].nunique()} schools; {OUTCOME} ON {COVARIATE}; "
          f"STARTS = {n_starts} {n_final}\n")
    t0 = time.perf_counter()
    fits = fit_all(args.quick, data=data, seed=args.seed)
    print(f"\n{len(fits)} models in {time.perf_counter() - t0:.1f} s\n")
    table = comparison_table(fits)
    print("MODEL COMPARISON")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    best = choose(fits)
    res = fits[best]
    print(f"\nLowest BIC: {best}\n")
    print(res.summary())
    if res.n_classes > 1 and res.model.class_level == "between":
        print("\nSCHOOLS BY MOST LIKELY CLASS (cluster_membership)")
        print(school_classes(res).to_string(float_format=lambda x: f"{x:.3f}"))
    return fits


if __name__ == "__main__":
    main()
