"""Identification and separation checks on the information matrix at the ML optimum.

A fit can stop at a point whose log-likelihood is flat in some direction: the
parameters are not identified there (one item and two classes; more parameters
than distinct response patterns; a random-intercept variance when every cluster
has one person), or the maximum is at infinity (perfect or quasi-complete
separation: a binary outcome perfectly predicted, a class-logit covariate that
copies an item). The optimizer still stops at a finite point, and the inverse of
the nearly singular Hessian gives finite but meaningless standard errors (a slope
of 941 with SE 31.6 "converged"). Mplus reports this as a non-positive definite
information matrix and names the parameter; we do the same and go one step
further: the SE of every reported quantity that moves along a flat direction is
set to NaN instead of being printed.

Numerical choices
-----------------
* The observed information I = -H over the parameters not held at a bound is
  rescaled to unit diagonal, R = D^-1/2 I D^-1/2, so the test does not depend on
  the units of the parameters (a covariate in dollars gives a slope with a tiny
  curvature but an identified one). A parameter whose own curvature is zero (its
  diagonal below 1e-10 of the largest) is flat by itself and is taken out first.
* The Hessian comes from central differences of the exact gradient (relative step
  1e-5), accurate to about 1e-9 relative. The eigenvalues of R on the designs of
  tests/test_identification.py are either 1e-10..3e-8 (flat directions) or above
  0.05 (identified ones), so ``NULL_TOL = 1e-6`` leaves two orders of magnitude
  of room on both sides.
* Separation versus non-identification: along a flat direction v, oriented so that
  the parameters grow in magnitude, the LL of a separated model keeps rising (or
  stays within 1e-6) as the step grows to 20 times the largest parameter involved,
  and falls on a step back; a non-identified model has a curved ridge, which a
  straight step of that length leaves (the LL falls), or a straight one that is
  flat both ways (collinear covariates).
"""

from __future__ import annotations

import numpy as np

NULL_TOL = 1e-6        # relative eigenvalue of the unit-diagonal information counted as zero
ZERO_DIAG = 1e-10      # own curvature (relative to the largest) counted as zero
LOADING = 0.1          # share of a flat direction's largest element that names a parameter
SE_MASK = 1e-3         # relative projection of a reported quantity on a flat direction that voids its SE
RECESSION_STEP = 20.0  # length of the step along a flat direction in the separation test
RECESSION_TOL = 1e-6   # LL drop still counted as "keeps rising"


def flat_directions(hessian: np.ndarray, free: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Unit vectors (P, m) in the full parameter space spanning the directions in
    which the information ``-hessian`` restricted to ``free`` is (numerically)
    singular; m = 0 when the information is positive definite there (``x``, the
    estimates, orients the block of parameters without any curvature)."""
    p = hessian.shape[0]
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return np.zeros((p, 0))
    info = -hessian[np.ix_(idx, idx)]
    x_free = np.asarray(x, dtype=float)[idx]
    info = (info + info.T) / 2
    diag = np.diag(info)
    scale = max(float(np.max(np.abs(diag), initial=0.0)), 1e-300)
    flat_alone = diag <= ZERO_DIAG * scale
    vectors = []
    if flat_alone.any():
        # parameters without curvature of their own form one flat block; its direction is
        # the radial one (scaling those estimates up), along which a separation keeps rising
        v = np.zeros(idx.size)
        v[flat_alone] = x_free[flat_alone] if np.any(x_free[flat_alone]) else 1.0
        vectors.append(v / np.linalg.norm(v))
    keep = np.flatnonzero(~flat_alone)
    if keep.size:
        d = np.sqrt(diag[keep])
        r = info[np.ix_(keep, keep)] / np.outer(d, d)
        vals, vecs = np.linalg.eigh(r)
        for j in np.flatnonzero(vals <= NULL_TOL * max(vals[-1], 1.0)):
            v = np.zeros(idx.size)
            v[keep] = vecs[:, j] / d  # back to the original parameter scale
            vectors.append(v / np.linalg.norm(v))
    out = np.zeros((p, len(vectors)))
    for j, v in enumerate(vectors):
        out[idx, j] = v
    return out


def _keeps_rising(loglik, x: np.ndarray, ll0: float, v: np.ndarray) -> bool:
    """Whether ``v`` is a direction of recession: oriented outward (the involved
    parameters grow), the LL stays at or above ``ll0`` for steps up to
    RECESSION_STEP times the largest parameter involved, while a step inward lowers
    it. A straight ridge that is flat both ways (collinear covariates) is not a
    separation; neither is a curved ridge, which the straight step leaves."""
    if v @ x < 0:
        v = -v
    reach = RECESSION_STEP * max(1.0, float(np.max(np.abs(x[np.abs(v) > LOADING * np.abs(v).max()]))))

    def ll_at(t):
        try:
            ll = float(loglik(x + t * v))
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            return -np.inf
        return ll if np.isfinite(ll) else -np.inf

    if any(ll_at(t) < ll0 - RECESSION_TOL for t in (1.0, reach / 4, reach)):
        return False
    return ll_at(-reach / 4) < ll0 - RECESSION_TOL


def _separated_beside_bounds(loglik, x, ll0, at_bound, info_diag) -> list[int]:
    """Free parameters that run to infinity together with parameters held at a
    bound. A perfectly predicted binary outcome drives its threshold to the +-15
    box; with the threshold held there the slope has curvature again, so the flat
    direction test cannot see it. Scaling the held parameters and slope j together
    by s = 1.5, 2, 4 (the separating line sharpens and stays put) does not lower
    the LL when j is part of the separation; an ordinary parameter moved that far
    (at least 3 of its SEs) lowers it."""
    if not at_bound.any():
        return []
    out = []
    for j in np.flatnonzero(~at_bound):
        if not (0.5 * abs(x[j]) * np.sqrt(max(info_diag[j], 0.0)) > 3.0):
            continue
        rising = True
        for s in (1.5, 2.0, 4.0):
            y = x.copy()
            y[at_bound] *= s
            y[j] *= s
            try:
                ll = float(loglik(y))
            except (FloatingPointError, ValueError, np.linalg.LinAlgError):
                ll = -np.inf
            if not np.isfinite(ll) or ll < ll0 - RECESSION_TOL:
                rising = False
                break
        if rising:
            out.append(int(j))
    return out


def check_information(hessian, free, x, ll0, loglik, labels, jacobian) -> dict:
    """The identification record of a fit: the flat directions of the information
    at ``x`` (over the ``free`` parameters), which parameters they involve, whether
    each is a separation (the LL keeps rising outward) or a non-identified ridge,
    and a mask of the reported quantities whose SE is void (they move along a flat
    direction or a separated parameter). ``loglik(theta)`` evaluates the LL;
    ``jacobian`` is the (R, P) Jacobian of the reported vector."""
    free = np.asarray(free, bool)
    v = flat_directions(hessian, free, x)
    directions, vectors = [], [v[:, j] for j in range(v.shape[1])]
    for vec in vectors:
        big = np.abs(vec) > LOADING * np.abs(vec).max()
        directions.append({"parameters": [lab for lab, b in zip(labels, big) if b],
                           "separation": _keeps_rising(loglik, x, ll0, vec)})
    named = {p for d in directions for p in d["parameters"]}
    for j in _separated_beside_bounds(loglik, x, ll0, ~free, -np.diag(hessian)):
        if labels[j] not in named:
            directions.append({"parameters": [labels[j]], "separation": True})
            vectors.append(np.eye(x.size)[:, j])
    void = np.zeros(jacobian.shape[0], bool)
    if vectors:
        proj = np.linalg.norm(jacobian @ np.column_stack(vectors), axis=1)
        norm = np.linalg.norm(jacobian, axis=1)
        void = proj > SE_MASK * np.where(norm > 0, norm, np.inf)
    return {"identified": not directions, "n_flat": len(directions), "directions": directions,
            "void_se": void}


def _names(directions) -> str:
    return ", ".join(dict.fromkeys(p for d in directions for p in d["parameters"]))


def message(record: dict) -> str:
    """The warning text for a record with flat directions."""
    sep = [d for d in record["directions"] if d["separation"]]
    ridge = [d for d in record["directions"] if not d["separation"]]
    parts = []
    if sep:
        parts.append(
            f"perfect or quasi-complete separation: the log-likelihood keeps rising as {_names(sep)} grow without "
            "bound, so their estimates (and any SE) are artifacts of where the optimizer stopped. Typical cause: "
            "an outcome or a class that a covariate predicts perfectly (e.g. a class-logit covariate that copies "
            "an item). Fix: drop or coarsen that covariate, or fit with priors (the posterior mode or NUTS) that "
            "keep the estimate finite.")
    if ridge:
        parts.append(
            f"the information matrix is singular at the optimum ({len(ridge)} flat direction(s)): {_names(ridge)} "
            "are not identified by these data. Typical causes: more parameters than distinct response patterns "
            "(too many classes for the items), a random-intercept variance with one person per cluster, a "
            "covariate that is collinear with others. Fix: fewer classes or parameters, or drop the random effect.")
    return "fit_ml: " + " Also: ".join(parts) + " Their standard errors are set to NaN (res.identification)."
