"""What every model family provides, and the machinery they share.

A family builds a plain ``pm.Model`` whose free random variables are all
*unconstrained* (real line, no PyMC transform): thresholds, class logits,
log-variances, Cholesky factors with log diagonal. The likelihood is one
``pm.CustomDist`` named ``loglik`` observed on the cluster (two-level) or person
(single-level) index, whose elementwise log density is the engine's per-cluster
log-likelihood. Hence

* ML maximises ``model.logp(vars=[loglik])`` over the free values directly: no
  priors, no Jacobians, same graph as the posterior (DESIGN.md section 3);
* NUTS samples the same graph plus the priors;
* the pointwise log-likelihood is available to ArviZ for cluster-wise LOO.

Reported quantities (thresholds, variances, covariance matrices) are
``pm.Deterministic`` nodes; their ML standard errors come by the delta method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import dims
from bayesmix.exceptions import SpecificationError

OBSERVED = "loglik"


@dataclass
class ParameterInfo:
    """A free parameter, its default prior and how to start it."""

    name: str
    dims: tuple[str, ...]
    prior: object  # a pm.Distribution.dist(...) object
    doc: str = ""


@dataclass
class FamilyModel:
    """Base class of the objects returned by the family factories.

    Attributes
    ----------
    model : pm.Model
        The plain PyMC model (inspect with ``pm.model_to_graphviz(obj.model)``).
    data : bayesmix.data.PreparedData
    spec : the family's frozen specification dataclass.
    """

    model: pm.Model
    data: object
    spec: object
    free: list[ParameterInfo] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    family: str = ""

    # ---- things families override -------------------------------------------------
    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def permute_classes(self, values: dict[str, np.ndarray], perm: np.ndarray) -> dict[str, np.ndarray]:
        """Relabel classes in raw free values (leading sample axes allowed)."""
        raise NotImplementedError

    def class_signature(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """(..., K, F) features that characterise each class, to match labels."""
        raise NotImplementedError

    def bounds(self, packing) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds (low, high) on the flat raw vector used by ML; none by default."""
        return np.full(packing.size, -np.inf), np.full(packing.size, np.inf)

    @property
    def n_classes(self) -> int:
        return self.spec.n_classes

    @property
    def class_level(self) -> str:
        """Level of the latent class (paper Table 4): "within" (one class per
        person; the default) or "between" (one class per cluster, eq. 16). A
        family with a between-level class also provides
        ``cluster_membership_graph(q)``, the (J, K) posterior class probabilities
        of the clusters, in terms of ``likelihood_tensors``."""
        return "within"

    @property
    def integration_dim(self) -> int:
        """Dimensions integrated numerically per cluster (0: none)."""
        return 0

    def _build_extra(self) -> dict:
        """Keyword arguments of ``build`` beyond (data, spec, priors)."""
        return {}

    def with_spec(self, **changes) -> "FamilyModel":
        """The same family on the same prepared data with some spec fields changed
        (e.g. ``integration=...``); default priors."""
        import dataclasses

        spec = dataclasses.replace(self.spec, **changes)
        if hasattr(spec, "prior_names"):
            spec = dataclasses.replace(spec, prior_names=())
        new = type(self).build(self.data, spec, None, **self._build_extra())
        if hasattr(self, "_prepare_args"):  # what set_data needs to re-prepare data
            new._prepare_args = self._prepare_args
        return new

    # ---- shared ------------------------------------------------------------------
    def register(self, priors: dict | None):
        """Register the declared free parameters (``self.free``) with their default
        or user priors, then build the family's graph (``_build_graph``)."""
        check_priors(priors, self.free_names)
        with self.model:
            params = {p.name: add_free(self.model, p, priors) for p in self.free}
            self._build_graph(params)

    @property
    def free_names(self) -> list[str]:
        return [p.name for p in self.free]

    @property
    def unit_dim(self) -> str:
        """The dim of the pointwise log-likelihood: cluster (two-level) or person."""
        return dims.CLUSTER if self.is_two_level else dims.PERSON

    @property
    def is_two_level(self) -> bool:
        return self.data.cluster_idx is not None

    def loglik_graph(self):
        """Per-unit log-likelihood (J,) in terms of the model's value variables."""
        rv = self.model[OBSERVED]
        return self.model.logp(vars=[rv], sum=False)[0]

    def value_vars(self) -> list:
        return [self.model.rvs_to_values[self.model[name]] for name in self.free_names]


def add_free(model: pm.Model, info: ParameterInfo, priors: dict | None):
    """Register a free parameter with its default or user-given prior.

    A user prior must live on the real line (no automatic transform), because ML
    and the posterior share one unconstrained parameter space.
    """
    from pymc.distributions.shape_utils import change_dist_size
    from pymc.distributions.transforms import _default_transform

    dist = (priors or {}).get(info.name, info.prior)
    op = getattr(getattr(dist, "owner", None), "op", None)
    if not isinstance(op, pt.random.op.RandomVariable):
        raise SpecificationError(
            f"priors[{info.name!r}]: got {type(dist).__name__}; give an unregistered PyMC "
            "distribution such as pm.Normal.dist(0, 2.5) (the parameter lives on the real line)."
        )
    if _default_transform(op, dist) is not None:
        raise SpecificationError(
            f"priors[{info.name!r}]: got {op.name} with a bounded support; this parameter is "
            "unconstrained (e.g. a log-variance or a threshold): use a real-line distribution "
            "such as pm.Normal.dist or pm.StudentT.dist."
        )
    shape = tuple(len(model.coords[d]) for d in info.dims)
    if tuple(dist.type.shape) != shape:
        dist = change_dist_size(dist, shape, expand=False)
    return model.register_rv(dist, info.name, dims=info.dims or None, default_transform=None)


def check_priors(priors: dict | None, valid: list[str]):
    if priors is None:
        return {}
    if not isinstance(priors, dict):
        raise SpecificationError(f"priors: got {type(priors).__name__}; give a dict parameter name -> pm.X.dist(...).")
    bad = [k for k in priors if k not in valid]
    if bad:
        raise SpecificationError(
            f"priors: unknown parameter(s) {bad}; valid names for this model are {valid}."
        )
    return priors
