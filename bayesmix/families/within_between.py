"""Within and between latent class variables together (paper section 6, eq. 22-26).

A within class C_ij (K classes) and a between class D_j (M classes):

    P(D_j = d) = softmax_d(alpha_between_d + beta_between_d w_j)                  (eq. 26)
    P(C_ij = c | D_j = d) = softmax_c(alpha_c + gamma_cd + beta_class_c x_ij)     (eq. 24)
    eta_j | D_j = d ~ N(mu_between_d + Gamma w_j, V_d)                            (eq. 25)
    [y_ij | C_ij = c, D_j = d]: mixture regression of class c with the random
                                coefficients eta_j                                (eq. 22-23)

so D acts on the within-level model through the means (and, with
``class_specific_variance``, the covariance) of the random coefficients, and on
C through gamma_cd. Identification: gamma_Kd = gamma_cM = 0 and mu_between_M = 0
(the class-specific means mu_c, beta_c of C already locate the coefficients).

The likelihood of cluster j sums D out outside the integral and C inside it:
ll_j = log sum_d P(D_j = d) int prod_i sum_c P(C_ij = c | d) f(y_ij | c, eta) dN(eta).

Parameters added to those of ``mixture_regression``: ``alpha_between``
Normal(0, 3), ``beta_between`` Normal(0, 2.5), ``gamma_cd`` Normal(0, 3),
``mu_between`` Normal(0, 2 scale). Reported: those and ``class_between_share``.
``WithinBetweenModel`` is the mixture regression model with the D hooks filled
in; ``cluster_membership()`` gives P(D_j = d | data).

Relabelling D. The reference class M carries gamma_.M = 0 and mu_between_M = 0,
so a new labelling of D moves the old reference's values into the within-level
parameters: with s = old values of the new reference class perm[M-1],
alpha_c += gamma_c,s and gamma_cd -= gamma_c,s; and mu_between_d -= kappa_s while
kappa_s (the shift of the random-coefficient means) enters the outcome
intercepts (mu, or -tau for a categorical outcome's thresholds) and slopes
(beta) it is the mean of. The likelihood is unchanged (tested).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.families.base import ClassVariable, ParameterInfo, Reported
from bayesmix.families.blocks import ClassLogits, check_n_classes, draw_classes
from bayesmix.families.examples import example_data
from bayesmix.families.mixture_regression import RegressionModel
from bayesmix.families.regression_spec import build_regression


def within_between(
    data,
    outcomes,
    covariates=None,
    n_classes: int = 2,
    n_between: int = 2,
    *,
    cluster,
    random=None,
    cluster_covariates=None,
    class_covariates=None,
    between_covariates=None,
    outcome_types=None,
    link: str = "logit",
    re_cov: str = "full",
    class_specific_variance: bool = False,
    integration="trapezoid",
    priors: dict | None = None,
):
    """Two-level mixture with a within class C_ij and a between class D_j (section 6).

    Arguments as ``mixture_regression`` (the within class is C), plus
    ``n_between`` (M >= 2 classes of D_j) and ``between_covariates``
    (cluster-level predictors of D_j, eq. 26). ``class_specific_variance`` gives
    each D class its own random-coefficient covariance V_d (eq. 25).
    """
    check_n_classes(n_between, "n_between", low=2, hint=" (with one between class use mixture_regression)")
    return build_regression(WithinBetweenModel, data, outcomes, covariates, n_classes, n_between, cluster=cluster,
                            class_level="within", random=random, cluster_covariates=cluster_covariates,
                            class_covariates=class_covariates, outcome_types=outcome_types, link=link,
                            re_cov=re_cov, class_specific_variance=class_specific_variance,
                            integration=integration, priors=priors, between_covariates=between_covariates)


class WithinBetweenModel(RegressionModel):
    """The section 6 model: a mixture regression with a between class D_j."""

    family_name = "within_between"

    @property
    def class_level(self) -> str:
        return "within+between"

    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        return (*super().class_variables,
                ClassVariable("D", dims.CLASS_BETWEEN, self.spec.n_between, (dims.CLUSTER,), "class_between_share",
                              label="between class D"))

    def _blocks(self):
        super()._blocks()
        self.between_logits = ClassLogits(self.spec.n_between, len(self.spec.between_covariates),
                                          intercept="alpha_between", slope="beta_between",
                                          logit_dim=dims.CLASS_BETWEEN_LOGIT, covariate_dim=dims.BETWEEN_COVARIATE,
                                          level_eq="eq. 26", symbol="D")

    def _coords(self):
        coords = super()._coords()
        coords[dims.CLASS_BETWEEN] = list(range(1, self.spec.n_between + 1))
        coords.update(self.between_logits.coords())
        if self.spec.between_covariates:
            coords[dims.BETWEEN_COVARIATE] = list(self.spec.between_covariates)
        return coords

    # ------------------------------------------------------------------ D hooks
    def _between_parameters(self) -> list[ParameterInfo]:
        free = self.between_logits.fixed_parameters()
        if self.spec.n_classes > 1:
            free.append(ParameterInfo("gamma_cd", (dims.CLASS_LOGIT, dims.CLASS_BETWEEN_LOGIT),
                                      pm.Normal.dist(0.0, 3.0), "effect of D_j on the logits of C_ij, eq. (24)"))
        if self.spec.random:
            free.append(ParameterInfo("mu_between", (dims.CLASS_BETWEEN_LOGIT, dims.RE_COEF),
                                      pm.Normal.dist(0.0, 2.0 * self._re_scale()),
                                      "D-specific means of the random coefficients, eq. (25)"))
        return free

    def _between_reported(self) -> list[Reported]:
        out = [Reported("alpha_between", "Means (logits of the between class D, eq. 26)")]
        if self.spec.between_covariates:
            out.append(Reported("beta_between", "D ON (eq. 26)"))
        if self.spec.n_classes > 1:
            out.append(Reported("gamma_cd", "C ON D (eq. 24)"))
        if self.spec.random:
            out.append(Reported("mu_between", "Random-coefficient means by D (eq. 25)"))
        return out

    def _between_prior(self, q):
        return ClassLogits.log_prior(self.between_logits.logits(q, self.shared["wb"]))

    def _d_terms(self, q, d: int):
        m = self.spec.n_between
        gamma_d = kappa_d = None
        if self.spec.n_classes > 1:
            gamma_d = q["gamma_cd"][:, d] if d < m - 1 else pt.zeros((self.spec.n_classes - 1,))
        if self.spec.random:
            kappa_d = q["mu_between"][d] if d < m - 1 else pt.zeros((len(self.re_terms),))
        return gamma_d, kappa_d

    def _between_shares(self, q) -> list[Reported]:
        share = pt.mean(pt.exp(self._between_prior(q)) * pt.ones((self.data.n_clusters, 1)), axis=0)
        pm.Deterministic("class_between_share", share, dims=(dims.CLASS_BETWEEN,))
        return [Reported("class_between_share", "Between-class (D) proportions")]

    def _class_share(self, q):
        """P(C = c) averaged over persons and over D given the cluster covariates."""
        if self.spec.n_classes == 1:
            return pt.ones((1,))
        prior_d = pt.exp(self._between_prior(q))  # (1 or J, M)
        if prior_d.type.shape[0] != 1:
            prior_d = prior_d[self.data.cluster_idx]
        total = 0.0
        for d in range(self.spec.n_between):
            gamma_d, _ = self._d_terms(q, d)
            total = total + prior_d[:, d: d + 1] * pt.exp(ClassLogits.log_prior(self._class_logits(q, gamma_d[None, :])))
        return pt.mean(total * pt.ones((self.data.n_persons, 1)), axis=0)

    # ------------------------------------------------------------------ likelihood and membership
    def _per_d(self, q):
        return pt.stack([self._within_ll(q, d) for d in range(self.spec.n_between)], axis=1)  # (J, M)

    def _unit_loglik(self, q):
        return pt.logsumexp(self._between_prior(q) + self._per_d(q), axis=-1)

    def membership_graphs(self, q):
        """{"C": (N, K) P(C_ij = c | y_j), "D": (J, M) P(D_j = d | y_j)}."""
        post_d = pt.special.softmax(self._between_prior(q) + self._per_d(q), axis=-1)
        if self.spec.n_classes == 1:
            post_c = pt.ones((self.data.n_persons, 1))
        else:
            person_d = post_d[self.data.cluster_idx]  # (N, M)
            post_c = sum(person_d[:, d: d + 1] * self._within_membership_d(q, d) for d in range(self.spec.n_between))
        return {"C": post_c, "D": post_d}

    # ------------------------------------------------------------------ fitting hooks
    def start_point(self, rng):
        start = super().start_point(rng)
        m, k = self.spec.n_between, self.spec.n_classes
        start.update(self.between_logits.start_fixed(rng))
        if k > 1:
            start["gamma_cd"] = rng.normal(0.0, 1.0, size=(k - 1, m - 1))
        if self.spec.random:
            start["mu_between"] = rng.uniform(-1.0, 1.0, size=(m - 1, len(self.re_terms))) * self._re_scale()
        return start

    def class_signature(self, values):
        """C as the mixture regression's; D by its standardised random-coefficient
        means and its effects on the logits of C, centred over the D classes (so
        the features do not depend on which class is the reference)."""
        out = dict(super().class_signature(values))
        feats = []
        if "mu_between" in values:
            kappa = values["mu_between"] / self._re_scale()
            feats.append(np.concatenate([kappa, np.zeros_like(kappa[..., :1, :])], axis=-2))
        if "gamma_cd" in values:
            g = np.swapaxes(values["gamma_cd"], -1, -2)  # (..., M-1, K-1)
            feats.append(np.concatenate([g, np.zeros_like(g[..., :1, :])], axis=-2))
        feats = np.concatenate(feats, axis=-1)
        out["D"] = feats - feats.mean(axis=-2, keepdims=True)
        return out

    def permute_classes(self, values, perms):
        """Relabel C (as the mixture regression) and D (see the module docstring)."""
        perms = self._perm_dict(perms)
        out = super().permute_classes(values, perms)
        perm = perms["D"]
        if np.array_equal(perm, np.arange(perm.size)):
            return out
        out = self.between_logits.permute(out, perm)
        ref = perm[-1]
        if "gamma_cd" in out:
            g = out["gamma_cd"]
            full = np.concatenate([g, np.zeros_like(g[..., :1])], axis=-1)  # (..., K-1, M)
            shift = full[..., ref]
            out["alpha"] = out["alpha"] + shift
            out["gamma_cd"] = (full[..., perm] - shift[..., None])[..., :-1]
        if "mu_between" in out:
            kap = out["mu_between"]
            full = np.concatenate([kap, np.zeros_like(kap[..., :1, :])], axis=-2)  # (..., M, Dc)
            shift = full[..., ref, :]
            out["mu_between"] = (full[..., perm, :] - shift[..., None, :])[..., :-1, :]
            out = self._absorb_mean_shift(out, shift)
        if self.spec.class_specific_variance:  # V_d follows its D class
            for name in ("v_log_sd", "v_offdiag"):
                if name in out:
                    out[name] = np.take(out[name], perm, axis=-2)
        return out

    def _absorb_mean_shift(self, values, shift):
        """Add ``shift`` (..., Dc) to the means of the random coefficients, which
        live in the class-specific intercepts and slopes of the outcomes."""
        out = dict(values)
        pn, cov = self.cont_idx.size, list(self.spec.covariates)
        for r, (p, term) in enumerate(self.re_terms):
            s = shift[..., r][..., None]  # broadcast over classes
            if term != "intercept":
                beta = out["beta"].copy()
                beta[..., :, p, cov.index(term)] += s
                out["beta"] = beta
            elif p < pn:
                mu = out["mu"].copy()
                mu[..., :, p] += s
                out["mu"] = mu
            else:  # categorical outcome: P(y = k) = F(tau_k - eta), so tau moves by -shift
                name = self.thresholds.name
                tau = out[name].copy()
                cols = self.thresholds.thr_item == p - pn
                if name == "tau_raw":
                    cols &= self.thresholds.thr_k == 0
                tau[..., :, cols] -= s
                out[name] = tau
        return out

    # ------------------------------------------------------------------ simulation
    def _draw_between(self, nat, n_cl, rng):
        logits = self.between_logits.draw_logits(nat, self.shared["wb"].get_value(), n_cl)
        return draw_classes(logits, rng)

    def _within_logit_shift(self, nat, dcl):
        if "gamma_cd" not in nat:
            return None
        gam = np.concatenate([nat["gamma_cd"], np.zeros((self.spec.n_classes - 1, 1))], axis=1)
        return gam[:, dcl].T

    def _between_mean(self, nat, dcl):
        if "mu_between" not in nat:
            return None
        return np.concatenate([nat["mu_between"], np.zeros((1, len(self.re_terms)))])[dcl]


def example(two_level: bool = True) -> WithinBetweenModel | None:
    """A tiny section 6 model (2 x 2 classes, 8 clusters of 6); two-level only."""
    return within_between(example_data(), "score", ["x"], 2, 2, cluster="cluster") if two_level else None
