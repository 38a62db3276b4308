"""The family contract: everything fit/, compare, summary, derived, plots and
simstudy may ask of a model family, declared here with its meaning.

A family builds a plain ``pm.Model`` whose free random variables are all
*unconstrained* (real line, no PyMC transform): thresholds, class logits,
log-variances, Cholesky factors with log diagonal. The likelihood is one
``pm.CustomDist``-like ``LoglikRV`` named ``loglik`` observed on the integration
unit (cluster for two-level models, person otherwise), whose elementwise log density is the
engine's per-unit log-likelihood (``FamilyModel.observe`` is the only place that
builds it). Hence

* ML maximises ``model.logp(vars=[loglik])`` over the free values directly: no
  priors, no Jacobians, same graph as the posterior (DESIGN.md section 3);
* NUTS samples the same graph plus the priors;
* the pointwise log-likelihood is available to ArviZ for unit-wise LOO.

What a family declares (see ARCHITECTURE.md, "Adding a family"):

* ``free``: a list of ``ParameterInfo`` (dims, default prior, title, ML bounds
  and what a bound means);
* ``reported``: a list of ``Reported`` (the parameter table: a free parameter or
  a ``pm.Deterministic``, with its printed title and whether it is a variance);
* ``class_variables``: one ``ClassVariable`` per latent class variable (name,
  dim, number of classes, the dims its membership is indexed by, the
  deterministic with its model-implied shares, its relabelling group);
* the hooks below marked "family": ``start_point``, ``membership_graphs``,
  ``class_signature``, ``permute_classes``, ``simulate``; optional ones have
  defaults here.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from pymc.distributions.custom import CustomDistRV
from pymc.distributions.distribution import Distribution, _call_rv_op, _support_point
from pymc.logprob.abstract import _logprob

from bayesmix import dims
from bayesmix.exceptions import SpecificationError
from bayesmix.checks import check_int  # noqa: F401  (the families call base.check_int)

OBSERVED = "loglik"


# --------------------------------------------------------------------------- the likelihood RV
# ``pm.CustomDist(..., logp=f)`` creates a new ``CustomDistRV`` subclass per call (two per
# model: ``Distribution.dist`` calls ``rv_op`` once more to find ``ndim_supp``) and registers
# ``f`` for it in PyMC's global ``_logprob`` / ``_logcdf`` / ``_support_point`` dispatch
# tables. Those are never emptied and ``f`` closes over the family object, so every model
# built stayed alive (+3.9 MiB per LCA build and fit; benchmarks/bench_memory.py). Here one
# Op class is registered once, at import, and each model's logp is an Op *prop* (so
# PyTensor's ``type(op)(**props)`` clones keep it, and two models' ops never compare
# equal). The prop is a weak handle: PyTensor's rewriters cache every Op instance they see
# (``OpToRewriterTracker.get_trackers``, an unbounded ``functools.cache``), so the Op may
# outlive its model, but only as a few hundred bytes; the function itself is kept alive by
# the ``pm.Model`` (``model._bayesmix_unit_logp``) and goes with it.
class _LogpHandle:
    """Weak reference to one model's logp (or simulate) function; equal only to itself."""

    __slots__ = ("_ref", "__weakref__")

    def __init__(self, fn):
        self._ref = weakref.ref(fn)

    def __call__(self, *args):
        fn = self._ref()
        if fn is None:
            raise RuntimeError("loglik: the pm.Model of this likelihood was deleted; keep the model object "
                               "while its graph is used.")
        return fn(*args)

    def __repr__(self):
        return "<logp of one bayesmix model>"


class LoglikRV(CustomDistRV):
    """The ``loglik`` Op: elementwise logp ``unit_logp(value, *params)``. Its value is
    the unit index (the data enter the likelihood as constants), so its forward draw
    is that index again; the replicated *data* are drawn by the ``y`` node
    (``ResponsesRV``), whose random method is the family's ``simulate``."""

    __props__ = ("name", "signature", "dtype", "inplace", "unit_logp")
    name = "CustomDist_loglik"
    _print_name = ("CustomDist_loglik", "\\operatorname{CustomDist\\_loglik}")

    def __init__(self, *, unit_logp, signature, name=None, dtype="floatX", inplace=False):
        super().__init__(name=name, signature=signature, dtype=dtype, inplace=inplace)
        self.unit_logp = unit_logp

    def rng_fn(self, rng, *args):
        # args: the likelihood's inputs, then size; the draw is the unit index (the value)
        size = args[-1]
        n = int(np.prod(size)) if size is not None else 1
        return np.arange(n, dtype=self.dtype if self.dtype != "floatX" else "float64").reshape(size or ())


class ResponsesRV(CustomDistRV):
    """The ``y`` Op: the analysed responses (person, observed_item), missing cells NaN.

    Its logp is 0: the data's log-likelihood is ``loglik``'s, once (ML, NUTS and LOO
    use ``loglik`` only). It exists so that PyMC's own forward sampling works on the
    plain model: its inputs are the free parameters (raw values, ``free_names``
    order) and its random method is the family's ``simulate`` at the natural values
    those imply (``pm.sample_prior_predictive`` / ``pm.sample_posterior_predictive``
    / ``pm.draw``); ``pm.model_to_graphviz`` shows the data node."""

    __props__ = ("name", "signature", "dtype", "inplace", "simulate", "supp_shape")
    name = "Responses_y"
    _print_name = ("Responses_y", "\\operatorname{Responses\\_y}")

    def __init__(self, *, simulate, signature, supp_shape, name=None, dtype="floatX", inplace=False):
        super().__init__(name=name, signature=signature, dtype=dtype, inplace=inplace)
        self.simulate = simulate
        self.supp_shape = tuple(int(n) for n in supp_shape)

    def _supp_shape_from_params(self, dist_params, param_shapes=None):
        return self.supp_shape

    def rng_fn(self, rng, *args):
        return self.simulate(rng, *args[:-1])


@_logprob.register(ResponsesRV)
def _responses_logprob(op, values, rng, size, *params, **kwargs):
    return pt.zeros_like(values[0])


@_support_point.register(ResponsesRV)
def _responses_support_point(op, rv, rng, size, *params):
    return pt.zeros_like(rv)


class _Responses(Distribution):
    rv_type = ResponsesRV

    @classmethod
    def dist(cls, *params, simulate, signature, supp_shape, **kwargs):
        return super().dist([pt.as_tensor(p) for p in params], simulate=simulate, signature=signature,
                            supp_shape=supp_shape, **kwargs)

    @classmethod
    def rv_op(cls, *params, simulate, signature, supp_shape, size=None, rng=None):
        op = ResponsesRV(simulate=simulate, signature=signature, supp_shape=supp_shape)
        return _call_rv_op(op, *params, size=size, rng=rng)[1]


@_logprob.register(LoglikRV)
def _loglik_logprob(op, values, rng, size, *params, **kwargs):
    return op.unit_logp(values[0], *params)


@_support_point.register(LoglikRV)
def _loglik_support_point(op, rv, rng, size, *params):
    return pt.zeros_like(rv)  # observed only: never used as a starting value


class _Loglik(Distribution):
    """``_Loglik(name, *params, unit_logp=f, signature=..., observed=..., dims=...)``:
    a ``pm.CustomDist(name, *params, logp=f, ...)`` whose Op is a ``LoglikRV`` instance."""

    rv_type = LoglikRV

    @classmethod
    def dist(cls, *params, unit_logp, signature, **kwargs):
        return super().dist([pt.as_tensor(p) for p in params], unit_logp=unit_logp, signature=signature, **kwargs)

    @classmethod
    def rv_op(cls, *params, unit_logp, signature, size=None, rng=None):
        op = LoglikRV(unit_logp=unit_logp, signature=signature)
        return _call_rv_op(op, *params, size=size, rng=rng)[1]


@dataclass(frozen=True)
class ParameterInfo:
    """A free parameter (real line) of a family.

    ``bounds`` is the box ML keeps the parameter in: (low, high), scalars or
    arrays broadcastable to the parameter's shape; ``at_bound`` says what an
    estimate at a bound means (printed by ``fit_ml`` with the fixed labels).
    The prior is used by NUTS only.
    """

    name: str
    dims: tuple[str, ...]
    prior: object  # a pm.Distribution.dist(...) object
    title: str = ""
    bounds: tuple = (-np.inf, np.inf)
    at_bound: str = ""


@dataclass(frozen=True)
class Reported:
    """A quantity of the parameter table (a free parameter or a Deterministic).

    ``variance``: a (co)variance of random effects; adding one to a model tests
    at the boundary of the parameter space (``lr_test``), and a square one is
    printed once (lower triangle, Mplus' "A WITH B")."""

    name: str
    title: str
    variance: bool = False


@dataclass(frozen=True)
class ClassVariable:
    """A latent class variable of the model.

    name : "C", "D", "C1".."CT" (paper symbols)
    dim : the model dim of its classes (``dims.CLASS``, ``dims.CLASS_BETWEEN``, ...)
    membership_dims : what one draw of it belongs to: (person,), (cluster,),
        (person, time) or (person, item)
    share : the Deterministic with the model-implied class proportions (dims (dim,))
    group : relabelling group; the variables of one group are permuted together
        (LTA under measurement invariance); default: the variable's own name
    logit_variance, logit_intercept : reported names of the covariance of the
        random intercepts in its class logits (eq. 20's Var(alpha_cj)) and of the
        fixed intercepts, when it has them (ICC, conditional class curves)
    """

    name: str
    dim: str
    n_classes: int
    membership_dims: tuple[str, ...]
    share: str
    group: str = ""
    label: str = ""
    logit_variance: str | None = None
    logit_intercept: str | None = None
    #: False when the labels are fixed by the model's structure (the 3PL's guessing class,
    #: eq. 45): nothing relabels it (fit.relabel.groups leaves it out)
    exchangeable: bool = True

    @property
    def relabel_group(self) -> str:
        return self.group or self.name

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FamilyModel:
    """Base class of the objects returned by the family factories.

    Attributes
    ----------
    model : pm.Model
        The plain PyMC model (inspect with ``pm.model_to_graphviz(obj.model)``).
    data : bayesmix.data.PreparedData
    spec : the family's frozen specification dataclass.
    free, reported : declarations (``ParameterInfo``, ``Reported``).
    cache : compiled functions and sampler models made by fit/ for this model
        (cleared by ``set_data`` where the data are compiled in).
    """

    model: pm.Model
    data: object
    spec: object
    free: list[ParameterInfo] = field(default_factory=list)
    reported: list[Reported] = field(default_factory=list)
    family: str = ""
    cache: dict = field(default_factory=dict, repr=False)
    #: how the object was made (``families.calls.FactoryCall``, recorded by the registry
    #: factories): pickling, ``bayesmix.load`` and ``predict_classes`` replay it
    call: object = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        """Pickle as the recorded factory call and the spec: unpickling rebuilds a
        fresh model on the same data (compiled functions and sampler models in
        ``cache`` are not kept; they are compiled again when used)."""
        from bayesmix.families import calls

        if self.call is None:
            raise calls.no_call_error(self, "pickle")
        return calls.unpickle_family, (self.call, self.spec)

    #: what the analysed variables are called in printed output
    item_noun = "items"

    # ---- family hooks (every family writes these) --------------------------------
    @property
    def class_variables(self) -> tuple[ClassVariable, ...]:
        """The model's latent class variables, the primary one (C) first."""
        raise NotImplementedError

    def start_point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A random starting set of raw free values (Mplus-style random starts)."""
        raise NotImplementedError

    def membership_graphs(self, tensors: dict) -> dict[str, object]:
        """Posterior class probabilities given each unit's data, per class
        variable: name -> tensor (*membership_dims, K), in terms of
        ``self.likelihood_tensors``."""
        raise NotImplementedError

    def class_signature(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per relabelling group: (..., K, F) features characterising each class,
        from natural-scale values (leading sample axes allowed); used to match
        labels (NUTS draws to the ML solution)."""
        raise NotImplementedError

    def permute_classes(self, values: dict[str, np.ndarray], perms) -> dict[str, np.ndarray]:
        """Relabel raw free values (leading sample axes allowed): ``perms`` maps a
        relabelling group to a permutation (new class c is old class perm[c]); a
        bare array is the permutation of the first group."""
        raise NotImplementedError

    def simulate(self, natural: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Replicate the analysed responses at natural parameters: (y (N, P) in
        the data's column order, class (N,) 0-based of the primary variable)."""
        raise NotImplementedError

    # ---- optional hooks ----------------------------------------------------------
    @property
    def integration_dim(self) -> int:
        """Dimensions integrated numerically per unit (0: the likelihood is exact)."""
        return 0

    @property
    def class_level(self) -> str:
        """Level of the primary class variable (paper Table 4): "within",
        "between", "within-between" or "within+between" (section 6)."""
        return "within"

    def describe_integration(self) -> str | None:
        """One line on how random effects are integrated (None: nothing to say)."""
        dim = self.integration_dim
        return self.spec.integration.describe(dim) if dim else None

    def analysis_lines(self) -> list[tuple[str, object]]:
        """(label, value) rows of the summary's SUMMARY OF ANALYSIS."""
        d = self.data
        rows = [("Number of observations", d.n_persons)]
        if d.cluster_idx is not None:
            rows.append(("Number of clusters", d.n_clusters))
        rows.append((f"Number of {self.item_noun}", len(d.items)))
        if d.n_dropped:
            rows.append(("Rows excluded (see data.dropped)", d.n_dropped))
        link = getattr(self.spec, "link", None)
        if link is not None:
            rows.append(("Link (categorical items)", link))
        return rows

    def summary_sections(self, res) -> tuple[list[str], set[str]]:
        """Family-specific sections of the ML summary (text lines, printed after
        MODEL RESULTS) and the reported names they print, which MODEL RESULTS
        then leaves out (e.g. the LTA's transition tables)."""
        return [], set()

    def profile_table(self, natural: dict) -> pd.DataFrame:
        """Tidy item, category, class, probability table of the class profiles
        (empty when the family has no categorical response probabilities)."""
        return pd.DataFrame(columns=["item", "category", "class", "probability"])

    @property
    def n_obs(self) -> int:
        """The n of BIC: persons."""
        return int(self.data.n_persons)

    @property
    def can_set_data(self) -> bool:
        """Whether ``set_data`` can swap in new data of the same structure."""
        return False

    def set_data(self, data) -> None:
        raise SpecificationError(f"set_data: the {self.family} family cannot swap data; build a new model.")

    # ---- derived from the declarations ------------------------------------------
    @property
    def n_classes(self) -> int:
        """Classes of the primary class variable."""
        return self.class_variables[0].n_classes

    @property
    def reported_names(self) -> list[str]:
        return [r.name for r in self.reported]

    @property
    def free_names(self) -> list[str]:
        return [p.name for p in self.free]

    def reported_info(self, name: str) -> Reported | None:
        return next((r for r in self.reported if r.name == name), None)

    def free_info(self, name: str) -> ParameterInfo:
        return next(p for p in self.free if p.name == name)

    def class_variable(self, name: str | None = None) -> ClassVariable:
        cvs = self.class_variables
        if name is None:
            return cvs[0]
        for cv in cvs:
            if cv.name == name:
                return cv
        raise SpecificationError(f"class variable: got {name!r}; this model has {[c.name for c in cvs]}.")

    def _perm_dict(self, perms) -> dict[str, np.ndarray]:
        """``perms`` as a dict group -> permutation (identity for groups not given)."""
        groups = list(dict.fromkeys(cv.relabel_group for cv in self.class_variables))
        if not isinstance(perms, Mapping):
            perms = {groups[0]: perms}
        sizes = {cv.relabel_group: cv.n_classes for cv in self.class_variables}
        bad = [g for g in perms if g not in sizes]
        if bad:
            raise SpecificationError(f"perms: got group(s) {bad}; valid groups are {groups}.")
        return {g: np.asarray(perms.get(g, np.arange(sizes[g]))) for g in groups}

    def bounds(self, packing) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds (low, high) on the flat raw vector used by ML, from the
        ``ParameterInfo.bounds`` of each free parameter."""
        low, high = [], []
        for info, shape in zip(self.free, packing.shapes):
            lo, hi = info.bounds
            low.append(np.broadcast_to(np.asarray(lo, float), shape).reshape(-1))
            high.append(np.broadcast_to(np.asarray(hi, float), shape).reshape(-1))
        if not low:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(low), np.concatenate(high)

    def labels(self, names: list[str]) -> pd.DataFrame:
        """One row per element of each named variable: ArviZ-style label (e.g.
        ``tau[1, y1$1]``), parameter, the class of the primary class variable (if
        the variable has that dim) and the other coordinates joined."""
        class_dim = self.class_variables[0].dim
        rows = []
        for name in names:
            var_dims = self.model.named_vars_to_dims.get(name, ())
            coords = [list(self.model.coords[d]) for d in var_dims]
            for idx in np.ndindex(*[len(c) for c in coords]) if coords else [()]:
                lab = {d: coords[i][j] for i, (d, j) in enumerate(zip(var_dims, idx))}
                label = f"{name}[{', '.join(str(v) for v in lab.values())}]" if lab else name
                cls = lab.pop(class_dim, None)
                rows.append({"label": label, "parameter": name, "class": cls,
                             "term": ", ".join(str(v) for v in lab.values()) if lab else ""})
        return pd.DataFrame(rows, columns=["label", "parameter", "class", "term"])

    def coord_index(self, dim: str) -> pd.Index:
        """Index of a membership dim: the data's row index for persons, the
        cluster labels for clusters, the model's coords otherwise."""
        if dim == dims.PERSON:
            return self.data.row_index
        if dim == dims.CLUSTER:
            return pd.Index(list(self.data.cluster_labels), name=self.data.cluster_name)
        return pd.Index(list(self.model.coords[dim]), name=dim)

    def with_spec(self, **changes) -> "FamilyModel":
        """The same family on the same prepared data with some spec fields changed
        (e.g. ``integration=...``); default priors."""
        spec = dataclasses.replace(self.spec, **changes)
        if hasattr(spec, "prior_names"):
            spec = dataclasses.replace(spec, prior_names=())
        new = self._rebuild(spec)
        new.call = self.call  # replayed, then rebuilt with this spec (families.calls)
        return new

    def _rebuild(self, spec) -> "FamilyModel":
        """A new model object of this family for ``spec`` on ``self.data``."""
        return type(self).build(self.data, spec, None)

    # ---- shared machinery ----------------------------------------------------------
    def register(self, priors: dict | None):
        """Register the declared free parameters (``self.free``) with their default
        or user priors, then build the family's graph (``_build_graph``)."""
        check_priors(priors, self.free_names)
        with self.model:
            params = {p.name: add_free(self.model, p, priors) for p in self.free}
            self._build_graph(params)

    def observe(self, tensors: dict, unit_loglik) -> None:
        """Add the likelihood: one ``pm.CustomDist`` named ``loglik`` on the unit
        dim, whose elementwise logp is ``unit_loglik(tensors)`` (n_units,).

        ``tensors`` (name -> tensor) are the likelihood's inputs; they are kept as
        ``self.likelihood_tensors`` for the membership graphs. Call inside the
        model context."""
        names = [n for n, v in tensors.items() if v is not None]
        self.likelihood_tensors = {n: tensors[n] for n in names}
        inputs = [pt.as_tensor(tensors[n]) for n in names]

        def logp(value, *params):
            # CustomDist adds a leading batch axis of length 1 to each parameter
            return unit_loglik({n: t[0] for n, t in zip(names, params)})

        signature = ",".join("(" + ",".join(f"d{i}_{j}" for j in range(t.ndim)) + ")"
                             for i, t in enumerate(inputs)) + "->()"
        n_units = len(self.model.coords[self.unit_dim])
        # not pm.CustomDist: see LoglikRV (nothing global keeps the model alive)
        self.model._bayesmix_unit_logp = logp
        _Loglik(OBSERVED, *inputs, unit_logp=_LogpHandle(logp), observed=np.arange(n_units), signature=signature,
                dims=self.unit_dim)
        self._observe_responses()

    def _observe_responses(self) -> None:
        """The ``y`` node (``ResponsesRV``): the data, drawn forward by ``simulate``."""
        d = self.data
        free = [self.model[n] for n in self.free_names]
        shapes = [tuple(len(self.model.coords[dim]) for dim in p.dims) for p in self.free]
        y_obs = np.where(d.observed, d.y, np.nan)

        def draw(rng, *values):
            from bayesmix.fit.compiled import compiled  # fit/ imports families/, not the reverse at import

            theta = np.concatenate([np.asarray(v, "float64").reshape(-1) for v in values]) if values else np.zeros(0)
            return self.simulate(compiled(self).reported(theta), rng)[0]

        self.model._bayesmix_simulate = draw
        if dims.OBSERVED_ITEM not in self.model.coords:
            self.model.add_coord(dims.OBSERVED_ITEM, [str(it.name) for it in d.items])
        signature = ",".join("(" + ",".join(f"s{i}_{j}" for j in range(len(s))) + ")"
                             for i, s in enumerate(shapes)) + "->(n,p)"
        # a constant, not an array: PyMC would read the NaNs of missing cells as values to impute
        _Responses("y", *free, simulate=_LogpHandle(draw), signature=signature, supp_shape=y_obs.shape,
                   observed=pt.constant(y_obs),
                   dims=(dims.PERSON, dims.OBSERVED_ITEM))

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
