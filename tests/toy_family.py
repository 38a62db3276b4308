"""A test-only family written from ARCHITECTURE.md, "Adding a family", alone:
a K-class univariate mixture of normals with covariates on the class,

    P(C_i = c | x_i) = softmax_c(alpha_c + beta_c' x_i)   (class K the reference),
    y_i | C_i = c ~ N(mu_c, sigma_c^2),  sigma_c = exp(log_sigma_c).

Single level; the person is the unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.core.marginal import mixture_logsumexp
from bayesmix.data import prepare_wide
from bayesmix.exceptions import SpecificationError
from bayesmix.families import blocks
from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported

FAMILY = "normal_mixture"
SIGMA_AT_BOUND = ("A class log standard deviation at its bound: a class collapsing on (nearly) one value, "
                  "or a class spread over the whole outcome range.")


# ------------------------------------------------------------------ spec and factory
@dataclass(frozen=True)
class NormalMixtureSpec:
    outcome: str
    covariates: tuple = ()
    n_classes: int = 2
    prior_names: tuple = ()


def normal_mixture(data, outcome, covariates=None, n_classes=2, *, priors=None) -> "NormalMixtureModel":
    """A K-class mixture of normals for one continuous ``outcome``, with class
    logits on ``covariates`` (reference class K)."""
    if not isinstance(outcome, str):
        raise SpecificationError(
            f"outcome: got {outcome!r} ({type(outcome).__name__}); give one column name (a str), "
            "e.g. outcome='y'.")
    if covariates is None:
        covariates = ()
    elif isinstance(covariates, str):
        covariates = (covariates,)
    elif isinstance(covariates, (list, tuple)):
        covariates = tuple(covariates)
    else:
        raise SpecificationError(
            f"covariates: got a {type(covariates).__name__}; give None, a column name or a list of "
            "column names.")
    n_classes = blocks.check_n_classes(n_classes)
    prepared = prepare_wide(data, [outcome], item_types="continuous", covariates=list(covariates) or None)
    spec = NormalMixtureSpec(outcome=outcome, covariates=tuple(covariates), n_classes=n_classes,
                             prior_names=tuple(sorted(priors)) if isinstance(priors, dict) else ())
    return NormalMixtureModel.build(prepared, spec, priors)


# ------------------------------------------------------------------ model
class NormalMixtureModel(FamilyModel):
    item_noun = "outcomes"

    @classmethod
    def build(cls, data, spec, priors):
        self = cls(model=pm.Model(), data=data, spec=spec, family=FAMILY)
        k = spec.n_classes
        y = np.asarray(data.y[:, 0], dtype="float64")
        self.y = y
        self.x = np.asarray(data.covariates, dtype="float64")
        self.y_mean, self.y_sd = float(y.mean()), float(y.std())
        self.logits_block = blocks.ClassLogits(k, data.n_covariates)
        self.model.add_coord(dims.PERSON, list(data.row_index))
        self.model.add_coord(dims.CLASS, list(range(1, k + 1)))
        if data.n_covariates:
            self.model.add_coord(dims.COVARIATE, list(data.covariate_names))
        for name, values in self.logits_block.coords().items():
            self.model.add_coord(name, values)
        self.free = [
            ParameterInfo("mu", (dims.CLASS,), pm.Normal.dist(self.y_mean, 3 * self.y_sd), "class means"),
            ParameterInfo("log_sigma", (dims.CLASS,), pm.Normal.dist(np.log(self.y_sd), 2.0),
                          "class log standard deviations", bounds=blocks.LOG_SD_BOUNDS, at_bound=SIGMA_AT_BOUND),
            *self.logits_block.fixed_parameters(),
        ]
        self.register(priors)
        return self

    # ---- graph
    def _log_prior(self, q):
        logits = self.logits_block.logits(q, self.x)
        if logits is None:
            return pt.zeros((len(self.y), 1))
        return self.logits_block.log_prior(pt.broadcast_to(logits, (len(self.y), self.spec.n_classes - 1)))

    def _log_f(self, q):
        """(N, K) log N(y_i | mu_c, sigma_c^2)."""
        sigma = pt.exp(q["log_sigma"])
        z = (self.y[:, None] - q["mu"][None, :]) / sigma[None, :]
        return -0.5 * z**2 - pt.log(sigma)[None, :] - 0.5 * np.log(2 * np.pi)

    def _unit_loglik(self, q):
        return mixture_logsumexp(self._log_prior(q), self._log_f(q))

    def _build_graph(self, params):
        pm.Deterministic("sigma", pt.exp(params["log_sigma"]), dims=(dims.CLASS,))
        tensors = {"mu": params["mu"], "log_sigma": params["log_sigma"],
                   "alpha": params.get("alpha"), "beta": params.get("beta")}
        self.observe(tensors, self._unit_loglik)
        logits = self.logits_block.logits(params, self.x)
        if logits is not None:
            logits = pt.broadcast_to(logits, (len(self.y), self.spec.n_classes - 1))
        pm.Deterministic("class_share", self.logits_block.share(logits), dims=(dims.CLASS,))
        self.reported = [Reported("mu", "Means (class-specific)"),
                         Reported("sigma", "Standard deviations (class-specific)"),
                         *self.logits_block.reported_fixed(),
                         Reported("class_share", "Class proportions (model-implied)")]

    # ---- declarations and hooks
    @property
    def class_variables(self):
        return (ClassVariable("C", dims.CLASS, self.spec.n_classes, (dims.PERSON,), "class_share"),)

    def start_point(self, rng):
        k = self.spec.n_classes
        out = {"mu": self.y_mean + rng.uniform(-blocks.MEAN_START_WIDTH, blocks.MEAN_START_WIDTH, k) * self.y_sd,
               "log_sigma": np.log(self.y_sd) + rng.uniform(-0.5, 0.5, k)}
        out.update(self.logits_block.start_fixed(rng))
        return out

    def membership_graphs(self, q):
        joint = self._log_prior(q) + self._log_f(q)
        return {"C": pt.exp(joint - pt.logsumexp(joint, axis=-1, keepdims=True))}

    def class_signature(self, values):
        mu = (np.asarray(values["mu"]) - self.y_mean) / self.y_sd
        log_sd = np.log(np.asarray(values["sigma"])) - np.log(self.y_sd)
        return {"C": np.stack([mu, log_sd], axis=-1)}

    def permute_classes(self, values, perms):
        perm = self._perm_dict(perms)["C"]
        out = dict(values)
        for name in ("mu", "log_sigma"):
            if name in values:
                out[name] = np.take(values[name], perm, axis=-1)
        return self.logits_block.permute(out, perm)

    def simulate(self, natural, rng):
        n, k = len(self.y), self.spec.n_classes
        if k > 1:
            logits = self.logits_block.draw_logits(natural, self.x, n)
            cls = blocks.draw_classes(logits, rng)
        else:
            cls = np.zeros(n, dtype=int)
        mu, sigma = np.asarray(natural["mu"]), np.asarray(natural["sigma"])
        y = mu[cls] + sigma[cls] * rng.standard_normal(n)
        return y[:, None], cls


# ------------------------------------------------------------------ example
def example(two_level: bool = False):
    """60 persons, one covariate x, two classes (None for two_level)."""
    if two_level:
        return None
    rng = np.random.default_rng(11)
    n = 60
    x = rng.normal(size=n)
    p1 = 1 / (1 + np.exp(-(0.3 + 1.2 * x)))
    cls = (rng.random(n) >= p1).astype(int)  # 0 = class 1, 1 = class 2 (reference)
    y = np.where(cls == 0, -1.5, 1.5) + np.where(cls == 0, 0.6, 1.0) * rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x})
    return normal_mixture(df, "y", covariates=["x"], n_classes=2)
