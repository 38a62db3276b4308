"""Two-level FMA (``fma(..., cluster=...)``): persons i in clusters j, with a cluster
random intercept b_j in the logit of the person's class (K = 2):

    logit P(C_ij = 1 | x_ij, b_j) = alpha_1 + beta_1 x_ij + b_j,   b_j ~ N(0, psi_between),

the within-between class logit of eq. (20) (Model 6's alpha_1j) put on the FMA of
eq. (36)-(37); the person factor eta_ij stays a person-level factor. The cluster
likelihood nests the person integral inside the cluster integral:

    L_j = ∫ prod_{i in j} [ ∫ sum_c P(C_ij = c | x_ij, b) f(y_ij | c, eta) dN(eta; 0, psi_c) ] dN(b; 0, psi_between).

b_j enters only the class prior and eta only the items, so the class sum can be taken
outside the person integral (eta = sd_c z, z ~ N(0, 1) in every class):

    L_ij(b) = sum_c P(C_ij = c | x_ij, b) F_ijc,   F_ijc = ∫ f(y_ij | c, z) dN(z),

and the person integral F_ijc is evaluated once per class (a kept class axis of
``core.integrate.integrate``), not once per node of b: the nested integral is exact on
the same product grid (n_points=(person, cluster), 31 x 31 by default) at the cost of
Q_w + Q_b instead of Q_w x Q_b node evaluations per person. The first version evaluated
the inner integral at every outer node (the GoM's pattern, where both levels enter the
class logit and nothing factorises): 117 ms per LL + gradient (median) at 100 clusters x
10 persons x 10 items on 31 x 31 nodes, 45 ms with that class sum in probability space,
against 2.8 ms factorised and 2.1 ms for the single-level FMA on the same persons and
person rule (benchmarks/bench_fma_two_level.py, JAX, 2 loaded cores); the old and the
factorised graphs agree to 1.4e-14 per cluster LL and 6e-14 in the gradient. The outer
call sums the persons' logs into clusters.

Only fixed product rules (trapezoid, Gauss-Hermite) are allowed: adaptive nodes are
placed per unit and cannot be placed per class and per outer node (``integrate``
refuses kept axes), and Monte Carlo draws count draws, not points per level; both are
refused by ``check_two_level`` before anything is built.

K > 2 is refused: one intercept b_j shared by every non-reference logit is not closed
under relabelling (moving the reference class moves b_j off one logit onto the
others), so the labels found by NUTS or the random starts would change the model.

Memberships: the person's class posterior given the whole cluster,
P(C_ij = c | Y_j) = sum_b P(b | Y_j) P(C_ij = c | b, y_ij): the cluster's posterior
over b (the outer node weights, which use every person of the cluster) averaged over
the person's class posterior at each b. Factor scores: z given the class and y_ij is
independent of b, so the weights P(C_ij = c | Y_j) P(z | c, y_ij) give the EAP scores.
"""

from __future__ import annotations

import dataclasses

import pytensor.tensor as pt

from bayesmix.core.integrate import integrate
from bayesmix.core.marginal import class_log_prior
from bayesmix.core.quadrature import Integration
from bayesmix.exceptions import SpecificationError

PRODUCT_RULES = ("trapezoid", "gauss_hermite")
SD_AT_BOUND = ("The log sd of the cluster intercept b_j at its bound: no cluster variation in the class "
               "(psi_between = 0, the single-level FMA) or a huge one (the class nearly constant within clusters).")


def check_two_level(n_classes: int, integration: Integration, cluster) -> None:
    """The two-level FMA's argument checks (before any data or graph work)."""
    if n_classes != 2:
        raise SpecificationError(
            f"cluster: the two-level FMA has one cluster random intercept b_j in the class logit of K = 2 "
            f"(got n_classes={n_classes}); with K > 2 a single b_j shared by every non-reference logit is not "
            "closed under relabelling of the classes. Fit n_classes=2 or leave cluster out.")
    if integration.rule not in PRODUCT_RULES:
        raise SpecificationError(
            f"integration: got rule {integration.rule!r} with cluster={cluster!r}; the person integral over "
            "eta is nested inside the cluster integral over b_j (one inner integral per cluster node), which "
            "needs a fixed product rule: 'trapezoid' or 'gauss_hermite', e.g. bm.Integration('trapezoid', "
            "n_points=(31, 31)) (adaptive or Monte Carlo nodes cannot be placed per outer node).")
    integration.counts(2)  # n_points: one count or (person, cluster); raises naming n_points


def level_rules(integration: Integration) -> tuple[Integration, Integration]:
    """The 1-D rules of the person integral (inner) and the cluster integral (outer)
    from the spec's 2-D product rule (``n_points=(person, cluster)``)."""
    n_w, n_b = integration.counts(2)
    return dataclasses.replace(integration, n_points=n_w), dataclasses.replace(integration, n_points=n_b)


def nested_integral(fam, q):
    """(outer Integral over b (J,), kept) with kept["inner"] the person integral per
    class (loglik (N, K) log ∫ f(y_ij | c, z) dN(z), log_post (N, Q_w, K) of z given the
    class and y_ij, nodes (1, Q_w, 1)) and kept["log_prior"] (1 or N, Q_b, K)
    log P(C_ij = c | x_ij, b) at the outer nodes."""
    inner_rule, outer_rule = level_rules(fam.spec.integration)
    logits = fam.logits_block.logits(q, fam.x)  # (1 or N, 1) fixed part alpha_1 + beta_1 x
    sd_b = pt.exp(q["log_sd_between"])[None, None]  # (1, 1): the outer nodes are b = sd_b z
    # the person integral, one per class (a kept class axis): it does not depend on b
    inner = integrate(lambda uw: fam._log_f_at(q, uw), inner_rule, pt.eye(1))
    kept = {"inner": inner}

    def person_at(ub):  # (1, Q_b, 1) values of b_j
        log_prior = class_log_prior(logits[:, None, :] + ub)  # (1 or N, Q_b, K)
        kept["log_prior"] = log_prior
        # log L_ij(b) = log sum_c P(C_ij = c | x_ij, b) ∫ f(y_ij | c, z) dN(z)
        return pt.logsumexp(log_prior + inner.loglik[:, None, :], axis=-1)  # (N, Q_b)

    outer = integrate(person_at, outer_rule, sd_b, unit_idx=fam.data.cluster_idx, n_units=fam.data.n_clusters)
    return outer, kept


def posterior_weights(fam, q):
    """(N, Q_w, K) P(z, C_ij = c | Y_j) per person (sums to 1) and (1, Q_w) the standard
    factor z at each node: P(C_ij = c | Y_j) = sum_b P(b | Y_j) P(C_ij = c | b, y_ij),
    times P(z | c, y_ij) (z is independent of b given the class)."""
    outer, kept = nested_integral(fam, q)
    inner = kept["inner"]
    # P(C_ij = c | b, y_ij) at each outer node, averaged with the cluster's posterior over b
    p_c_b = pt.special.softmax(kept["log_prior"] + inner.loglik[:, None, :], axis=-1)  # (N, Q_b, K)
    p_c = pt.sum(pt.exp(outer.log_post)[fam.data.cluster_idx][:, :, None] * p_c_b, axis=1)  # (N, K)
    return p_c[:, None, :] * pt.exp(inner.log_post), inner.nodes[:, :, 0]


__all__ = ["check_two_level", "level_rules", "nested_integral", "posterior_weights"]
