"""Integration rules for normally distributed cluster random effects (paper section 10).

Every rule integrates against the *standard* normal N(0, I_D): it returns nodes
``z`` (Q, D) and log weights (Q,) with ``sum(exp(log_w)) == 1``. A random effect
u ~ N(0, Sigma) with Sigma = L L' (Cholesky, Hedeker & Gibbons 1996) is reached by
u = L z inside the PyTensor graph (``core.marginal``), so the nodes are constants
and only L carries parameters.

Rules
-----
``trapezoid``
    Equally spaced points on [-bound, bound] with weights proportional to
    phi(z) * dz (Mplus' default rule). Renormalising the weights to sum 1 removes
    the O(phi(bound)) truncation error of the constant term; for a smooth
    integrand the trapezoid rule on a Gaussian is spectrally accurate, which is
    why the paper finds it works well without adaptation.
``gauss_hermite``
    Probabilists' Gauss-Hermite (numpy ``hermegauss``), weights / sqrt(2 pi).
    Exact for polynomials of degree 2Q-1 times phi, but poor when the
    integrand's mass sits far from 0 or is narrow: use ``adaptive``.
``adaptive``
    Gauss-Hermite nodes moved to each cluster's posterior mean and scaled by the
    Cholesky factor of its posterior covariance (Naylor & Smith 1982; the
    moment-based variant of gllamm, Rabe-Hesketh, Skrondal & Pickles 2002). The
    moments are found by ``n_adapt`` fixed-point passes inside the graph
    (``core.marginal``), so the objective stays a smooth, stateless function of
    the parameters.
``monte_carlo`` / ``qmc``
    Pseudo-random normal draws or a scrambled Sobol sequence mapped through the
    normal quantile, equal weights. The draws are fixed by ``seed`` (common random
    numbers), so the objective is deterministic and differentiable. Meant for 4+
    dimensions, where product rules explode.

Product rules: for D > 1 the 1-D trapezoid / Gauss-Hermite rules are crossed
(Q = n_points ** D).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from bayesmix.exceptions import SpecificationError

RULES = ("trapezoid", "gauss_hermite", "adaptive", "monte_carlo", "qmc")


@dataclass(frozen=True)
class Integration:
    """How cluster random effects are integrated out.

    Parameters
    ----------
    rule : {"trapezoid", "gauss_hermite", "adaptive", "monte_carlo", "qmc"}
        Default ``"trapezoid"`` (as Mplus).
    n_points : int or tuple of int
        Points per dimension for product rules (a tuple gives each dimension
        its own count, e.g. ``(15, 201)`` for a smooth random intercept crossed
        with a near-step class-logit intercept of huge variance, Model 6); total
        number of draws for ``monte_carlo`` / ``qmc``.
    bound : float
        Half-width of the trapezoid grid in standard-normal units.
    n_adapt : int
        Fixed-point passes that locate each cluster's posterior moments
        (``adaptive`` only).
    seed : int
        Seed of the Monte Carlo / QMC draws.
    """

    rule: str = "trapezoid"
    n_points: int | tuple = 15
    bound: float = 5.0
    n_adapt: int = 3
    seed: int = 20060101

    def __post_init__(self):
        if self.rule not in RULES:
            raise SpecificationError(
                f"integration rule: got {self.rule!r}; valid choices are "
                + ", ".join(repr(r) for r in RULES) + "."
            )
        counts = self.n_points if isinstance(self.n_points, tuple) else (self.n_points,)
        if isinstance(self.n_points, tuple) and self.rule in ("monte_carlo", "qmc"):
            raise SpecificationError(
                f"integration n_points: got {self.n_points!r} with rule {self.rule!r}; a tuple (points per "
                "dimension) needs a product rule: 'trapezoid', 'gauss_hermite' or 'adaptive'.")
        if not counts or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in counts):
            raise SpecificationError(
                f"integration n_points: got {self.n_points!r}; give a positive integer "
                "(15 per dimension is the default) or a tuple of them, one per dimension."
            )
        if self.bound <= 0:
            raise SpecificationError(f"integration bound: got {self.bound!r}; give a positive number such as 5.")
        if self.n_adapt < 1:
            raise SpecificationError(f"integration n_adapt: got {self.n_adapt!r}; give at least 1.")

    @property
    def adaptive(self) -> bool:
        return self.rule == "adaptive"

    def nodes(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Standard-normal nodes (Q, dim) and log weights (Q,) summing to one."""
        if dim < 1:
            raise SpecificationError(f"integration dimension: got {dim}; need at least 1.")
        if self.rule in ("monte_carlo", "qmc"):
            return _random_nodes(self.rule, self.n_points, dim, self.seed)
        counts = self.n_points if isinstance(self.n_points, tuple) else (self.n_points,) * dim
        if len(counts) != dim:
            raise SpecificationError(
                f"integration n_points: got {self.n_points!r} for a {dim}-dimensional integral; give one count "
                f"per dimension ({dim} of them) or a single integer.")
        return _product([_one_dim(self.rule, int(n), self.bound) for n in counts])

    def describe(self, dim: int) -> str:
        q = len(self.nodes(dim)[1]) if dim else 0
        return f"{self.rule} ({self.n_points} points{' per dimension' if self.rule not in ('monte_carlo', 'qmc') else ''}, {dim} dimension(s), {q} nodes)"


def as_integration(integration) -> Integration:
    """Accept an ``Integration``, a rule name, or a dict of ``Integration`` fields."""
    if integration is None:
        return Integration()
    if isinstance(integration, Integration):
        return integration
    if isinstance(integration, str):
        return Integration(rule=integration)
    if isinstance(integration, dict):
        bad = set(integration) - {"rule", "n_points", "bound", "n_adapt", "seed"}
        if bad:
            raise SpecificationError(
                f"integration: unknown field(s) {sorted(bad)}; valid fields are rule, n_points, bound, n_adapt, seed."
            )
        return Integration(**integration)
    raise SpecificationError(
        f"integration: got {type(integration).__name__}; give a rule name such as 'trapezoid', "
        "a dict of fields, or bayesmix.Integration(...)."
    )


def _one_dim(rule: str, n: int, bound: float) -> tuple[np.ndarray, np.ndarray]:
    if rule == "trapezoid":
        if n == 1:
            return np.zeros(1), np.zeros(1)
        z = np.linspace(-bound, bound, n)
        logw = stats.norm.logpdf(z)
        # end points carry half weight (trapezoid); then renormalise to sum one
        logw[[0, -1]] += np.log(0.5)
        return z, logw - special.logsumexp(logw)
    # Gauss-Hermite for weight exp(-z^2/2): weights sum to sqrt(2 pi)
    z, w = np.polynomial.hermite_e.hermegauss(n)
    logw = np.log(w) - 0.5 * np.log(2 * np.pi)
    return z, logw - special.logsumexp(logw)


def _product(rules: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Cross 1-D rules (nodes, log weights), one per dimension."""
    idx = np.array(list(itertools.product(*[range(len(z)) for z, _ in rules])), dtype=int)
    z = np.column_stack([rules[d][0][idx[:, d]] for d in range(len(rules))])
    logw = sum(rules[d][1][idx[:, d]] for d in range(len(rules)))
    return z, logw


def _random_nodes(rule: str, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if rule == "qmc":
        u = stats.qmc.Sobol(d=dim, scramble=True, seed=seed).random(n)
        z = stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
    else:
        z = np.random.default_rng(seed).standard_normal((n, dim))
    return z, np.full(n, -np.log(n))
