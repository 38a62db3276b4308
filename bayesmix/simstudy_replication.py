"""One replication of a simulation study (``bayesmix.simstudy``): generate the data,
build (or reuse through ``set_data``) the model, ``fit_ml``, align the labels to the
truth, and return the fit's row and its parameter rows. Any exception but a design
error is recorded in the row, never raised (one failed replication loses nothing else).
Split from ``simstudy.py`` so that the drivers (fork pool, any executor) stay short."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from bayesmix.exceptions import BayesmixWarning, SpecificationError
from bayesmix.fit.ml import fit_ml
from bayesmix.fit.relabel import align_to_truth
from bayesmix.fit.relabel import groups as relabel_groups

# A fit counts as converged when the optimizer succeeded, the largest gradient
# element is below this and no exception was raised.
CONVERGED_GRADIENT = 1e-3
_WARN_REGISTRY: dict = {}  # "default" warnings re-emitted from replications show once


def _is_identity(perm) -> bool:
    """A permutation tuple, or a dict group -> tuple, that changes nothing."""
    perms = perm.values() if isinstance(perm, dict) else [perm]
    return all(tuple(p) == tuple(range(len(p))) for p in perms)


# --------------------------------------------------------------------------- one replication
class _DesignError(SpecificationError):
    """A design error found in a replication: fatal for the whole study."""


def _check_generated(out, r) -> tuple[pd.DataFrame, dict]:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], pd.DataFrame)
            and isinstance(out[1], dict)):
        got = type(out).__name__ if not isinstance(out, tuple) else \
            f"tuple of ({', '.join(type(o).__name__ for o in out)})"
        raise _DesignError(f"design.generate: got {got} (replication {r}); give a function of a "
                           "numpy Generator returning (DataFrame, truth dict {label: value}).")
    df, truth = out
    clean = {}
    for lab, val in truth.items():
        arr = np.asarray(val)
        if not isinstance(lab, str) or arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number):
            raise _DesignError(
                f"design.generate truth[{lab!r}]: got {type(val).__name__} {np.shape(val)}; give one number per "
                "parameter-table label, e.g. {'alpha[1]': 0.4, 'tau[1, y1$1]': -1.5} (see bayesmix.simstudy.lca_truth).")
        clean[lab] = float(arr)
    return df, clean


def _check_truth_labels(truth, labels):
    bad = [lab for lab in truth if lab not in set(labels)]
    if bad:
        raise _DesignError(f"design.generate truth: got label(s) {bad} that are not in the parameter table; "
                           f"give labels among {labels}.")


def _model_for(design, df, state):
    model = state.get("model")
    if model is not None and model.can_set_data:
        try:
            model.set_data(df)
            state["reused"] = state.get("reused", 0) + 1
            return model
        except SpecificationError:
            pass
    model = design.build(df)
    state["model"] = model
    state["built"] = state.get("built", 0) + 1
    return model


def _fit_kwargs_for_se(fit_kwargs):
    kept = {k: v for k, v in fit_kwargs.items() if k not in ("n_starts", "n_final", "start", "seed", "progress",
                                                              "short_iter")}
    return {"check_integration": False, **kept}


def _warning_texts(caught) -> list[str]:
    texts = []
    for w in caught:
        if issubclass(w.category, BayesmixWarning):
            text = f"{w.category.__name__}: {w.message}"
            if text not in texts:
                texts.append(text)
        else:  # not ours: show it as usual
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=_WARN_REGISTRY)
    return texts


def failed_record(r, fit_seed, error: str | None = None) -> dict:
    """The result of replication ``r`` before (or without) a fit: ``error`` as given."""
    fit = {"rep": r, "loglik": np.nan, "n_params": np.nan, "success": False, "max_abs_gradient": np.nan,
           "converged": False, "n_best": np.nan, "seconds": np.nan, "permutation": None, "warnings": (),
           "error": error, "fit_seed": fit_seed}
    return {"fit": fit, "rows": None}


def _run_one(design, r, ss, fit_seed, state) -> dict:
    """Replication ``r``: data from ``default_rng(ss)``, ``fit_ml(seed=fit_seed)``; ``state``
    holds the model a worker reuses through ``set_data``."""
    t0 = time.perf_counter()
    fit = failed_record(r, fit_seed)["fit"]
    rows = None
    stage = "generate"
    try:
        out = design.generate(np.random.default_rng(ss))
        df, truth = _check_generated(out, r)
        stage = "build"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = _model_for(design, df, state)
            stage = "fit_ml"
            res = fit_ml(model, **{"check_integration": False, **design.fit_kwargs}, seed=fit_seed, progress=False)
            labels = list(res.params["label"])
            _check_truth_labels(truth, labels)
            conv = res.convergence
            fit.update(loglik=float(res.loglik), n_params=int(res.n_params), success=bool(conv["success"]),
                       max_abs_gradient=float(conv["max_abs_gradient"]), n_best=int(conv["n_best"]))
            params = res.params
            k = int(model.n_classes)
            if relabel_groups(model) and truth:
                stage = "label alignment"
                try:
                    perm, point, _ = align_to_truth(model, res.point, truth)
                except NotImplementedError:
                    perm = None
                if perm is not None and not _is_identity(perm):
                    again = fit_ml(model, n_starts=0, start=point, progress=False,
                                   **_fit_kwargs_for_se(design.fit_kwargs))
                    if abs(again.loglik - res.loglik) > 1e-6 * max(1.0, abs(res.loglik)):
                        warnings.warn(f"the permuted optimum moved (LL {res.loglik:.6f} -> {again.loglik:.6f}).",
                                      BayesmixWarning)
                    params = again.params
                    fit["max_abs_gradient"] = max(fit["max_abs_gradient"],
                                                  float(again.convergence["max_abs_gradient"]))
                fit["permutation"] = perm
            else:
                fit["permutation"] = tuple(range(k))
        fit["warnings"] = tuple(_warning_texts(caught))
        rows = pd.DataFrame({
            "rep": r, "label": params["label"].to_numpy(), "parameter": params["parameter"].to_numpy(),
            "class": params["class"].to_numpy(), "term": params["term"].to_numpy(),
            "estimate": params["estimate"].to_numpy(float), "se": params["se"].to_numpy(float),
            "truth": [truth.get(lab, np.nan) for lab in params["label"]],
        })
        fit["converged"] = bool(fit["success"] and fit["max_abs_gradient"] < CONVERGED_GRADIENT)
    except _DesignError:
        raise
    except Exception as exc:  # a failed replication is recorded, not fatal
        fit["error"] = f"{stage}: {type(exc).__name__}: {exc}"
        fit["converged"] = False
        rows = None
    fit["seconds"] = time.perf_counter() - t0
    return {"fit": fit, "rows": rows}
