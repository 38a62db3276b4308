"""Compiled likelihood functions shared by ML fitting, SEs and MCMC post-processing.

All functions take the free parameters as one flat vector ``theta`` (the model's
free variables, in ``FamilyModel.free`` order, raveled in C order). They are
compiled once per model object and cached on it, so random starts, standard
errors and log-likelihood evaluation over posterior draws reuse one compilation
(PYMC_NOTES: compilation dominates small fits).

Second-order quantities (Hessian, per-cluster scores, Jacobian of the reported
quantities) are central differences of exact first-order functions; see
``Compiled.second_order``. No J x P Jacobian graph is ever built (J can be
7000+ persons).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import graph_inputs
from pytensor.graph.basic import Constant
from pytensor.graph.replace import clone_replace, graph_replace
from threadpoolctl import threadpool_limits

from bayesmix import dims
from bayesmix.exceptions import SpecificationError


# -- backend --------------------------------------------------------------------
# ARCHITECTURE.md decision 10 and benchmarks/README.md ("backends") give the
# measurements behind the default: JAX compiles a model's functions in seconds
# where PyTensor's C and Numba backends need one to three minutes with an empty
# cache, and evaluates them about as fast once compiled.
BACKENDS = ("jax", "c", "numba")
DEFAULT_BACKEND = "jax"
ENV_VAR = "BAYESMIX_BACKEND"
_state: dict = {"backend": None, "messages": True, "announced": set(), "forked_after_jax": False}


def _after_fork_in_child():
    # JAX's runtime threads do not survive fork(): a JAX function called in a
    # forked child (simstudy's workers) deadlocks. A child of a process that has
    # imported JAX therefore compiles with the C backend. Workers compile quietly:
    # their half-lines would interleave (the parent's progress bar reports them).
    _state["messages"] = False
    if "jax" in sys.modules:
        _state["forked_after_jax"] = True
        if _state["backend"] == "jax":
            _state["backend"] = "c"


os.register_at_fork(after_in_child=_after_fork_in_child)


def _note(text: str, end: str = "\n") -> None:
    if _state["messages"]:
        sys.stderr.write(text + end)
        sys.stderr.flush()


def _resolve(name, what: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise SpecificationError(
            f"{what}: got {name!r}; valid choices are {', '.join(map(repr, BACKENDS))}. Fix: "
            f"bayesmix.set_backend('jax') (the default), or set the environment variable {ENV_VAR}.")
    name = name.strip().lower()
    if name == "jax" and _state["forked_after_jax"]:
        return "c"  # see _after_fork_in_child
    if name == "jax" and importlib.util.find_spec("jax") is None:
        _note("bayesmix: JAX is not installed; compiling with PyTensor's C backend instead "
              "(pip install jax for first fits in seconds).")
        name = "c"
    if name == "c" and not pytensor.config.cxx:
        _note("bayesmix: no C compiler is configured for PyTensor; compiling with Numba instead.")
        name = "numba"
    return name


def set_backend(name: str | None = None, *, messages: bool | None = None) -> str:
    """Choose how bayesmix compiles its likelihood functions and the NUTS model.

    ``name``: "jax" (default; falls back to "c" with a one-line message when JAX
    is not importable), "c" (PyTensor's C backend) or "numba". ``None`` keeps the
    current choice. The environment variable ``BAYESMIX_BACKEND`` sets the initial
    choice. ``messages=False`` silences the one-line compile notes on stderr.
    Functions already compiled for a model stay cached under the backend they were
    compiled with; switching compiles new ones. Returns the backend in use.
    """
    if messages is not None:
        if not isinstance(messages, bool):
            raise SpecificationError(f"messages: got {messages!r}; give True or False.")
        _state["messages"] = messages
    if name is not None:
        _state["backend"] = _resolve(name, "backend")
    return get_backend()


def get_backend() -> str:
    """The backend in use: ``set_backend``'s choice, else ``BAYESMIX_BACKEND``, else "jax"."""
    if _state["backend"] is None:
        _state["backend"] = _resolve(os.environ.get(ENV_VAR, DEFAULT_BACKEND), ENV_VAR)
    return _state["backend"]


def _mode():
    """The PyTensor compilation mode of the backend in use."""
    backend = get_backend()
    if backend == "c":
        return pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")
    # PyTensor's JAX linker turns on jax_enable_x64 when floatX is float64 (the
    # default; bayesmix computes in float64 throughout)
    if backend == "jax":
        _strong_jax_alloc()
        return pytensor.compile.mode.get_mode("JAX")
    return pytensor.compile.mode.get_mode("NUMBA")


@functools.cache
def _strong_jax_alloc():
    """PyTensor's JAX ``Alloc`` broadcasts a scalar constant, which its JAX linker
    passes as a Python float: the result is *weakly* typed, and a weak float64
    loses to a float32 constant in JAX's type promotion. ``zeros(...)[idx].inc(v)``
    (segment sums) followed by ``switch(isinf(m), 0, m)`` (logsumexp) then ran in
    float32 (errors of 4e-8 relative on the between-class LCA). Allocating in the
    node's declared dtype keeps every value float64."""
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify
    from pytensor.tensor.basic import Alloc

    @jax_funcify.register(Alloc)
    def _alloc(op, node, **kwargs):
        dtype = node.outputs[0].type.dtype

        def alloc(x, *shape):
            res = jnp.broadcast_to(jnp.asarray(x, dtype=dtype), shape)
            Alloc._check_runtime_broadcast(node, jnp.asarray(x), res.shape)
            return res

        return alloc


# Without a BLAS to link, PyTensor's C Dot falls back to numpy.dot (numpy's own
# OpenBLAS), which is what these small products want anyway; the warning about
# it would only alarm users.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def function(inputs, outputs, **kwargs):
    """``pytensor.function`` in the mode of the backend in use."""
    return pytensor.function(inputs, outputs, mode=_mode(), **kwargs)


def _lost_precision(fn, out) -> bool:
    """True when a JAX function returned an output in another dtype than its graph
    declares: a guard for JAX type-promotion surprises like the one
    ``_strong_jax_alloc`` fixes (the K = 1 between-class LCA came back in float32)."""
    outs = out if isinstance(out, (list, tuple)) else [out]
    return any(np.asarray(o).dtype != np.dtype(v.type.dtype) for o, v in zip(outs, fn.maker.fgraph.outputs))


def _with_c(build, theta):
    # compile that one function with the C backend instead (the model's other
    # functions stay JAX); the numbers then do not depend on the backend
    saved = _state["backend"]
    _state["backend"] = "c"
    try:
        fn = build()
        return fn, fn(theta)
    finally:
        _state["backend"] = saved


def _spec_key(fam):
    try:
        return hash(fam.spec)
    except TypeError:  # a spec holding unhashable values: announce each model
        return id(fam)


def announce(fam, what: str, n_params: int | None = None):
    """Context manager: one stderr line "bayesmix: compiling <what> of the <family>
    model (<backend>) ... <seconds> s", the first time a model of this family,
    spec, size and backend is compiled in the process (later rebuilds of the same
    model, e.g. in a simulation study, are quiet)."""
    return _Announce(fam, what, n_params)


class _Announce:
    def __init__(self, fam, what, n_params):
        backend = get_backend()
        self.key = (fam.family or type(fam).__name__, _spec_key(fam), what, n_params, backend)
        size = f", {n_params} free parameters" if n_params is not None else ""
        self.text = f"bayesmix: compiling {what} of the {fam.family or type(fam).__name__} model ({backend}{size}) ..."

    def __enter__(self):
        self.show = self.key not in _state["announced"]
        _state["announced"].add(self.key)
        self.t0 = time.perf_counter()
        if self.show:
            _note(self.text, end="")
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.show:
            _note(f" {time.perf_counter() - self.t0:.1f} s" if exc_type is None else " failed")
        return False


@dataclass
class Packing:
    """Layout of the flat vector: free parameter names, shapes and the ArviZ-style
    label of every element (e.g. ``tau[2, y3$1]``)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    element_labels: list[str]

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def pack(self, point: dict) -> np.ndarray:
        return np.concatenate([np.asarray(point[n], dtype="float64").reshape(-1) for n in self.names]) if self.names else np.zeros(0)

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        out, i = {}, 0
        for n, s, k in zip(self.names, self.shapes, self.sizes):
            out[n] = np.asarray(theta[..., i : i + k]).reshape(theta.shape[:-1] + s)
            i += k
        return out

    def labels(self) -> list[str]:
        return list(self.element_labels)

    def owners(self) -> list[str]:
        """The free parameter name of every element."""
        return [n for n, k in zip(self.names, self.sizes) for _ in range(k)]


class Compiled:
    """Flat-vector functions of one family model (built lazily, cached)."""

    def __init__(self, fam):
        self.fam = fam
        model = fam.model
        shapes = [tuple(len(model.coords[d]) for d in p.dims) for p in fam.free]
        self.packing = Packing(fam.free_names, shapes, list(fam.labels(fam.free_names)["label"]))
        # the length is part of the type: JAX traces with concrete shapes, and the
        # reshapes of the slices below (and of their gradients) fail on a symbolic one
        self.theta = pt.vector("free_flat", shape=(self.packing.size,))
        self._replace = {}
        i = 0
        for v, s, k in zip(fam.value_vars(), shapes, self.packing.sizes):
            self._replace[v] = self.theta[i : i + k].reshape(s)
            i += k
        self.unit_ll = self._replace_all([fam.loglik_graph()])[0]
        self.total_ll = pt.sum(self.unit_ll)
        self._fns = {}
        self._second_order_memo = (None, None)

    def _replace_all(self, graphs):
        """Value variables -> slices of theta, and data in shared variables (the
        regression family's ``set_data``) -> the same variables with their current
        shape fixed: JAX traces with concrete shapes, and a reshape whose size comes
        from a shared variable's symbolic shape fails there. ``set_data`` keeps
        the shapes (it swaps data of the same structure only)."""
        replace = dict(self._replace)
        for v in graph_inputs(graphs):
            if isinstance(v, SharedVariable) and getattr(v.type, "ndim", 0) and None in v.type.shape:
                replace[v] = pt.specify_shape(v, np.shape(v.get_value(borrow=True)))
        return [graph_replace(g, replace, strict=False) for g in graphs]

    def _to_theta(self, graphs):
        return self._replace_all(self.fam.model.replace_rvs_by_values(graphs))

    def _call(self, key, build, theta):
        """``build()``'s function (compiled once per backend, cached) at ``theta``.
        The first compilation of a model is announced on stderr (one line); the
        first call is timed with it because JAX compiles lazily, on that call."""
        full = (key, get_backend())
        theta = np.asarray(theta, dtype="float64")
        fn = self._fns.get(full)
        if fn is not None:
            return fn(theta)
        what = {"unit_grad": "the likelihood and gradient", "unit_only": "the likelihood",
                "logprior_grad": "the log-prior and gradient"}.get(key, key)
        with announce(self.fam, what, self.packing.size) if not self._fns else contextlib.nullcontext():
            fn = build()
            out = fn(theta)
            if full[1] == "jax" and _lost_precision(fn, out):
                fn, out = _with_c(build, theta)
        self._fns[full] = fn
        return out

    # -- value and gradient (the ML objective) -------------------------------------
    # One compiled function returns the per-unit log-likelihood and the gradient
    # of their sum: the ML objective, the pointwise log-likelihood of posterior
    # draws and the scores share one compilation (compilation dominates small fits).
    def _unit_and_grad(self, theta):
        unit, g = self._call("unit_grad", lambda: function(
            [self.theta], [self.unit_ll, pytensor.grad(self.total_ll, self.theta)]), theta)
        return np.asarray(unit), np.asarray(g)

    def ll_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        unit, g = self._unit_and_grad(theta)
        return float(unit.sum()), g

    def unit_loglik(self, theta: np.ndarray) -> np.ndarray:
        return self._unit_and_grad(theta)[0]

    def unit_loglik_only(self, theta: np.ndarray) -> np.ndarray:
        """Per-unit log-likelihood from a function without the gradient (cheaper
        to compile; used to check a fit under another integration rule)."""
        if ("unit_grad", get_backend()) in self._fns:
            return self.unit_loglik(theta)
        return np.asarray(self._call("unit_only", lambda: function([self.theta], self.unit_ll), theta))

    # -- log-prior (the MAP objective adds it to the log-likelihood) ---------------
    # The sum of the free RVs' logp at their values, with the value variables
    # replaced by the slices of theta exactly as for the likelihood. Every free RV
    # is on the real line without a transform (ARCHITECTURE decision 1), so there
    # is no Jacobian term: this is the log prior density of the flat vector.
    def logprior_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        def build():
            model = self.fam.model
            lp = _float64_constants(model.logp(vars=model.free_RVs))
            lp = self._replace_all([lp])[0]
            # a flat prior (pm.Flat) has logp 0: its gradient is disconnected, i.e. 0
            grad = pytensor.grad(lp, self.theta, disconnected_inputs="ignore")
            return function([self.theta], [lp, grad], on_unused_input="ignore")

        lp, g = self._call("logprior_grad", build, theta)
        return float(lp), np.asarray(g, dtype="float64")

    def prior_hessian(self, theta: np.ndarray, rel_step: float = 1e-5) -> np.ndarray:
        """(P, P) Hessian of the log-prior: central differences of its exact
        gradient with the steps of ``second_order`` (decision 5)."""
        theta = np.asarray(theta, dtype="float64")
        hess = np.empty((theta.size, theta.size))
        for j in range(theta.size):
            h = rel_step * (1.0 + abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            hess[:, j] = (self.logprior_and_grad(up)[1] - self.logprior_and_grad(down)[1]) / (2 * h)
        return 0.5 * (hess + hess.T)

    # -- reported (natural-scale) quantities --------------------------------------
    def natural(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Every Deterministic and every reported quantity at ``theta`` (one call
        of one compiled function)."""
        return self._natural(theta)

    def _natural(self, theta) -> dict[str, np.ndarray]:
        # deterministics and reported free parameters from one compiled function
        model = self.fam.model
        names = [d.name for d in model.deterministics]
        names += [n for n in self.fam.reported_names if n not in names]
        values = self._call("natural", lambda: function(
            [self.theta], self._to_theta([model[n] for n in names]), on_unused_input="ignore"), theta)
        return {n: np.asarray(v) for n, v in zip(names, values)}

    def deterministics(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The model's ``pm.Deterministic`` values."""
        nat = self._natural(theta)
        return {d.name: nat[d.name] for d in self.fam.model.deterministics}

    def reported(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The quantities of the parameter table, natural scale."""
        nat = self._natural(theta)
        return {n: nat[n] for n in self.fam.reported_names}

    def memberships(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Posterior class probabilities per class variable: name -> array
        (*membership_dims, K) (``FamilyModel.membership_graphs``)."""
        names = [cv.name for cv in self.fam.class_variables]

        def build():
            graphs = self.fam.membership_graphs(self.fam.likelihood_tensors)
            return function([self.theta], self._to_theta([graphs[n] for n in names]), on_unused_input="ignore")

        return {n: np.asarray(v) for n, v in zip(names, self._call("memberships", build, theta))}

    def membership(self, theta: np.ndarray) -> np.ndarray:
        """(N, K) posterior class probabilities of the primary class variable per
        person (a cluster-level class: each person gets its cluster's row)."""
        cv = self.fam.class_variables[0]
        post = self.memberships(theta)[cv.name]
        return post[self.fam.data.cluster_idx] if cv.membership_dims == (dims.CLUSTER,) else post

    def cluster_membership(self, theta: np.ndarray) -> np.ndarray:
        """(J, K) posterior class probabilities of the first cluster-level class
        variable (a between-level C, or D of section 6)."""
        return self.memberships(theta)[cluster_class_variable(self.fam, "cluster_membership").name]

    # -- second order: central differences of exact first derivatives -------------
    def second_order(self, theta: np.ndarray, rel_step: float = 1e-5) -> dict[str, np.ndarray]:
        """Observed Hessian (P, P), per-unit scores (J, P) and the Jacobian of the
        flat reported vector (R, P).

        Central differences of the *exact* gradient / unit log-likelihoods /
        reported map, with step h_p = rel_step * (1 + |theta_p|): truncation error
        O(h^2) ~ 1e-10 relative, far below any standard error's precision. The
        exact forward-over-reverse graph (``pushforward``) gave the same numbers
        but took 2 s (fixed rules) to 140 s (adaptive quadrature) to compile,
        against 2P + 1 evaluations of already compiled functions here.
        """
        theta = np.asarray(theta, dtype="float64")
        # the last result is kept: fit_ml computes it at the optimum and the LMR test
        # (enumerate_lrt.vlmr_matrix) asks for it again at res.theta (2P + 1 evaluations).
        # The per-unit LLs are part of the key, so data swapped in by set_data (shared
        # variables, same compiled function) never return a stale result.
        key = (theta.tobytes(), rel_step, get_backend(), self.unit_loglik(theta).tobytes())
        if self._second_order_memo[0] == key:
            return {k: v.copy() for k, v in self._second_order_memo[1].items()}
        p = theta.size
        hess = np.empty((p, p))
        scores = np.empty((self.unit_loglik(theta).size, p))
        rep0 = self._flat_reported(theta)
        jac = np.empty((rep0.size, p))
        for j in range(p):
            h = rel_step * (1.0 + abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            unit_up, grad_up = self._unit_and_grad(up)
            unit_down, grad_down = self._unit_and_grad(down)
            hess[:, j] = (grad_up - grad_down) / (2 * h)
            scores[:, j] = (unit_up - unit_down) / (2 * h)
            jac[:, j] = (self._flat_reported(up) - self._flat_reported(down)) / (2 * h)
        out = {"hessian": 0.5 * (hess + hess.T), "scores": scores, "jacobian": jac}
        self._second_order_memo = (key, {k: v.copy() for k, v in out.items()})
        return out

    def _flat_reported(self, theta):
        rep = self.reported(theta)
        return np.concatenate([np.asarray(rep[n], dtype="float64").reshape(-1) for n in self.fam.reported_names])

    def flat_reported(self, theta: np.ndarray) -> np.ndarray:
        """The reported quantities of the parameter table as one flat vector."""
        return self._flat_reported(theta)


def _float64_constants(graph):
    """``graph`` with its float32 constants made float64. PyTensor stores a Python
    float that float32 holds exactly (the 3.0 of ``pm.Normal.dist(0, 3)``) as a
    float32 constant, and PyMC's normal logp then takes ``log(sigma)`` in float32:
    the log-prior was off by ~3e-8 per element (3.7e-7 on the 13 of the FMA
    example; mode, gradient and Hessian unaffected). Rebuilding the graph on
    float64 constants computes it in float64."""
    consts = {c: pt.constant(np.asarray(c.data, dtype="float64")) for c in graph_inputs([graph])
              if isinstance(c, Constant) and getattr(c.type, "dtype", None) == "float32"}
    return clone_replace(graph, consts, rebuild_strict=False) if consts else graph


def cluster_class_variable(fam, what: str):
    """The first class variable indexed by cluster, or a ``SpecificationError``."""
    for cv in fam.class_variables:
        if cv.membership_dims == (dims.CLUSTER,):
            return cv
    levels = ", ".join(f"{cv.name}: one class per {' x '.join(cv.membership_dims)}" for cv in fam.class_variables)
    raise SpecificationError(
        f"{what}: this {fam.family or 'model'} model has only within-level class variables ({levels}), so "
        "clusters have no class of their own; cluster membership needs a between-level class (paper section "
        "5). Fix: use the person membership (MLResult.membership), or build the model with "
        "class_level='between' and cluster='<column>'.")


def compiled(fam) -> Compiled:
    """The ``Compiled`` functions of ``fam``, made once and kept in ``fam.cache``."""
    if "compiled" not in fam.cache:
        fam.cache["compiled"] = Compiled(fam)
    return fam.cache["compiled"]


def single_blas_thread(func):
    """Run ``func`` with BLAS limited to one thread.

    The matrices here are small (N x K, P x P); on a loaded 2-core machine
    OpenBLAS' second thread made one K = 3 gradient 30x slower and NUTS 20x
    slower (benchmarks/README.md). threadpoolctl restores the setting after.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper
