"""Monte Carlo simulation studies: generate -> fit_ml, R times, in parallel.

A :class:`SimulationDesign` says how to draw one data set (with the true values
of the parameters it should recover) and how to build the correctly specified
model; :func:`run_simulation` runs R replications and returns a
:class:`SimulationResult` with every estimate and a summary per parameter (bias,
MSE with its Monte Carlo SE, coverage of the Wald intervals), as Mplus'
MONTECARLO output.

Seeding. Replication r draws its data with
``np.random.default_rng(SeedSequence(seed).spawn(n_reps)[r])`` and fits with
``fit_ml(seed=s_r)``, ``s_r`` an integer drawn from the first child of that
replication's SeedSequence. A replication's numbers therefore depend only on
``seed`` and r: not on ``n_jobs``, the chunking or ``n_reps``.

Parallelism. Replications run in a ``ProcessPoolExecutor`` with the ``fork``
context (the design's functions may be lambdas: nothing is pickled but the
replication numbers and the results). The first replication runs in the parent
process, so a design error (wrong return type, unknown truth label) is raised
before any worker starts, and PyTensor's C cache is filled once rather than by
every worker at the same time. Each worker keeps its model between
replications: when the model has ``set_data(df)`` (swap the data arrays, keep
the compiled functions; ``SpecificationError`` when the structure differs), it
is built once per worker, else once per replication (the C cache still makes
that cheap). Workers run BLAS on one thread.

Label switching. A mixture is identified only up to the order of its classes.
For K > 1, every class permutation of the ML point is evaluated and the one
closest to the truth (sum of squared differences over the truth labels) is kept;
when it is not the identity the standard errors are recomputed in the new
labelling (``fit_ml(n_starts=0, start=permuted point)``, which starts at the
optimum). The permutation is recorded per replication.
"""

from __future__ import annotations

import inspect
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from bayesmix.exceptions import BayesmixWarning, SpecificationError
from bayesmix.fit.ml import fit_ml
from bayesmix.fit.relabel import align_to_truth
from bayesmix.fit.relabel import groups as relabel_groups
from bayesmix.simulate import lca_truth

__all__ = ["SimulationDesign", "SimulationResult", "run_simulation", "summarize", "align_to_truth", "lca_truth"]

# A fit counts as converged when the optimizer succeeded, the largest gradient
# element is below this and no exception was raised.
CONVERGED_GRADIENT = 1e-3
# Exhaustive search over the K! class permutations up to this K; beyond, a
# Hungarian assignment on the class-specific truth labels.
# Replications per worker before its pool is renewed (when models are rebuilt).
_RECYCLE_REPS = 100
# Replications run in the parent before the pool starts (until one is fitted).
_MAX_PRERUN = 3
_RESERVED_FIT_KWARGS = ("seed", "progress")
_WARN_REGISTRY: dict = {}  # "default" warnings re-emitted from replications show once
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class SimulationDesign:
    """One cell of a simulation study.

    Attributes
    ----------
    name : str
        Shown on the progress bar and in the printed result.
    generate : callable
        ``generate(rng) -> (DataFrame, truth)``: one data set drawn with the
        ``numpy.random.Generator`` given, and ``truth``, a dict
        {parameter-table label: true value}, labels as in ``MLResult.params["label"]``
        (e.g. ``"alpha[1]"``, ``"tau[2, y3$1]"``; see :func:`lca_truth`). Labels
        not in the dict are estimated and stored but not summarised.
    build : callable
        ``build(df) -> model``, e.g. ``lambda df: bm.lca(df, items, n_classes=2)``.
    fit_kwargs : dict
        Passed to ``bayesmix.fit_ml`` (``n_starts``, ``n_final``, ``se``, ...);
        ``seed`` is set per replication by ``run_simulation``. The integration
        check of ``fit_ml`` is off in replications (``check_integration=False``
        unless given here): it builds and compiles a finer model per fit, which
        would cost more than the fit; check the design's rule once with
        ``bayesmix.check_integration`` on a replication instead.
    """

    name: str
    generate: Callable
    build: Callable
    fit_kwargs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- summary
def summarize(replications: pd.DataFrame, fits: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per truth label, over the converged replications: truth (its mean if it
    varies), n, mean estimate, bias = mean(est - truth), sd of the estimates
    (ddof 1), mean SE, MSE = mean((est - truth)^2) and its Monte Carlo SE
    (sd of the squared errors / sqrt(n)), coverage of the ``level`` Wald
    intervals est +- z se, and the share of converged fits.

    Rows without an SE (a parameter fixed at its bound) are left out of the mean
    SE and the coverage. ``replications`` needs columns rep, label, estimate,
    se, truth; ``fits`` needs rep and converged.
    """
    _check_level(level)
    z = stats.norm.ppf(0.5 + level / 2)
    converged = fits["converged"].astype(bool).to_numpy()
    share = float(converged.mean()) if len(fits) else float("nan")
    conv_reps = set(fits["rep"].to_numpy()[converged])
    with_truth = replications[replications["truth"].notna()]
    labels = list(dict.fromkeys(with_truth["label"]))
    used = with_truth[with_truth["rep"].isin(conv_reps)]
    groups = dict(tuple(used.groupby("label", sort=False)))
    rows = []
    for lab in labels:
        g = groups.get(lab)
        est = g["estimate"].to_numpy(float) if g is not None else np.zeros(0)
        tru = g["truth"].to_numpy(float) if g is not None else np.zeros(0)
        se = g["se"].to_numpy(float) if g is not None else np.zeros(0)
        n = est.size
        err = est - tru
        sq = err**2
        has_se = np.isfinite(se)
        rows.append({
            "label": lab,
            "truth": float(tru.mean()) if n else float(with_truth.loc[with_truth["label"] == lab, "truth"].mean()),
            "n": n,
            "mean": float(est.mean()) if n else np.nan,
            "bias": float(err.mean()) if n else np.nan,
            "sd": float(est.std(ddof=1)) if n > 1 else np.nan,
            "mean_se": float(se[has_se].mean()) if has_se.any() else np.nan,
            "mse": float(sq.mean()) if n else np.nan,
            "mse_mcse": float(sq.std(ddof=1) / math.sqrt(n)) if n > 1 else np.nan,
            "coverage": float(np.mean(np.abs(err[has_se]) <= z * se[has_se])) if has_se.any() else np.nan,
            "converged_share": share,
        })
    cols = ["label", "truth", "n", "mean", "bias", "sd", "mean_se", "mse", "mse_mcse", "coverage", "converged_share"]
    return pd.DataFrame(rows, columns=cols).set_index("label")


@dataclass(repr=False)
class SimulationResult:
    """Result of :func:`run_simulation`.

    Attributes
    ----------
    name : str
        The design's name.
    replications : DataFrame
        One row per replication x parameter-table row: rep, label, parameter,
        class, term, estimate, se, truth (NaN where the design gives none),
        converged. Estimates are in the labelling aligned to the truth.
    fits : DataFrame
        One row per replication: rep, loglik, n_params, success,
        max_abs_gradient, converged, n_best, seconds, permutation (new class c
        is the fit's class permutation[c]; None when not aligned), warnings
        (tuple of texts), error (None or the message), fit_seed.
    seconds : float
        Wall time of the whole study.
    level : float
        Confidence level of the coverage in :meth:`summary`.
    """

    name: str
    replications: pd.DataFrame
    fits: pd.DataFrame
    seconds: float = float("nan")
    level: float = 0.95
    n_jobs: int = 1

    @property
    def n_reps(self) -> int:
        return len(self.fits)

    @property
    def n_converged(self) -> int:
        return int(self.fits["converged"].sum())

    @property
    def n_failed(self) -> int:
        return int(self.fits["error"].notna().sum())

    def summary(self, level: float | None = None) -> pd.DataFrame:
        """Bias, MSE (with Monte Carlo SE) and coverage per truth label (see :func:`summarize`)."""
        return summarize(self.replications, self.fits, self.level if level is None else level)

    def __str__(self) -> str:
        head = (f"Simulation study {self.name!r}: {self.n_reps} replications, {self.n_converged} converged, "
                f"{self.n_failed} failed; {self.seconds:.1f} s on {self.n_jobs} process(es).")
        lines = [head]
        if self.n_failed:
            first = self.fits.loc[self.fits["error"].notna()].iloc[0]
            lines.append(f"First failure (rep {first['rep']}): {first['error']}")
        summ = self.summary()
        lines.append(f"Coverage of {self.level:.0%} Wald intervals; summaries over converged replications.")
        lines.append(summ.to_string(float_format=lambda v: f"{v:.4f}") if len(summ) else "(no truth given)")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


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


def _run_one(design, r, ss, fit_seed, state) -> dict:
    t0 = time.perf_counter()
    fit = {"rep": r, "loglik": np.nan, "n_params": np.nan, "success": False, "max_abs_gradient": np.nan,
           "converged": False, "n_best": np.nan, "seconds": np.nan, "permutation": None, "warnings": (),
           "error": None, "fit_seed": fit_seed}
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


# --------------------------------------------------------------------------- workers
_RUNS: dict[int, dict] = {}


def _init_worker():
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except Exception:  # pragma: no cover - threadpoolctl missing
        pass


def _run_chunk(token, tasks):
    run = _RUNS[token]  # inherited from the parent by fork
    return [_run_one(run["design"], r, ss, fit_seed, run["state"]) for r, ss, fit_seed in tasks]


# --------------------------------------------------------------------------- driver
def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise SpecificationError(f"level: got {level!r}; give a number between 0 and 1, e.g. 0.95.")


def _check_args(design, n_reps, n_jobs, level):
    if not all(callable(getattr(design, a, None)) for a in ("generate", "build")):
        raise SpecificationError(f"design: got {type(design).__name__}; give a bayesmix.SimulationDesign("
                                 "name, generate=..., build=...).")
    if isinstance(n_reps, bool) or not isinstance(n_reps, (int, np.integer)) or n_reps < 1:
        raise SpecificationError(f"n_reps: got {n_reps!r}; give an integer >= 1.")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
        raise SpecificationError(f"n_jobs: got {n_jobs!r}; give an integer >= 1 or None (all cores).")
    _check_level(level)
    kw = getattr(design, "fit_kwargs", None) or {}
    if not isinstance(kw, dict):
        raise SpecificationError(f"design.fit_kwargs: got {type(kw).__name__}; give a dict of fit_ml arguments.")
    valid = [p for p in inspect.signature(fit_ml).parameters if p not in ("model",) + _RESERVED_FIT_KWARGS]
    bad = [k for k in kw if k not in valid]
    if bad:
        raise SpecificationError(f"design.fit_kwargs: got {bad}; give fit_ml arguments among {valid} "
                                 "(the seed of each fit is derived from run_simulation's seed).")


def _tasks(seed, n_reps):
    children = np.random.SeedSequence(seed).spawn(n_reps)
    out = []
    for r, ss in enumerate(children):
        fit_ss = np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key + (0,), pool_size=ss.pool_size)
        out.append((r, ss, int(fit_ss.generate_state(1)[0])))
    return out


def run_simulation(design: SimulationDesign, n_reps: int, *, seed: int = 0, n_jobs: int | None = None,
                   progress: bool = True, level: float = 0.95) -> SimulationResult:
    """Run ``n_reps`` replications of ``design`` (generate -> build -> ``fit_ml``).

    Parameters
    ----------
    design : SimulationDesign
    n_reps : int
        Number of replications R.
    seed : int
        Seeds everything; the result does not depend on ``n_jobs``.
    n_jobs : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs in this process.
        Uses the ``fork`` start method (where unavailable, runs in-process).
    progress : bool
        tqdm bar over completed replications.
    level : float
        Confidence level of the Wald intervals whose coverage is summarised.

    A replication whose generate, build or fit raises is recorded in
    ``.fits["error"]``; the others proceed. A generate that does not return
    (DataFrame, dict), or truth labels that are not in the parameter table,
    raise ``SpecificationError`` (checked on the first replication, before the
    workers start).
    """
    try:
        return _run_simulation(design, n_reps, seed=seed, n_jobs=n_jobs, progress=progress, level=level)
    except _DesignError as exc:
        raise SpecificationError(str(exc)) from None


def _run_simulation(design, n_reps, *, seed, n_jobs, progress, level):
    _check_args(design, n_reps, n_jobs, level)
    n_reps = int(n_reps)
    n_jobs = int(os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    if "fork" not in multiprocessing.get_all_start_methods():
        n_jobs = 1
    t0 = time.perf_counter()
    tasks = _tasks(seed, n_reps)
    results: dict[int, dict] = {}
    state: dict = {}
    bar = tqdm(total=n_reps, desc=str(design.name), disable=not progress)
    try:
        # in-process until one replication is fitted: design errors surface now,
        # and the C cache is warm before the workers start
        pending = list(tasks)
        if n_jobs > 1:
            while pending and len(results) < _MAX_PRERUN:
                r, ss, fs = pending.pop(0)
                results[r] = _run_one(design, r, ss, fs, state)
                bar.update()
                if results[r]["fit"]["error"] is None:
                    break
        else:
            for r, ss, fs in pending:
                results[r] = _run_one(design, r, ss, fs, state)
                bar.update()
            pending = []
        if pending:
            results.update(_run_pool(design, pending, min(n_jobs, len(pending)), state, bar))
    finally:
        bar.close()
    ordered = [results[r] for r in range(n_reps)]
    fits = pd.DataFrame([o["fit"] for o in ordered])
    frames = [o["rows"] for o in ordered if o["rows"] is not None]
    if frames:
        reps = pd.concat(frames, ignore_index=True)
    else:
        reps = pd.DataFrame(columns=["rep", "label", "parameter", "class", "term", "estimate", "se", "truth"])
    conv = dict(zip(fits["rep"], fits["converged"]))
    reps["converged"] = reps["rep"].map(conv).astype(bool)
    return SimulationResult(name=str(design.name), replications=reps, fits=fits,
                            seconds=time.perf_counter() - t0, level=float(level), n_jobs=n_jobs)


def _run_pool(design, pending, n_jobs, state, bar) -> dict[int, dict]:
    """Run ``pending`` in pools of ``n_jobs`` forked workers. Without ``set_data``
    every replication builds a model, and PyMC keeps each model's CustomDist in
    its global dispatch registries (about 4 MiB per build); the pool is then
    renewed every ``_RECYCLE_REPS`` replications per worker, which returns that
    memory (400 two-level replications otherwise grew each worker to 1.4 GiB)."""
    reuse = state.get("model") is not None and state["model"].can_set_data
    batch = len(pending) if reuse else _RECYCLE_REPS * n_jobs
    out = {}
    for i in range(0, len(pending), batch):
        part = pending[i:i + batch]
        out.update(_run_one_pool(design, part, min(n_jobs, len(part)), state, bar))
    return out


def _run_one_pool(design, pending, n_jobs, state, bar) -> dict[int, dict]:
    token = id(design) ^ time.perf_counter_ns()
    # the parent's model goes to the workers (fork): with set_data they never rebuild
    _RUNS[token] = {"design": design, "state": dict(state)}
    size = max(1, min(4, math.ceil(len(pending) / (4 * n_jobs))))
    chunks = [pending[i:i + size] for i in range(0, len(pending), size)]
    out = {}
    ctx = multiprocessing.get_context("fork")
    try:
        with warnings.catch_warnings():
            # Python 3.12 warns that fork() in a process with (BLAS) threads may deadlock;
            # the workers only run numpy / compiled PyTensor code.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
            pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker)
            try:
                futures = {pool.submit(_run_chunk, token, chunk): chunk for chunk in chunks}
                remaining = set(futures)
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        for rec in fut.result():  # a design error raised in a worker propagates
                            out[rec["fit"]["rep"]] = rec
                        bar.update(len(futures[fut]))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    finally:
        _RUNS.pop(token, None)
    return out
