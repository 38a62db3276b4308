"""The between (cluster) level of the two-level LTA (section 4, eqs. 10 and 15),
for any number of classes K and T = 2 occasions.

The class-logit intercepts of the two occasions are cluster random effects,
vectors of the K-1 non-reference logits:

    alpha_1j = alpha_1 + u_1j,                  u_1j ~ N(0, Sigma_1),
    alpha_2j = mu + B alpha_1j + eps_j,         eps_j ~ N(0, Sigma_eps),      (eq. 15)

with B (K-1, K-1) the regression of the occasion-2 intercepts on the
occasion-1 ones (B[k, l]: effect of alpha_1jl on alpha_2jk; for K = 2 the
paper's scalar beta). Sigma_1, B and Sigma_eps are a one-to-one
re-parameterisation of the free covariance of (alpha_1j, alpha_2j): the
structural form makes mu, B, Var(alpha_1) and Var(eps) the reported
parameters with SEs, as the paper reports them, and, being saturated, it is
closed under relabelling (a change of the reference class maps alpha_tj
linearly, A_t alpha_tj, and B -> A_2 B A_1^{-1}).

The joint Cholesky factor of (u_1j, alpha_2j - E alpha_2j) is lower triangular,

    L = [[L_1, 0], [B L_1, L_eps]],

with L_1, L_eps the Cholesky factors of Sigma_1 and Sigma_eps (positive
diagonals ``exp(log_sd)``), so it is used as is by the cluster integral
(``core.integrate``): no factorisation inside the graph. For K = 2 it is
``structural_chol`` of section 4 exactly, and ``beta`` stays a scalar.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.core.integrate import chol_from_unconstrained
from bayesmix.families.base import ParameterInfo, Reported
from bayesmix.families.blocks import LOG_SD_BOUNDS, RANDOM_INTERCEPT_START_SD, recode_chol, reference_map

SD_AT_BOUND = ("A log standard deviation of alpha_1j or eps_j at its bound: a variance at 0 (or a huge one).")


class BetweenIntercepts:
    """Parameters, graph pieces and relabelling of eq. (15) for K classes."""

    def __init__(self, n_classes: int):
        self.k = n_classes
        self.m = n_classes - 1  # non-reference logits per occasion
        self.dim = 2 * self.m  # integrated dimensions per cluster

    # ------------------------------------------------------------------ layout
    def coords(self) -> dict:
        if self.m == 1:
            labels = ["alpha_1", "alpha_2"]
        else:
            labels = [f"alpha_{t}[{c}]" for t in (1, 2) for c in range(1, self.k)]
        out = {dims.RE: labels, dims.RE_BIS: labels}
        if self.m > 1:
            r, c = np.tril_indices(self.m, -1)
            out[dims.RE_OFFDIAG] = [f"{v}[{i + 1},{j + 1}]" for v in ("alpha_1", "eps") for i, j in zip(r, c)]
        return out

    def parameters(self) -> list[ParameterInfo]:
        beta_dims = () if self.m == 1 else (dims.CLASS_LOGIT, dims.CLASS_FROM_LOGIT)
        out = [ParameterInfo("beta", beta_dims, pm.Normal.dist(0.0, 2.0),
                             "regression of alpha_2j on alpha_1j, eq. (15)"),
               ParameterInfo("log_sd", (dims.RE,), pm.Normal.dist(0.0, 1.5),
                             "log sd (Cholesky diagonal) of alpha_1j and of eps_j, eq. (15)", bounds=LOG_SD_BOUNDS,
                             at_bound=SD_AT_BOUND)]
        if self.m > 1:
            out.append(ParameterInfo("chol_offdiag", (dims.RE_OFFDIAG,), pm.Normal.dist(0.0, 1.0),
                                     "below-diagonal Cholesky elements of Var(alpha_1j) and Var(eps_j)"))
        return out

    def start(self) -> dict[str, np.ndarray]:
        m = self.m
        out = {"beta": np.array(0.0) if m == 1 else np.zeros((m, m)),
               "log_sd": np.full(self.dim, np.log(RANDOM_INTERCEPT_START_SD))}
        if m > 1:
            out["chol_offdiag"] = np.zeros(m * (m - 1))
        return out

    # ------------------------------------------------------------------ graph
    def b_matrix(self, p: dict):
        return pt.reshape(p["beta"], (self.m, self.m))

    def chol(self, p: dict):
        """The joint factor L (module docstring) and the Deterministics of eq. (15):
        ``var_alpha1`` and ``var_eps`` (scalars for K = 2, else the diagonals),
        ``psi`` = Cov(alpha_1j, alpha_2j) and ``alpha_2`` = E alpha_2j."""
        m = self.m
        off = p.get("chol_offdiag")
        half = m * (m - 1) // 2
        l1 = chol_from_unconstrained(p["log_sd"][:m], None if off is None else off[:half], m)
        le = chol_from_unconstrained(p["log_sd"][m:], None if off is None else off[half:], m)
        b = self.b_matrix(p)
        chol = pt.concatenate([pt.concatenate([l1, pt.zeros((m, m))], axis=1),
                               pt.concatenate([pt.dot(b, l1), le], axis=1)], axis=0)
        chol = pt.specify_shape(chol, (self.dim, self.dim))
        v1, ve = pt.sum(l1 ** 2, axis=1), pt.sum(le ** 2, axis=1)  # diagonals of L L'
        var_dims = () if m == 1 else (dims.CLASS_LOGIT,)
        pm.Deterministic("var_alpha1", v1[0] if m == 1 else v1, dims=var_dims)
        pm.Deterministic("var_eps", ve[0] if m == 1 else ve, dims=var_dims)
        pm.Deterministic("psi", chol @ chol.T, dims=(dims.RE, dims.RE_BIS))
        pm.Deterministic("alpha_2", p["mu"] + pt.dot(b, p["alpha_1"]), dims=(dims.CLASS_LOGIT,))
        return chol

    def reported(self) -> list[Reported]:
        out = [Reported("beta", "alpha_2j ON alpha_1j (beta, eq. 15)")]
        if self.m > 1:
            out.append(Reported("chol_offdiag", "Cholesky off-diagonals of Var(alpha_1j), Var(eps_j)"))
        return out + [Reported("var_alpha1", "Variance of alpha_1j", variance=True),
                      Reported("var_eps", "Residual variance of alpha_2j (eps_j, eq. 15)", variance=True),
                      Reported("psi", "Covariance of (alpha_1j, alpha_2j)", variance=True),
                      Reported("alpha_2", "Mean of alpha_2j (mu + beta alpha_1)")]

    def shift(self, q, u, t: int):
        """(B, Q, K-1) the random part of C_t's logit intercepts at nodes u (B, Q, 2(K-1)):
        u_1j for t = 0; for t = 1 alpha_2j - mu, i.e. B alpha_1 + (its deviation)."""
        m = self.m
        s = u[..., t * m:(t + 1) * m]
        if t == 1:  # E alpha_2j = mu + B alpha_1 (eq. 15); mu is C_2's fixed intercept
            s = s + pt.dot(self.b_matrix(q), q["alpha_1"])
        return s

    # ------------------------------------------------------------------ numpy side
    def covariance(self, natural: dict) -> np.ndarray:
        return np.asarray(natural["psi"], float)

    def mean_shift(self, natural: dict) -> np.ndarray:
        """(K-1,) B alpha_1, the part of E alpha_2j beyond mu."""
        b = np.asarray(natural["beta"], float).reshape(self.m, self.m)
        return b @ np.ravel(np.asarray(natural["alpha_1"], float))

    def permute(self, values: dict, perm1, perm2) -> dict:
        """Relabel C_1 by ``perm1`` and C_2 by ``perm2`` (new class c is old perm[c]):
        alpha_1j -> A_1 alpha_1j, alpha_2j -> A_2 alpha_2j (``reference_map``), so
        Sigma_1 -> A_1 Sigma_1 A_1', B -> A_2 B A_1^{-1}, Sigma_eps -> A_2 Sigma_eps A_2'
        (leading draw axes kept). The fixed means alpha_1 and mu are recoded by
        the class-logit blocks."""
        if "log_sd" not in values:
            return values
        m, out = self.m, dict(values)
        a1, a2 = reference_map(np.asarray(perm1)), reference_map(np.asarray(perm2))
        log_sd = np.asarray(values["log_sd"], float)
        off = values.get("chol_offdiag")
        half = m * (m - 1) // 2
        off1 = None if off is None else np.asarray(off, float)[..., :half]
        offe = None if off is None else np.asarray(off, float)[..., half:]
        b = np.asarray(values["beta"], float)
        lead = b.shape[:b.ndim - (0 if m == 1 else 2)]
        b = b.reshape(lead + (m, m))
        new_b = a2 @ b @ np.linalg.inv(a1)
        (d1, o1), (de, oe) = recode_chol(a1, log_sd[..., :m], off1), recode_chol(a2, log_sd[..., m:], offe)
        out["log_sd"] = np.concatenate([d1, de], axis=-1)
        if m > 1:
            out["chol_offdiag"] = np.concatenate([o1, oe], axis=-1)
        out["beta"] = new_b.reshape(lead) if m == 1 else new_b
        return out
