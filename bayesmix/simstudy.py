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

Parallelism. With ``n_jobs > 1`` replications run in a ``ProcessPoolExecutor``
whose workers start from a fresh interpreter (``forkserver``, else ``spawn``: a
process forked after JAX started its threads deadlocked). The design is sent with
cloudpickle, so its functions may be lambdas or closures. The first replication
runs in the parent process, so a design error (wrong return type, unknown truth
label) is raised before any worker starts, and the compile caches on disk are
filled once rather than by every worker at the same time. Each worker keeps its
model between replications: when the model has ``set_data(df)`` (swap the data
arrays, keep the compiled functions; ``SpecificationError`` when the structure
differs), it is built once per worker, else once per replication. Workers run
BLAS on one thread. Building models in a loop does not grow memory: a model's
likelihood Op is released with it (``families.base.LoglikRV``;
``benchmarks/bench_memory.py``).

Scale-out. ``run_simulation(..., executor=...)`` sends the same one task per
replication to any ``concurrent.futures``-style executor instead (threads,
processes, a dask ``distributed`` cluster). Since seeds are per replication, the
results are those of the in-process run, bit for bit, whatever the number of
workers or the order in which tasks finish. A task that the executor loses is
recorded as that replication's error; the others are kept.

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
import pickle
import queue
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

import cloudpickle
import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from bayesmix.checks import check_int, check_seed
from bayesmix.exceptions import SpecificationError
from bayesmix.fit.ml import fit_ml
from bayesmix.fit.relabel import align_to_truth
from bayesmix.simstudy_replication import CONVERGED_GRADIENT, _DesignError, _run_one, failed_record  # noqa: F401
from bayesmix.simulate import lca_truth

__all__ = ["SimulationDesign", "SimulationResult", "run_simulation", "summarize", "align_to_truth", "lca_truth"]

# Replications run in the parent before the pool starts (until one is fitted).
_MAX_PRERUN = 3
_RESERVED_FIT_KWARGS = ("seed", "progress")
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
    n_jobs : int
        Local worker processes used (1 with an executor).
    executor : str or None
        Type name of the executor given to :func:`run_simulation`, if any.
    """

    name: str
    replications: pd.DataFrame
    fits: pd.DataFrame
    seconds: float = float("nan")
    level: float = 0.95
    n_jobs: int = 1
    executor: str | None = None

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
                f"{self.n_failed} failed; {self.seconds:.1f} s on "
                + (f"{self.n_jobs} process(es)." if self.executor is None else f"executor {self.executor}."))
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



# --------------------------------------------------------------------------- workers
_LOCAL = threading.local()  # per executor worker (thread): the study it serves, its design and model


def _init_worker():
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except Exception:  # pragma: no cover - threadpoolctl missing
        pass


def _run_remote(token, design, r, ss, fit_seed):
    """One replication on an executor's worker (a thread, a process or a dask worker).
    ``design`` is the object (threads) or its cloudpickle bytes (processes), unpickled
    once per study. The worker keeps the model of the study ``token`` it served last
    (reused through ``set_data``); a new study drops it."""
    if getattr(_LOCAL, "token", None) != token:
        _LOCAL.token, _LOCAL.state = token, {}
        try:
            _LOCAL.design = cloudpickle.loads(design) if isinstance(design, bytes) else design
        except Exception as exc:  # e.g. generate defined in a module the worker cannot import
            _LOCAL.token = None
            raise _DesignError(f"design: the worker could not unpickle it ({type(exc).__name__}: {exc}); define "
                               "generate and build in __main__, in an importable module, or as lambdas.") from None
    return _run_one(_LOCAL.design, r, ss, fit_seed, _LOCAL.state)


# --------------------------------------------------------------------------- driver
def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise SpecificationError(f"level: got {level!r}; give a number between 0 and 1, e.g. 0.95.")


def _check_args(design, n_reps, n_jobs, level, executor):
    if not all(callable(getattr(design, a, None)) for a in ("generate", "build")):
        raise SpecificationError(f"design: got {type(design).__name__}; give a bayesmix.SimulationDesign("
                                 "name, generate=..., build=...).")
    check_int("n_reps", n_reps, 1)
    if n_jobs is not None:
        check_int("n_jobs", n_jobs, 1, " or None (all cores)")
    if executor is not None:
        if not callable(getattr(executor, "submit", None)):
            raise SpecificationError(
                f"executor: got {type(executor).__name__}; give an object with submit(fn, *args) returning "
                "futures, e.g. concurrent.futures.ProcessPoolExecutor() or a dask distributed.Client.")
        if n_jobs is not None:
            raise SpecificationError(f"n_jobs: got {n_jobs!r} with an executor; give one of n_jobs and executor "
                                     "(the executor decides how many workers run).")
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
                   executor=None, progress: bool = True, level: float = 0.95) -> SimulationResult:
    """Run ``n_reps`` replications of ``design`` (generate -> build -> ``fit_ml``).

    Parameters
    ----------
    design : SimulationDesign
    n_reps : int
        Number of replications R.
    seed : int
        Seeds everything; the result does not depend on ``n_jobs``, the executor or
        the order in which replications finish.
    n_jobs : int, optional
        Worker processes on this machine (default ``os.cpu_count()``); 1 runs in this
        process. Workers start fresh (``forkserver`` or ``spawn``) and import
        bayesmix, a few seconds each; as with any such pool, a script must run its
        code under ``if __name__ == "__main__":`` (notebooks need nothing).
    executor : concurrent.futures.Executor-like, optional
        Run the replications on it instead: any object whose ``submit(fn, *args)``
        returns futures with ``result()`` and ``add_done_callback`` (a
        ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a dask
        ``distributed.Client`` or its ``get_executor()``; install the
        ``bayesmix[distributed]`` extra). Give it or ``n_jobs``, not both. One task
        per replication, each carrying the design (cloudpickled, except for a
        ``ThreadPoolExecutor``; lambdas are fine). A worker keeps its model between
        the replications it runs. The executor is not shut down. Results are
        bit-for-bit those of ``n_jobs=1`` for the same seed.
    progress : bool
        tqdm bar over completed replications (with the count of failures; each
        failure is also printed with its error).
    level : float
        Confidence level of the Wald intervals whose coverage is summarised.

    A replication whose generate, build or fit raises, or whose task is lost by the
    executor (e.g. a dask worker killed), is recorded in ``.fits["error"]`` with the
    exception's text; the others proceed. A generate that does not return
    (DataFrame, dict), or truth labels that are not in the parameter table, raise
    ``SpecificationError``. The first replication runs in this process (until one
    is fitted, at most 3), so such errors come before any worker starts.
    """
    try:
        return _run_simulation(design, n_reps, seed=seed, n_jobs=n_jobs, executor=executor, progress=progress,
                               level=level)
    except _DesignError as exc:
        raise SpecificationError(str(exc)) from None


class _Progress:
    """The tqdm bar over replications: completed count, failures in the postfix and
    one printed line per failed replication."""

    def __init__(self, name, total, enabled):
        self.name, self.enabled, self.failed = name, enabled, 0
        self.bar = tqdm(total=total, desc=name, disable=not enabled)

    def done(self, rec):
        err = rec["fit"]["error"]
        if err is not None:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
            if self.enabled:
                tqdm.write(f"{self.name}: replication {rec['fit']['rep']} failed: {err}")
        self.bar.update()


_GUARD_HINT = ("workers start fresh and import the main script, so a script must run its code under "
               "`if __name__ == '__main__':`")


def _run_simulation(design, n_reps, *, seed, n_jobs, executor, progress, level):
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SpecificationError(f"run_simulation: called while a worker process was importing the main script; "
                                 f"{_GUARD_HINT}.")
    _check_args(design, n_reps, n_jobs, level, executor)
    check_seed("seed", seed, generator=False)  # SeedSequence(seed) takes None or an integer >= 0
    n_reps = int(n_reps)
    n_jobs = int(os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    t0 = time.perf_counter()
    tasks = _tasks(seed, n_reps)
    results: dict[int, dict] = {}
    state: dict = {}
    bar = _Progress(str(design.name), n_reps, progress)
    try:
        # in-process until one replication is fitted: design errors surface now,
        # and the C cache is warm before the workers start
        pending = list(tasks)
        if n_jobs > 1 or executor is not None:
            while pending and len(results) < _MAX_PRERUN:
                r, ss, fs = pending.pop(0)
                results[r] = _run_one(design, r, ss, fs, state)
                bar.done(results[r])
                if results[r]["fit"]["error"] is None:
                    break
        else:
            for r, ss, fs in pending:
                results[r] = _run_one(design, r, ss, fs, state)
                bar.done(results[r])
            pending = []
        if pending and executor is not None:
            results.update(_run_executor(executor, design, pending, bar))
        elif pending:
            results.update(_run_pool(design, pending, min(n_jobs, len(pending)), bar))
    finally:
        bar.bar.close()
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
                            seconds=time.perf_counter() - t0, level=float(level),
                            n_jobs=1 if executor is not None else n_jobs,
                            executor=None if executor is None else type(executor).__name__)


def _pool_context():
    """``forkserver`` (else ``spawn``): workers start from a fresh interpreter. ``fork``
    is unsafe here: a child forked from a process whose JAX (XLA) threads hold locks
    deadlocked at its first fit (the workers sat at 0 CPU)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_pool(design, pending, n_jobs, bar) -> dict[int, dict]:
    """Run ``pending`` on ``n_jobs`` local worker processes (BLAS on one thread each)."""
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=_pool_context(), initializer=_init_worker)
    try:
        out = _run_executor(pool, design, pending, bar)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


def _is_pickling_error(exc) -> bool:
    text = str(exc).lower()
    return isinstance(exc, pickle.PicklingError) or (isinstance(exc, (AttributeError, TypeError))
                                                      and ("pickle" in text or "serializ" in text))


def _send_error(executor, exc) -> SpecificationError:
    return SpecificationError(
        f"executor: {type(executor).__name__} could not run a replication ({type(exc).__name__}: {exc}); give a "
        "running executor, and a design that cloudpickle can send to other processes (generate and build may be "
        "lambdas, but they must not hold open files, locks or compiled models: build the model inside build).")


def _run_executor(executor, design, pending, bar) -> dict[int, dict]:
    """One task per replication on ``executor``; results are collected as the futures
    complete (``add_done_callback`` into a queue, which works for concurrent.futures
    and dask futures alike). A task that raises is that replication's error, except a
    design error (raised, the other tasks cancelled) and a failure to send the task."""
    token = uuid.uuid4().hex  # one study: a worker's model never serves another design
    payload = design
    if not isinstance(executor, ThreadPoolExecutor):  # cloudpickle: lambdas and closures travel too
        try:
            payload = cloudpickle.dumps(design)
        except Exception as exc:
            raise _send_error(executor, exc) from exc
    finished: queue.Queue = queue.Queue()
    futures = []
    seeds = {r: fs for r, _, fs in pending}
    try:
        for r, ss, fs in pending:
            try:
                fut = executor.submit(_run_remote, token, payload, r, ss, fs)
            except Exception as exc:
                raise _send_error(executor, exc) from exc
            fut.add_done_callback(lambda f, r=r: finished.put((r, f)))
            futures.append(fut)
        out = {}
        while len(out) < len(pending):
            r, fut = finished.get()
            try:
                rec = fut.result()
            except _DesignError:
                raise
            except Exception as exc:
                if _is_pickling_error(exc):
                    raise _send_error(executor, exc) from exc
                text = f"executor: {type(exc).__name__}: {exc}"
                if isinstance(exc, BrokenProcessPool):
                    text += f" (a worker process died: killed, e.g. for memory, or {_GUARD_HINT})"
                rec = failed_record(r, seeds[r], text)
            out[r] = rec
            bar.done(rec)
        return out
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    finally:
        if getattr(_LOCAL, "token", None) == token:  # tasks ran in this thread: drop the model now
            _LOCAL.__dict__.clear()
