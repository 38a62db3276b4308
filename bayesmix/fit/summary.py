"""Plain-text summary laid out as an Mplus user expects (MODEL FIT INFORMATION,
FINAL CLASS COUNTS, MODEL RESULTS by class, RESULTS IN PROBABILITY SCALE)."""

from __future__ import annotations

import numpy as np

SECTION = {
    "tau": "Thresholds",
    "nu": "Means",
    "theta": "Variances",
    "alpha": "Means (class logits, eq. 4)",
    "beta": "C ON (class-logit slopes, eq. 4)",
    "psi": "Variances/covariances of alpha_cj (between level)",
    "class_share": "Class proportions",
}


SYMMETRIC = ("psi", "v")


def _num(x, width=10, digits=3):
    if x is None or not np.isfinite(x):
        return " " * (width - 3) + "n/a"
    return f"{x:{width}.{digits}f}"


TERM_WIDTH = 36


def _param_lines(rows):
    out = []
    seen = set()
    for _, r in rows.iterrows():
        term = r["term"] or r["parameter"]
        parts = tuple(str(term).split(", "))
        # a symmetric covariance matrix (psi, v) is printed once: lower triangle
        if r["parameter"] in SYMMETRIC and len(parts) == 2:
            if (r["parameter"], parts[1], parts[0]) in seen:
                continue
            seen.add((r["parameter"], *parts))
            # Mplus style: a variance under its variable's name, a covariance as "A WITH B"
            term = parts[0] if parts[0] == parts[1] else f"{parts[0]} WITH {parts[1]}"
        if len(term) > TERM_WIDTH:
            term = term[: TERM_WIDTH - 3] + "..."
        out.append(f"    {term:<{TERM_WIDTH}}{_num(r['estimate'])}{_num(r['se'])}{_num(r['z'], 11, 3)}"
                   f"{_num(r['p'], 10, 3)}")
    return out


def format_ml_summary(res) -> str:
    fam = res.model
    titles = {**SECTION, **getattr(fam, "section_titles", {})}
    d = fam.data
    spec = fam.spec
    lines = []
    title = f"bayesmix {fam.family.upper()} - {spec.n_classes} class(es), ML ({res.se_type.upper()})"
    lines += [title, "=" * len(title), ""]
    lines.append("SUMMARY OF ANALYSIS")
    lines.append(f"  Number of observations{d.n_persons:>22}")
    if d.cluster_idx is not None:
        lines.append(f"  Number of clusters{d.n_clusters:>26}")
    noun = getattr(fam, "item_noun", "items")
    lines.append(f"  Number of {noun}{len(d.items):>{34 - len(noun)}}")
    if getattr(d, "n_dropped", 0):
        lines.append(f"  Rows excluded (see data.dropped){d.n_dropped:>12}")
    lines.append(f"  Link (categorical items){spec.link:>20}")
    if getattr(spec, "random_intercepts", False):
        lines.append(f"  Integration  {spec.integration.describe(spec.n_classes - 1)}")
    if hasattr(fam, "describe_integration"):
        lines.append(f"  Integration  {fam.describe_integration()}")
    lines.append("")
    lines.append("MODEL FIT INFORMATION")
    lines.append(f"  Number of Free Parameters{res.n_params:>19}")
    lines.append("  Loglikelihood")
    lines.append(f"    H0 Value{res.loglik:>34.3f}")
    if res.se_type == "mlr":
        lines.append(f"    H0 Scaling Correction Factor for MLR {res.scaling_correction:>7.4f}")
    lines.append("  Information Criteria")
    lines.append(f"    Akaike (AIC){res.aic:>30.3f}")
    lines.append(f"    Bayesian (BIC){res.bic:>28.3f}")
    lines.append(f"    Sample-Size Adjusted BIC{res.abic:>18.3f}")
    if spec.n_classes > 1:
        lines.append(f"  Entropy{res.entropy:>37.3f}")
    c = res.convergence
    lines.append(f"  Best LL reached by {c['n_best']} of the completed starts; "
                 f"max |gradient| {c['max_abs_gradient']:.1e}")
    if c.get("fixed_at_bound"):
        lines.append(f"  Fixed at a bound to avoid singularity (no S.E.): {', '.join(c['fixed_at_bound'])}")
    lines.append("")
    if spec.n_classes > 1:
        props = res.class_proportions()
        lines.append("FINAL CLASS COUNTS AND PROPORTIONS")
        lines.append("  Class   Model (SE)          Posterior prob.   Most likely")
        for _, r in props.iterrows():
            lines.append(f"  {int(r['class']):>5}   {r['model']:.4f} ({_num(r['model_se'], 6, 4).strip()})"
                         f"     {r['count_posterior']:9.2f} {r['posterior']:.4f}"
                         f"   {int(r['count_most_likely']):6d} {r['most_likely']:.4f}")
        lines.append("")
    lines.append("MODEL RESULTS")
    lines.append(f"    {'':<{TERM_WIDTH}}{'Estimate':>10}{'S.E.':>10}{'Est./S.E.':>11}{'P-Value':>10}")
    table = res.params
    classed = table[table["class"].notna()]
    for k in range(1, spec.n_classes + 1):
        rows_k = classed[classed["class"] == k]
        rows_k = rows_k[rows_k.parameter != "class_share"]
        if rows_k.empty:
            continue
        lines.append(f"Latent Class {k}")
        for name, grp in rows_k.groupby("parameter", sort=False):
            lines.append(f"  {titles.get(name, name)}")
            lines += _param_lines(grp)
    rest = table[table["class"].isna()]
    if not rest.empty:
        lines.append("Class-invariant and between-level parameters")
        for name, grp in rest.groupby("parameter", sort=False):
            lines.append(f"  {titles.get(name, name)}")
            lines += _param_lines(grp)
    probs = res.item_probabilities()
    if not probs.empty and spec.n_classes >= 1:
        lines.append("")
        lines.append("RESULTS IN PROBABILITY SCALE (P(item = category | class))")
        wide = probs.pivot_table(index=["item", "category"], columns="class", values="probability", sort=False)
        lines.append(f"    {'item':<{TERM_WIDTH}}{'cat':>5}" + "".join(f"{'class ' + str(k):>10}" for k in wide.columns))
        for (item, cat), r in wide.iterrows():
            lines.append(f"    {str(item)[:TERM_WIDTH]:<{TERM_WIDTH}}{str(cat):>5}" + "".join(f"{v:10.3f}" for v in r.to_numpy()))
    return "\n".join(lines)
