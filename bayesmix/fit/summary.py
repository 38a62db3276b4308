"""Plain-text summary laid out as an Mplus user expects (MODEL FIT INFORMATION,
FINAL CLASS COUNTS, MODEL RESULTS by class, RESULTS IN PROBABILITY SCALE)."""

from __future__ import annotations

import re

import numpy as np

from bayesmix import dims


def _num(x, width=10, digits=3):
    if x is None or not np.isfinite(x):
        return " " * (width - 3) + "n/a"
    return f"{x:{width}.{digits}f}"


TERM_WIDTH = 36


LOGIT_SUFFIX = "_logit"


def _logit_symbols(fam, name: str, title: str) -> dict[str, str]:
    """dim -> class variable symbol for the class-logit dims of reported ``name``
    (Mplus labels a logit by its class: C#1, D#2). Family-blind: a dim ``X_logit``
    indexes the non-reference classes of the class variable whose dim is ``X``
    (``class_from_logit``: the earlier class, dim ``class``). Where several class
    variables share that dim (LTA's C1..CT), the one whose ``logit_intercept`` is
    ``name``, else the class variables named in the section title (the first for
    the logit dim, the last for ``class_from_logit``: "C2 ON C1"); else unlabelled."""
    cvs = [cv for cv in fam.class_variables if cv.n_classes > 1]
    out = {}
    for d in fam.model.named_vars_to_dims.get(name, ()):
        if not d.endswith(LOGIT_SUFFIX):
            continue
        base = d[: -len(LOGIT_SUFFIX)]
        base = dims.CLASS if base == dims.CLASS_FROM else base
        cands = [cv for cv in cvs if cv.dim == base]
        if len(cands) > 1:
            own = [cv for cv in cands if cv.logit_intercept == name and d != dims.CLASS_FROM_LOGIT]
            hits = sorted((m.start(), cv.name) for cv in cands
                          for m in [re.search(rf"(?<![\w]){re.escape(cv.name)}(?![\w])", title)] if m)
            if own:
                out[d] = own[0].name
            elif hits:
                out[d] = hits[-1][1] if d == dims.CLASS_FROM_LOGIT else hits[0][1]
        elif cands:
            out[d] = cands[0].name
    return out


def _logit_term(fam, r, symbols: dict[str, str]) -> str:
    """The row's term with class-logit coordinates written as Mplus does (C#1)."""
    class_dim = fam.class_variables[0].dim
    var_dims = [d for d in fam.model.named_vars_to_dims.get(r["parameter"], ()) if d != class_dim]
    parts = str(r["term"]).split(", ")
    if not symbols or len(parts) != len(var_dims):
        return r["term"]
    return ", ".join(f"{symbols[d]}#{v}" if d in symbols else v for d, v in zip(var_dims, parts))


def _param_lines(rows, symmetric: bool, fam=None, title: str = ""):
    out = []
    seen = set()
    symbols = {} if fam is None or rows.empty else _logit_symbols(fam, rows["parameter"].iloc[0], title)
    for _, r in rows.iterrows():
        term = (_logit_term(fam, r, symbols) if symbols else r["term"]) or r["parameter"]
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
    estimator = "posterior mode (MAP)" if res.method == "map" else f"ML ({res.se_type.upper()})"
    title = f"bayesmix {fam.family.upper()} - {count}, {estimator}"
    lines = [title, "=" * len(title), "", "SUMMARY OF ANALYSIS"]
    if res.method == "map":
        lines.append("  Estimator: posterior mode under the model's priors (LL below is at the mode); "
                     "S.E. from the log-posterior Hessian")
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
    if res.method == "map":  # AIC/BIC are ML criteria: not given at a mode (MAPResult)
        lines += [f"  Log-prior{res.logprior:>35.3f}", f"  Log-posterior{res.logpost:>31.3f}",
                  "  Information criteria: not given for a posterior mode (they are ML criteria)"]
    else:
        lines += ["  Information Criteria", f"    Akaike (AIC){res.aic:>30.3f}",
                  f"    Bayesian (BIC){res.bic:>28.3f}", f"    Sample-Size Adjusted BIC{res.abic:>18.3f}"]
    cvs = [cv for cv in res.model.class_variables if cv.n_classes > 1]
    for cv in cvs:
        label = "Entropy" if len(cvs) == 1 else f"Entropy ({cv.name})"
        lines.append(f"  {label}{res.entropy_of(cv.name):>{44 - len(label)}.3f}")
    c = res.convergence
    best = "log-posterior" if res.method == "map" else "LL"
    lines.append(f"  Best {best} reached by {c['n_best']} of the completed starts; "
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
    """Mplus' three FINAL CLASS COUNTS tables side by side: the estimated model
    (count = share x N, N the units counted, persons for a between-level class),
    posterior probabilities and most likely membership."""
    lines = []
    cvs = [cv for cv in res.model.class_variables if cv.n_classes > 1]
    for cv in cvs:
        props = res.class_proportions(cv.name)
        n = props["count_most_likely"].sum()
        head = "FINAL CLASS COUNTS AND PROPORTIONS" + ("" if len(cvs) == 1 else f" ({cv.name}: {cv.label})")
        lines += [head, "  Class        Estimated model             Posterior prob.        Most likely",
                  "             count   prop.   (S.E.)         count   prop.        count   prop."]
        for _, r in props.iterrows():
            lines.append(f"  {int(r['class']):>5}  {r['model'] * n:9.2f}  {r['model']:.4f} "
                         f"({_num(r['model_se'], 6, 4).strip()})  {r['count_posterior']:9.2f}  {r['posterior']:.4f}"
                         f"   {int(r['count_most_likely']):9d}  {r['most_likely']:.4f}")
        lines.append("")
    return lines


CLASSIFICATION_TITLE = ("CLASSIFICATION QUALITY: Average Latent Class Probabilities for Most Likely "
                        "Latent Class Membership (Row) by Latent Class (Column)")


def _classification(res) -> list[str]:
    """One CLASSIFICATION QUALITY table per class variable with K > 1
    (``MLResult.classification_table``)."""
    lines = []
    cvs = [cv for cv in res.model.class_variables if cv.n_classes > 1]
    for cv in cvs:
        table = res.classification_table(cv.name)
        lines += [CLASSIFICATION_TITLE + ("" if len(cvs) == 1 else f" ({cv.name}: {cv.label})"),
                  "  " + " " * 7 + "".join(f"{c:>9}" for c in table.columns)]
        for k, row in table.iterrows():
            lines.append(f"  {k:>7}" + "".join(_num(v, 9, 3) for v in row.to_numpy()))
        lines.append("")
    return lines


def _results(res, own: set[str]) -> list[str]:
    fam = res.model
    info = {r.name: r for r in fam.reported}
    shares = {cv.share for cv in fam.class_variables} | own

    def section(grp_name, grp):
        r = info.get(grp_name)
        title = r.title if r else grp_name
        return [f"  {title}"] + _param_lines(grp, bool(r and r.variance), fam, title)

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
    """The whole summary: header, fit information, class counts and the
    classification-quality table per class variable, parameter estimates by class, probability-scale profiles, then
    the family's own sections (``FamilyModel.summary_sections``)."""
    extra, own = res.model.summary_sections(res)
    return "\n".join(_header(res) + _fit_information(res) + _class_counts(res) + _classification(res) + _results(res, own)
                     + _probabilities(res) + extra + _class_test_lines(res.class_tests))


def _class_test_lines(tests: dict) -> list[str]:
    """Mplus' TECHNICAL 11 / 14 OUTPUT, when ``enumerate_classes`` computed them."""
    lines = []
    if "lmr" in tests:
        t = tests["lmr"]
        lines += ["", "TECHNICAL 11 OUTPUT",
                  f"  VUONG-LO-MENDELL-RUBIN LIKELIHOOD RATIO TEST FOR {t['k_null']} (H0) VERSUS {t['k_alt']} CLASSES",
                  f"    H0 Loglikelihood Value{t['loglik_null']:>24.3f}",
                  f"    2 Times the Loglikelihood Difference{t['statistic']:>10.3f}",
                  f"    Difference in the Number of Parameters{t['df']:>8d}",
                  f"    P-Value{t['p_value']:>39.4f}",
                  "  LO-MENDELL-RUBIN ADJUSTED LRT TEST",
                  f"    Value{t['adjusted_statistic']:>41.3f}",
                  f"    P-Value{t['adjusted_p_value']:>39.4f}"]
    if "blrt" in tests:
        t = tests["blrt"]
        lines += ["", "TECHNICAL 14 OUTPUT",
                  f"  PARAMETRIC BOOTSTRAPPED LIKELIHOOD RATIO TEST FOR {t['k_null']} (H0) VERSUS {t['k_alt']} CLASSES",
                  f"    2 Times the Loglikelihood Difference{t['statistic']:>10.3f}",
                  f"    Approximate P-Value{t['p_value']:>27.4f}",
                  f"    Successful Bootstrap Draws{t['n_boot']:>20d}"]
    return lines
