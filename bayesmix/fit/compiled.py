"""Compiled likelihood functions shared by ML fitting, SEs and MCMC post-processing.

All functions take the free parameters as one flat vector ``theta`` (the model's
free variables, in ``FamilyModel.free`` order, raveled in C order). They are
compiled once per model object and cached on it, so random starts, standard
errors and log-likelihood evaluation over posterior draws reuse one compilation
(PYMC_NOTES: compilation dominates small fits).

Second-order quantities use forward-over-reverse products (``pushforward``): the
Hessian-vector product H v, the per-cluster score product S v and the Jacobian
of the reported quantities G v, all in one compiled function called once per
parameter with v = e_p. This avoids a J x P Jacobian graph (J can be 7000+
persons) and costs P gradient evaluations, well under a second here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import pushforward
from pytensor.graph.replace import graph_replace


@dataclass
class Packing:
    names: list[str]
    shapes: list[tuple[int, ...]]

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
        lab = []
        for n, s in zip(self.names, self.shapes):
            lab += [f"{n}[{','.join(map(str, idx))}]" if s else n for idx in np.ndindex(*s)] if s else [n]
        return lab


class Compiled:
    """Flat-vector functions of one family model (built lazily, cached)."""

    def __init__(self, fam):
        self.fam = fam
        model = fam.model
        shapes = [tuple(len(model.coords[d]) for d in p.dims) for p in fam.free]
        self.packing = Packing(fam.free_names, shapes)
        self.theta = pt.vector("theta")
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
    def ll_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        fn = self._get("ll_grad", lambda: pytensor.function(
            [self.theta], [self.total_ll, pytensor.grad(self.total_ll, self.theta)]))
        ll, g = fn(np.asarray(theta, dtype="float64"))
        return float(ll), np.asarray(g)

    def unit_loglik(self, theta: np.ndarray) -> np.ndarray:
        fn = self._get("unit", lambda: pytensor.function([self.theta], self.unit_ll))
        return np.asarray(fn(np.asarray(theta, dtype="float64")))

    # -- reported (natural-scale) quantities --------------------------------------
    def reported(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        names = self.fam.reported
        fn = self._get("reported", lambda: pytensor.function(
            [self.theta], self._to_theta([self.fam.model[n] for n in names]), on_unused_input="ignore"))
        return {n: np.asarray(v) for n, v in zip(names, fn(np.asarray(theta, dtype="float64")))}

    def deterministics(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        dets = [d.name for d in self.fam.model.deterministics]
        fn = self._get("dets", lambda: pytensor.function(
            [self.theta], self._to_theta([self.fam.model[n] for n in dets]), on_unused_input="ignore"))
        return {n: np.asarray(v) for n, v in zip(dets, fn(np.asarray(theta, dtype="float64")))}

    def membership(self, theta: np.ndarray) -> np.ndarray:
        """(N, K) posterior class probabilities of each person."""
        fn = self._get("membership", lambda: pytensor.function(
            [self.theta], self._to_theta([self.fam.membership_graph(self.fam.likelihood_tensors)])[0],
            on_unused_input="ignore"))
        return np.asarray(fn(np.asarray(theta, dtype="float64")))

    # -- second order: H v, S v, G v in one pass -----------------------------------
    def second_order(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Observed Hessian (P, P), per-unit scores (J, P), Jacobian of the flat
        reported vector (R, P)."""

        def build():
            v = pt.vector("v")
            grad = pytensor.grad(self.total_ll, self.theta)
            rep = pt.concatenate([pt.reshape(g, (-1,)) for g in self._to_theta([self.fam.model[n] for n in self.fam.reported])])
            hv, sv, gv = pushforward([grad, self.unit_ll, rep], self.theta, v)
            return pytensor.function([self.theta, v], [hv, sv, gv], on_unused_input="ignore")

        fn = self._get("second", build)
        theta = np.asarray(theta, dtype="float64")
        p = theta.size
        cols = [fn(theta, e) for e in np.eye(p)]
        hess = np.stack([c[0] for c in cols], axis=1)
        scores = np.stack([c[1] for c in cols], axis=1)
        jac = np.stack([c[2] for c in cols], axis=1)
        return {"hessian": 0.5 * (hess + hess.T), "scores": scores, "jacobian": jac}


def compiled(fam) -> Compiled:
    if getattr(fam, "_compiled", None) is None:
        fam._compiled = Compiled(fam)
    return fam._compiled
