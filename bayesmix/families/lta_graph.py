"""The likelihood graph of latent transition analysis (``families/lta.py``):
per-occasion item log-densities, the class-logit parts of eqs. (8)-(9) (with the
random intercepts of eq. 15 at quadrature nodes), the sum over class paths by
the forward recursion of ``core.chains`` (explicit enumeration of the K^T paths
under full dependence), posterior and prior class marginals.

Shapes: persons N, occasions T, classes K; ``u`` (B, Q, 2(K-1)) quadrature nodes of
(alpha_1j - alpha_1, alpha_2j - E alpha_2j), B in {1, N}; a node axis Q then
follows the row axis everywhere.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesmix.core import chains
from bayesmix.core import items as core_items
from bayesmix.core.integrate import integrate_clusters, segment_sum
from bayesmix.core.marginal import class_log_prior
from bayesmix.families.blocks import share_integration


class LTAGraph:
    """Mixin of ``LTAModel``: the graph helpers (see the module docstring)."""
    def _log_emit(self, q):
        """(N, T, K) log f(y_t | C_t = k) of each person's observed items at each occasion."""
        n, k = self.data.n_persons, self.spec.n_classes
        out = 0.0
        if self.cat_items:
            thr = self.thresholds
            lp = core_items.category_log_probs(thr.padded(q["tau"]), thr.n_cat, self.spec.link)
            out = out + core_items.categorical_loglik(self.indicators, lp).reshape((n, self.n_t, k))
        if self.cont_items:
            out = out + pt.stack([core_items.normal_loglik(self.y_cont[t], self.obs_cont[t], q["nu"], q["theta"])
                                  for t in range(self.n_t)], axis=1)
        return pt.specify_shape(out, (n, self.n_t, k))

    def _class_logits(self, q, t: int, u=None):
        """(rows or 1, [Q,] K-1) the part of C_t's logits that does not depend on
        earlier classes (eq. 8 / 9), with the random intercepts at nodes u (B, Q, 2(K-1))."""
        base = self.logits[t].logits(q, self.x[t])
        if u is None:
            return base
        return base[:, None, :] + self.between.shift(q, u, t)

    def _gamma_full(self, q, s: int, t: int):
        """(K from, K-1 to) effect of C_s on C_t's logits, the reference row K zero."""
        k = self.spec.n_classes
        return pt.concatenate([q[f"gamma_{s + 1}_{t + 1}"].T, pt.zeros((1, k - 1))], axis=0)

    def _markov_parts(self, q, u=None):
        """log P(C_1) (..., K) and log P(C_t | C_(t-1)) (..., T-1, K, K)."""
        log_init = class_log_prior(self._class_logits(q, 0, u))
        trans = [class_log_prior(self._class_logits(q, t, u)[..., None, :] + self._gamma_full(q, t - 1, t))
                 for t in range(1, self.n_t)]
        return log_init, (pt.stack(trans, axis=-3) if trans else None)

    def _pattern_prior(self, q, u=None):
        """log P(path s) (..., S) under full dependence, paths ``chains.all_patterns``."""
        k = self.spec.n_classes
        pats = chains.all_patterns(k, self.n_t)
        out = pt.take(class_log_prior(self._class_logits(q, 0, u)), pats[:, 0], axis=-1)
        for t in range(1, self.n_t):
            g = sum(self._gamma_full(q, s, t)[pats[:, s]] for s in self._deps(t))  # (S, K-1)
            lp = class_log_prior(self._class_logits(q, t, u)[..., None, :] + g)  # (..., S, K)
            out = out + pt.sum(lp * np.eye(k)[pats[:, t]], axis=-1)
        return out, pats

    def _person_loglik(self, q, log_emit, u=None):
        """(N,) or at nodes (N, Q): log sum over class paths of P(path) f(y | path)."""
        if self.spec.n_classes == 1:
            ll = pt.sum(log_emit[..., 0], axis=-1)
            return ll if u is None else ll[:, None]
        emit = log_emit if u is None else log_emit[:, None]
        if self.spec.dependence == "full" and self.n_t > 2:
            prior, pats = self._pattern_prior(q, u)
            return chains.pattern_loglik(prior, emit, pats)
        if self._shared_nodes(u):
            return self._two_occasion_loglik(q, log_emit, u)
        log_init, log_trans = self._markov_parts(q, u)
        if log_trans is None:
            return pt.logsumexp(log_init + emit[..., 0, :], axis=-1)
        return chains.markov_loglik(log_init, log_trans, emit)

    def _shared_nodes(self, u) -> bool:
        """Whether P(C_1, C_2 | node) is the same for every person: one set of nodes
        (a fixed rule, not adaptive), T = 2 and no covariates in the class logits."""
        return (u is not None and self.n_t == 2 and not self.spec.integration.adaptive
                and all(x.shape[1] == 0 for x in self.x))

    def _two_occasion_loglik(self, q, log_emit, u):
        """(N, Q) log sum_(a, b) P(C_1 = a, C_2 = b | node) f(y_1 | a) f(y_2 | b) as one
        matrix product: the K^2 path probabilities at the Q nodes do not depend on the
        person, so the sum is W (N, K^2) @ M (K^2, Q) with W = exp(log f(y_1|a) +
        log f(y_2|b) - m), m the person's largest such term (W in [0, 1], its largest
        entry 1), and M the path probabilities themselves. The sum is then at least
        the smallest path probability (> 1e-30 within the logit bounds): no underflow,
        and an elementwise log-sum-exp over (N, Q, K, K) becomes a BLAS product (10x
        faster on the section 4 design)."""
        n, k = self.data.n_persons, self.spec.n_classes
        log_init, log_trans = self._markov_parts(q, u)  # (1, Q, K), (1, Q, 1, K, K)
        q_nodes = u.shape[1]
        path = pt.reshape(pt.exp(log_init[0][:, :, None] + log_trans[0, :, 0]), (q_nodes, k * k))
        pair = pt.reshape(log_emit[:, 0, :, None] + log_emit[:, 1, None, :], (n, k * k))
        top = pt.max(pair, axis=1, keepdims=True)
        return top + pt.log(pt.dot(pt.exp(pair - top), path.T))

    def _posterior_marginals(self, q, log_emit, u=None):
        """(N, [Q,] T, K) P(C_t = k | y) (log_emit of zeros: the prior marginals),
        and the pair marginals (N, [Q,] T-1, K, K)."""
        emit = log_emit if u is None else log_emit[:, None]
        if self.spec.dependence == "full" and self.n_t > 2:
            prior, pats = self._pattern_prior(q, u)
            post = chains.pattern_posteriors(prior, emit, pats)  # (..., S)
            k = self.spec.n_classes
            one = np.eye(k)[pats]  # (S, T, K)
            pair = one[:, :-1, :, None] * one[:, 1:, None, :]
            marg = pt.tensordot(post, one, axes=[[-1], [0]])
            return marg, pt.tensordot(post, pair, axes=[[-1], [0]])
        log_init, log_trans = self._markov_parts(q, u)
        if log_trans is None:
            marg = pt.special.softmax(log_init + emit[..., 0, :], axis=-1)[..., None, :]
            return marg, None
        return chains.markov_posteriors(log_init, log_trans, emit)

    def _integral(self, q, log_emit):
        return integrate_clusters(lambda u: self._person_loglik(q, log_emit, u), self.spec.integration, q["chol"],
                                  self.data.cluster_idx, self.data.n_clusters)

    def _unit_loglik(self, q):
        log_emit = self._log_emit(q)
        if self.spec.random_intercepts:
            return self._integral(q, log_emit).loglik
        person = self._person_loglik(q, log_emit)
        if self.is_two_level:
            return segment_sum(person, self.data.cluster_idx, self.data.n_clusters)
        return person

    def _prior_summaries(self, q):
        """(T, K) model-implied class shares per occasion and (T-1, K, K) prior pair
        probabilities P(C_(t-1) = j, C_t = k), averaged over persons (and the random
        intercepts, on the fine ``share_integration`` grid)."""
        k = self.spec.n_classes
        if k == 1:
            return pt.ones((self.n_t, 1)), pt.ones((max(self.n_t - 1, 1), 1, 1))
        zeros = pt.zeros((1, self.n_t, k))
        if not self.spec.random_intercepts:
            marg, pairs = self._posterior_marginals(q, zeros)
            return pt.mean(marg, axis=0), (None if pairs is None else pt.mean(pairs, axis=0))
        dim = self.between.dim
        z, logw = share_integration(dim).nodes(dim)
        u = pt.dot(pt.as_tensor(z), q["chol"].T)[None]
        marg, pairs = self._posterior_marginals(q, zeros, u)
        w = np.exp(logw)
        return (pt.mean(pt.tensordot(marg, w, axes=[[1], [0]]), axis=0),
                pt.mean(pt.tensordot(pairs, w, axes=[[1], [0]]), axis=0))
