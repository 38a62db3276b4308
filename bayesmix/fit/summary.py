"""Plain-text summary laid out as an Mplus user expects (MODEL FIT INFORMATION,
FINAL CLASS COUNTS, MODEL RESULTS by class, RESULTS IN PROBABILITY SCALE)."""

from __future__ import annotations

import numpy as np


def _num(x, width=10, digits=3):
    if x is None or not np.isfinite(x):
        return " " * (width - 3) + "n/a"
    return f"{x:{width}.{digits}f}"


TERM_WIDTH = 36


def _param_lines(rows, symmetric: bool):
    out = []
    seen = set()
    for _, r in rows.iterrows():
        term = r["term"] or r["parameter"]
        parts = tuple(str(term).split(", "))
        # a symmetric covariance matrix (a declared variance) is printed once: lower triangle
        if symmetric and len(parts) == 2:
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


def _header(res) -> list[str]:
    fam = res.model
    classes = ", ".join(f"{cv.name}: {cv.n_classes}" for cv in fam.class_variables)
    cvs = fam.class_variables
    count = f"{cvs[0].n_classes} class(es)" if len(cvs) == 1 else f"classes {classes}"
    title = f"bayesmix {fam.family.upper()} - {count}, ML ({res.se_type.upper()})"
    lines = [title, "=" * len(title), "", "SUMMARY OF ANALYSIS"]
    for label, value in fam.analysis_lines():
        lines.append(f"  {label}{str(value):>{max(44 - len(label), 1)}}")
    integration = fam.describe_integration()
    if integration:
        lines.append(f"  Integration  {integration}")
    return lines + [""]


def _fit_information(res) -> list[str]:
    lines = ["MODEL FIT INFORMATION", f"  Number of Free Parameters{res.n_params:>19}", "  Loglikelihood",
             f"    H0 Value{res.loglik:>34.3f}"]
    if res.se_type == "mlr":
        lines.append(f"    H0 Scaling Correction Factor for MLR {res.scaling_correction:>7.4f}")
    lines += ["  Information Criteria", f"    Akaike (AIC){res.aic:>30.3f}", f"    Bayesian (BIC){res.bic:>28.3f}",
              f"    Sample-Size Adjusted BIC{res.abic:>18.3f}"]
    cvs = [cv for cv in res.model.class_variables if cv.n_classes > 1]
    for cv in cvs:
        label = "Entropy" if len(cvs) == 1 else f"Entropy ({cv.name})"
        lines.append(f"  {label}{res.entropy_of(cv.name):>{44 - len(label)}.3f}")
    c = res.convergence
    lines.append(f"  Best LL reached by {c['n_best']} of the completed starts; "
                 f"max |gradient| {c['max_abs_gradient']:.1e}")
    if c.get("fixed_at_bound"):
        lines.append(f"  Fixed at a bound to avoid singularity (no S.E.): {', '.join(c['fixed_at_bound'])}")
    lines += _identification_lines(res.identification)
    check = res.integration
    if check:
        lines.append(f"  Integration checked: LL changes by {check['difference']:+.4f} under {check['checked_with']}"
                     + ("" if check["ok"] else "  (more than 0.01: see the IntegrationWarning)"))
        if check.get("refined_from"):
            lines.append(f"  Integration refined from {check['refined_from']}")
    return lines + [""]


def _identification_lines(record) -> list[str]:
    """Mplus' "THE MODEL ESTIMATION DID NOT TERMINATE NORMALLY"-style lines."""
    if record is None:
        return []
    if record["identified"]:
        lines = ["  Information matrix at the optimum: non-singular (all free parameters identified)"]
    else:
        lines = [f"  WARNING: the information matrix is singular ({record['n_flat']} flat direction(s)); "
                 "S.E.s that depend on them are not given"]
        for d in record["directions"]:
            kind = "separation (LL rises without bound)" if d["separation"] else "not identified"
            lines.append(f"    {kind}: {', '.join(d['parameters'])}")
    if record.get("units_below_parameters"):
        lines.append("  WARNING: fewer units than free parameters: the MLR sandwich is rank-deficient")
    return lines


def _class_counts(res) -> list[str]:
    lines = []
    cvs = [cv for cv in res.model.class_variables if cv.n_classes > 1]
    for cv in cvs:
        props = res.class_proportions(cv.name)
        head = "FINAL CLASS COUNTS AND PROPORTIONS" + ("" if len(cvs) == 1 else f" ({cv.name}: {cv.label})")
        lines += [head, "  Class   Model (SE)          Posterior prob.   Most likely"]
        for _, r in props.iterrows():
            lines.append(f"  {int(r['class']):>5}   {r['model']:.4f} ({_num(r['model_se'], 6, 4).strip()})"
                         f"     {r['count_posterior']:9.2f} {r['posterior']:.4f}"
                         f"   {int(r['count_most_likely']):6d} {r['most_likely']:.4f}")
        lines.append("")
    return lines


def _results(res, own: set[str]) -> list[str]:
    fam = res.model
    info = {r.name: r for r in fam.reported}
    shares = {cv.share for cv in fam.class_variables} | own

    def section(grp_name, grp):
        r = info.get(grp_name)
        return [f"  {r.title if r else grp_name}"] + _param_lines(grp, bool(r and r.variance))

    lines = ["MODEL RESULTS", f"    {'':<{TERM_WIDTH}}{'Estimate':>10}{'S.E.':>10}{'Est./S.E.':>11}{'P-Value':>10}"]
    table = res.params
    classed = table[table["class"].notna()]
    for k in range(1, fam.n_classes + 1):
        rows_k = classed[(classed["class"] == k) & ~classed.parameter.isin(shares)]
        if rows_k.empty:
            continue
        lines.append(f"Latent Class {k}")
        for name, grp in rows_k.groupby("parameter", sort=False):
            lines += section(name, grp)
    rest = table[table["class"].isna() & ~table.parameter.isin(own)]
    if not rest.empty:
        lines.append("Class-invariant and between-level parameters")
        for name, grp in rest.groupby("parameter", sort=False):
            lines += section(name, grp)
    return lines


def _probabilities(res) -> list[str]:
    probs = res.item_probabilities()
    if probs.empty:
        return []
    lines = ["", "RESULTS IN PROBABILITY SCALE (P(item = category | class))"]
    wide = probs.pivot_table(index=["item", "category"], columns="class", values="probability", sort=False)
    lines.append(f"    {'item':<{TERM_WIDTH}}{'cat':>5}" + "".join(f"{'class ' + str(k):>10}" for k in wide.columns))
    for (item, cat), r in wide.iterrows():
        lines.append(f"    {str(item)[:TERM_WIDTH]:<{TERM_WIDTH}}{str(cat):>5}" + "".join(f"{v:10.3f}" for v in r.to_numpy()))
    return lines


def format_ml_summary(res) -> str:
    """The whole summary: header, fit information, class counts per class
    variable, parameter estimates by class, probability-scale profiles, then
    the family's own sections (``FamilyModel.summary_sections``)."""
    extra, own = res.model.summary_sections(res)
    return "\n".join(_header(res) + _fit_information(res) + _class_counts(res) + _results(res, own)
                     + _probabilities(res) + extra)
