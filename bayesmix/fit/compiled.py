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

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace
from threadpoolctl import threadpool_limits

from bayesmix import dims
from bayesmix.exceptions import SpecificationError


def _mode():
    """PyTensor's C backend (``cvm``) when a C compiler is configured, else the default.

    Measured here on the 3-class LCA of 7326 x 17 (20 starts): a warm-cache fit took
    1.6 s with the C backend against 10.9 s with PyTensor 3's default (Numba), and
    32 s against 38 s with an empty cache.
    """
    if pytensor.config.cxx:
        return pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")
    return None


MODE = _mode()

# Without a BLAS to link, PyTensor's C Dot falls back to numpy.dot (numpy's own
# OpenBLAS), which is what these small products want anyway; the warning about
# it would only alarm users.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def function(inputs, outputs, **kwargs):
    """``pytensor.function`` in the mode above."""
    return pytensor.function(inputs, outputs, mode=MODE, **kwargs)


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
        self.theta = pt.vector("free_flat")
        self._replace = {}
        i = 0
        for v, s, k in zip(fam.value_vars(), shapes, self.packing.sizes):
            self._replace[v] = self.theta[i : i + k].reshape(s)
            i += k
        self.unit_ll = graph_replace(fam.loglik_graph(), self._replace, strict=False)
        self.total_ll = pt.sum(self.unit_ll)
        self._fns = {}

    def _to_theta(self, graphs):
        graphs = self.fam.model.replace_rvs_by_values(graphs)
        return [graph_replace(g, self._replace, strict=False) for g in graphs]

    def _get(self, key, build):
        if key not in self._fns:
            self._fns[key] = build()
        return self._fns[key]

    # -- value and gradient (the ML objective) -------------------------------------
    # One compiled function returns the per-unit log-likelihood and the gradient
    # of their sum: the ML objective, the pointwise log-likelihood of posterior
    # draws and the scores share one compilation (compilation dominates small fits).
    def _unit_and_grad(self, theta):
        fn = self._get("unit_grad", lambda: function(
            [self.theta], [self.unit_ll, pytensor.grad(self.total_ll, self.theta)]))
        unit, g = fn(np.asarray(theta, dtype="float64"))
        return np.asarray(unit), np.asarray(g)

    def ll_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        unit, g = self._unit_and_grad(theta)
        return float(unit.sum()), g

    def unit_loglik(self, theta: np.ndarray) -> np.ndarray:
        return self._unit_and_grad(theta)[0]

    def unit_loglik_only(self, theta: np.ndarray) -> np.ndarray:
        """Per-unit log-likelihood from a function without the gradient (cheaper
        to compile; used to check a fit under another integration rule)."""
        if "unit_grad" in self._fns:
            return self.unit_loglik(theta)
        fn = self._get("unit_only", lambda: function([self.theta], self.unit_ll))
        return np.asarray(fn(np.asarray(theta, dtype="float64")))

    # -- reported (natural-scale) quantities --------------------------------------
    def _natural(self, theta) -> dict[str, np.ndarray]:
        # deterministics and reported free parameters from one compiled function
        model = self.fam.model
        names = [d.name for d in model.deterministics]
        names += [n for n in self.fam.reported_names if n not in names]
        fn = self._get("natural", lambda: function(
            [self.theta], self._to_theta([model[n] for n in names]), on_unused_input="ignore"))
        return {n: np.asarray(v) for n, v in zip(names, fn(np.asarray(theta, dtype="float64")))}

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

        fn = self._get("memberships", build)
        return {n: np.asarray(v) for n, v in zip(names, fn(np.asarray(theta, dtype="float64")))}

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
        return {"hessian": 0.5 * (hess + hess.T), "scores": scores, "jacobian": jac}

    def _flat_reported(self, theta):
        rep = self.reported(theta)
        return np.concatenate([np.asarray(rep[n], dtype="float64").reshape(-1) for n in self.fam.reported_names])

    def flat_reported(self, theta: np.ndarray) -> np.ndarray:
        """The reported quantities of the parameter table as one flat vector."""
        return self._flat_reported(theta)


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
