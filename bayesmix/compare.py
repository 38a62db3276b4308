"""Model comparison: tables (LL, parameters, AIC, BIC, aBIC, entropy) and the
likelihood-ratio test of nested models, with the Satorra-Bentler scaled
difference of MLR fits (as Mplus computes it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.core.quadrature import as_integration
from bayesmix.derived import icc_from_variance
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.compiled import compiled
from bayesmix.fit.results import MLResult


def compare_fits(fits) -> pd.DataFrame:
    """One row per ML fit: classes, LL, free parameters, AIC, BIC, sample-size
    adjusted BIC, entropy, and how many completed starts reached the best LL.

    ``fits`` is a list of ``MLResult`` or a dict label -> ``MLResult``.
    """
    items = fits.items() if isinstance(fits, dict) else [(None, f) for f in fits]
    rows = []
    for label, res in items:
        if not isinstance(res, MLResult):
            raise SpecificationError(f"compare_fits: got {type(res).__name__}; give MLResult objects from fit_ml.")
        if res.method != "ml":
            raise SpecificationError(f"compare_fits: got a {res.method.upper()} fit ({label!r}); AIC/BIC and the LR "
                                     "logic are ML criteria. Fix: compare fit_ml results, or posteriors with "
                                     "bm.compare_loo.")
        rows.append({
            "model": label if label is not None else f"{res.model.family} K={res.n_classes}",
            "classes": res.n_classes, "loglik": res.loglik, "n_params": res.n_params,
            "aic": res.aic, "bic": res.bic, "abic": res.abic, "entropy": res.entropy,
            "best_ll_replicated": res.convergence["n_best"],
        })
    table = pd.DataFrame(rows).set_index("model")
    ns = {res.n_obs for _, res in (fits.items() if isinstance(fits, dict) else [(None, f) for f in fits])}
    if len(ns) > 1:
        raise SpecificationError(f"compare_fits: the fits use different numbers of observations {sorted(ns)}; "
                                 "information criteria are only comparable on the same data.")
    return table


ICC_BETWEEN = 0.8  # paper, section 5: an ICC above 0.8 suggests a between-level class

BOUNDARY_CAVEAT = (
    "The tested parameter is at or near the boundary of its parameter space (an ICC near 1, or a variance "
    "of 0), so the LR statistic does not follow the usual chi-square distribution and the p value is "
    "only approximate (paper, section 5).")

CLASSES_CAVEAT = (
    "The models have {k0} and {k1} classes: a test of the number of classes is also a boundary case (a class "
    "share of 0), so its LR statistic is not chi-square either; compare the number of classes with BIC "
    "(compare_fits) instead.")


@dataclass
class LRTest:
    """Likelihood-ratio test of a restricted model (H0) nested in a full one (H1).

    ``lr`` = 2 (LL_full - LL_restricted) on ``df`` = n_params difference, p value
    from chi-square. With MLR fits, ``scaled_lr`` is the Satorra-Bentler scaled
    difference TRd = -2 (L0 - L1) / cd, cd = (p0 c0 - p1 c1) / (p0 - p1)
    (Mplus' MLR difference test; c = scaling correction factor, p = number of
    parameters, 0 = restricted), with ``scaled_p``. ``caveat`` holds the
    boundary warning of the paper where it applies (else "")."""

    lr: float
    df: int
    p: float
    loglik_restricted: float
    loglik_full: float
    n_params_restricted: int
    n_params_full: int
    scaling_restricted: float = float("nan")
    scaling_full: float = float("nan")
    cd: float = float("nan")
    scaled_lr: float = float("nan")
    scaled_p: float = float("nan")
    caveat: str = ""
    note: str = ""

    @property
    def scaled(self) -> bool:
        return bool(np.isfinite(self.scaled_lr))

    def to_frame(self) -> pd.DataFrame:
        rows = [{"test": "LR (chi-square)", "statistic": self.lr, "df": self.df, "p": self.p}]
        if self.scaled:
            rows.append({"test": f"MLR scaled (cd = {self.cd:.4f})", "statistic": self.scaled_lr, "df": self.df,
                         "p": self.scaled_p})
        return pd.DataFrame(rows).set_index("test")

    def __str__(self) -> str:
        lines = ["Likelihood-ratio test of nested models",
                 f"  {'':<22}{'LL':>14}{'n_params':>10}{'scaling':>10}",
                 f"  {'restricted (H0)':<22}{self.loglik_restricted:>14.3f}{self.n_params_restricted:>10d}"
                 f"{self.scaling_restricted:>10.4f}",
                 f"  {'full (H1)':<22}{self.loglik_full:>14.3f}{self.n_params_full:>10d}{self.scaling_full:>10.4f}",
                 "",
                 f"  {'test':<30}{'statistic':>11}{'df':>5}{'p':>10}"]
        for name, r in self.to_frame().iterrows():
            lines.append(f"  {name:<30}{r['statistic']:>11.3f}{int(r['df']):>5d}{r['p']:>10.4f}")
        for text in (self.note, self.caveat):
            if text:
                lines += ["", "  " + text]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


def _logit_variances(res) -> list[str]:
    """Covariances of random class-logit intercepts a fit reports."""
    return [cv.logit_variance for cv in res.model.class_variables if cv.logit_variance in res.natural]


def lr_test(restricted, full, *, ll_tol: float = 1e-6) -> LRTest:
    """Likelihood-ratio test of ``restricted`` (H0) nested in ``full`` (H1), two
    ``MLResult`` fitted to the same data.

    Returns an ``LRTest``: LR = 2 (LL_full - LL_restricted) on df = difference
    in free parameters, and, when both fits used MLR standard errors, the
    Satorra-Bentler scaled difference computed as Mplus does for MLR. Nesting is
    the user's claim; only what can be checked is checked (more parameters in
    ``full``, same number of observations, LL_full >= LL_restricted).

    Example: the between-level class LCA (Model 5 of the paper) is nested in the
    within-level LCA with random class-logit intercepts (Model 6) as Var(alpha)
    -> infinity (eq. 21), a boundary case: see ``LRTest.caveat``.
    """

    for name, res in (("restricted", restricted), ("full", full)):
        if not isinstance(res, MLResult):
            raise SpecificationError(f"{name}: got {type(res).__name__}; give an MLResult from fit_ml.")
        if res.method != "ml":
            raise SpecificationError(f"{name}: got a {res.method.upper()} fit; a likelihood-ratio test compares "
                                     "maxima of the likelihood, not posterior modes. Fix: fit both with fit_ml.")
    p0, p1 = restricted.n_params, full.n_params
    if p1 <= p0:
        raise SpecificationError(
            f"full: got {p1} free parameters against {p0} in restricted; the full model must have more. "
            "Fix: pass the model with fewer parameters first, lr_test(restricted, full).")
    if restricted.n_obs != full.n_obs:
        raise SpecificationError(
            f"full: got n_obs = {full.n_obs} against {restricted.n_obs} in restricted; a likelihood-ratio test "
            "needs both models fitted to the same observations.")
    l0, l1 = restricted.loglik, full.loglik
    if l1 < l0 - ll_tol:
        hint = ""
        if restricted.model.class_level == "between" and _logit_variances(full):
            hint = (" A within-level class with random intercepts reaches a between-level class only as "
                    "Var(alpha) -> infinity (eq. 21), which a coarse integration grid cannot follow: raise "
                    "the full model's integration n_points (e.g. 'trapezoid' with 101 or more).")
        raise SpecificationError(
            f"full: its log-likelihood {l1:.6f} is below the restricted model's {l0:.6f}; the models are not "
            "nested, or the full fit is not at its maximum. Fix: refit the full model with more random starts "
            "(or start=restricted's estimates), and check that restricted is a special case of full." + hint)
    df = p1 - p0
    lr = max(2.0 * (l1 - l0), 0.0)
    out = LRTest(lr=lr, df=df, p=float(stats.chi2.sf(lr, df)), loglik_restricted=l0, loglik_full=l1,
                 n_params_restricted=p0, n_params_full=p1,
                 scaling_restricted=float(restricted.scaling_correction), scaling_full=float(full.scaling_correction))
    if restricted.se_type == "mlr" and full.se_type == "mlr":
        c0, c1 = out.scaling_restricted, out.scaling_full
        cd = (p0 * c0 - p1 * c1) / (p0 - p1)
        out.cd = cd
        if np.isfinite(cd) and cd > 0:
            out.scaled_lr = -2.0 * (l0 - l1) / cd
            out.scaled_p = float(stats.chi2.sf(max(out.scaled_lr, 0.0), df))
        elif not np.isfinite(cd):
            out.note = ("The MLR difference scaling factor cannot be computed (a scaling correction factor is "
                        "not finite, e.g. a singular information matrix), so the scaled test is not available.")
        else:
            out.note = (f"The MLR difference scaling factor cd = {cd:.4g} is not positive, so the scaled test "
                        "is not available (this happens in small samples or with non-nested models).")
    else:
        out.note = "The scaled (MLR) difference test needs both fits with se='mlr'."

    caveats = []
    # a test that adds a (co)variance of random effects is a test at the boundary
    # (variance 0) of the parameter space
    variances = [r.name for r in full.model.reported if r.variance]
    adds_variance = [n for n in variances if n in full.natural and (
        n not in restricted.natural or np.size(full.natural[n]) > np.size(restricted.natural[n]))]
    high_icc = None
    if _logit_variances(full):
        # the estimate only (no SE needed here): the ICC's one definition at the fit's values
        values = np.concatenate([icc_from_variance(np.diag(np.atleast_2d(full.natural[n])))
                                 for n in _logit_variances(full)])
        if np.any(values > ICC_BETWEEN):
            high_icc = float(np.max(values))
    if adds_variance or high_icc is not None:
        caveats.append(BOUNDARY_CAVEAT)
    if high_icc is not None:
        caveats.append(f"The full model's class-logit ICC is {high_icc:.3f} > {ICC_BETWEEN}: this suggests a "
                       "between-level class model (the same model with class_level='between').")
    k0, k1 = restricted.n_classes, full.n_classes
    if k0 != k1:
        caveats.append(CLASSES_CAVEAT.format(k0=k0, k1=k1))
    out.caveat = " ".join(caveats)
    return out


def check_integration(result, rules) -> pd.DataFrame:
    """Re-evaluate a fit's log-likelihood at its ML estimates under other
    integration rules (paper section 10: the technical options "should not
    affect the estimation results").

    ``rules``: a list of rule names, dicts or ``bayesmix.Integration`` objects
    (e.g. ``[Integration("trapezoid", n_points=61), "adaptive"]``). Each needs
    one compilation of the model. Returns one row per rule: its description,
    the log-likelihood at the same parameter values and the difference from the
    fitted one. A difference above about 0.1 means the fitted rule is too
    coarse: refit with a finer one (large clusters make each cluster's
    posterior of the random effects narrow, and a fixed 15-point grid then
    misses it).
    """

    if not isinstance(result, MLResult):
        raise SpecificationError(f"check_integration: got {type(result).__name__}; give the MLResult of fit_ml.")
    fam = result.model
    dim = fam.integration_dim
    if dim == 0:
        how = fam.describe_integration() or "exact sums over classes"
        raise SpecificationError(
            f"check_integration: this {fam.family} model integrates nothing numerically ({how}); its "
            "log-likelihood is exact.")
    if isinstance(rules, (str, dict)) or not hasattr(rules, "__iter__"):
        rules = [rules]
    rows = [{"integration": fam.spec.integration.describe(dim) + " (fitted)", "loglik": result.loglik,
             "difference": 0.0}]
    for rule in rules:
        integ = as_integration(rule)
        other = fam.with_spec(integration=integ)
        ll = float(compiled(other).ll_and_grad(result.theta)[0])
        rows.append({"integration": integ.describe(dim), "loglik": ll, "difference": ll - result.loglik})
    return pd.DataFrame(rows)
