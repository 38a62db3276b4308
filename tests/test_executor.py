"""run_simulation(..., executor=...): any concurrent.futures-style executor gives, for the
same seed, bit for bit the results of the local in-process run (per-replication seeds do
not depend on scheduling), failures of one task are recorded without losing the others,
failures are reported on the progress output, and bad executors get clear errors. The
dask test runs when dask.distributed is installed (the ``distributed`` extra)."""

import concurrent.futures as cf
import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm

pytestmark = pytest.mark.filterwarnings("ignore::bayesmix.exceptions.BayesmixWarning")
from bayesmix.simstudy import lca_truth
from bayesmix.simulate import simulate_lca

TAU = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2], [1.0, 1.5, 0.8, 2.0, 1.2]])
ALPHA = np.array([0.4])
ITEMS = [f"y{j}" for j in range(1, 6)]
FIT_KWARGS = {"n_starts": 3, "n_final": 1}
R = 3


# module-level functions: picklable, so process and dask workers can receive the design
def generate(rng):
    df, _ = simulate_lca(TAU, ALPHA, n_persons=150, seed=rng)
    return df, lca_truth(TAU, ALPHA)


def generate_flipped(rng):
    """The truth in the other class order: replications are realigned (permutation (1, 0))."""
    df, _ = simulate_lca(TAU, ALPHA, n_persons=150, seed=rng)
    return df, lca_truth(TAU[::-1], -ALPHA)


def generate_failing(rng):
    if rng.bit_generator.seed_seq.spawn_key == (1,):
        raise RuntimeError("boom in replication 1")
    return generate(rng)


def build(df):
    return bm.lca(df, ITEMS, n_classes=2)


DESIGN = bm.SimulationDesign("lca executor", generate_flipped, build, FIT_KWARGS)
FIT_COLS = ["rep", "loglik", "n_params", "success", "max_abs_gradient", "converged", "n_best", "permutation",
            "fit_seed", "error"]


@pytest.fixture(scope="module")
def local():
    return bm.run_simulation(DESIGN, R, seed=11, n_jobs=1, progress=False)


def assert_bitwise_equal(a, b):
    """Every estimate, SE and fit statistic identical (no tolerance)."""
    pd.testing.assert_frame_equal(a.replications, b.replications, check_exact=True)
    pd.testing.assert_frame_equal(a.fits[FIT_COLS], b.fits[FIT_COLS], check_exact=True)


def test_local_run_is_a_real_reference(local):
    """Bitwise equality to this run can fail: its replications differ from one another."""
    assert local.fits["error"].isna().all() and local.fits["converged"].all()
    assert (1, 0) in set(local.fits["permutation"])  # the alignment path is exercised
    assert len(set(local.fits["loglik"])) == R  # distinct data per replication


def test_thread_pool_is_bitwise_the_local_run(local):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        res = bm.run_simulation(DESIGN, R, seed=11, executor=ex, progress=False)
    assert_bitwise_equal(local, res)
    assert res.executor == "ThreadPoolExecutor" and "executor ThreadPoolExecutor" in str(res)


class FlakyExecutor(cf.Executor):
    """Runs tasks in this thread, in reverse submission order (completion order differs
    from replication order), and loses the task of replication ``lose`` as a dead
    worker would."""

    def __init__(self, lose=None):
        self.lose, self.queued = lose, []

    def submit(self, fn, *args, **kwargs):
        fut = cf.Future()
        self.queued.append((fut, fn, args))
        if len(self.queued) == R - 1:  # everything after the in-process replication 0
            for f, g, a in reversed(self.queued):
                if a[2] == self.lose:
                    f.set_exception(OSError(f"worker lost running replication {a[2]}"))
                else:
                    f.set_result(g(*a))
        return fut


def test_completion_order_and_a_lost_task(local, capsys):
    # replication 2 completes first, then 1 is lost: 0 and 2 are still the local run's
    res = bm.run_simulation(DESIGN, R, seed=11, executor=FlakyExecutor(lose=1), progress=True)
    fits = res.fits.set_index("rep")
    assert fits.loc[1, "error"] == "executor: OSError: worker lost running replication 1"
    assert not fits.loc[1, "converged"] and fits.loc[1, "fit_seed"] == local.fits["fit_seed"][1]
    kept = local.replications[local.replications["rep"] != 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.replications.reset_index(drop=True), kept, check_exact=True)
    assert res.n_failed == 1
    out = capsys.readouterr()
    assert "lca executor: replication 1 failed: executor: OSError: worker lost" in out.out + out.err


def test_unpicklable_design_is_a_clear_error():
    lock = threading.Lock()  # cloudpickle cannot send a lock: refused in this process, before any task

    def build_locked(df):
        with lock:
            return build(df)

    design = bm.SimulationDesign("locked", lambda rng: generate(rng), build_locked, FIT_KWARGS)
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        with pytest.raises(bm.SpecificationError, match=r"executor: ProcessPoolExecutor could not run a "
                                                         r"replication \(TypeError: .*lock.*\); .*cloudpickle"):
            bm.run_simulation(design, 2, seed=1, executor=ex, progress=False)


def test_bad_executor_arguments():
    with pytest.raises(bm.SpecificationError, match=r"executor: got object; give an object with submit"):
        bm.run_simulation(DESIGN, 2, executor=object(), progress=False)
    with cf.ThreadPoolExecutor(1) as ex:
        with pytest.raises(bm.SpecificationError, match=r"n_jobs: got 2 with an executor; give one of"):
            bm.run_simulation(DESIGN, 2, n_jobs=2, executor=ex, progress=False)


# --------------------------------------------------------------------------- dask.distributed
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_cluster_is_bitwise_the_local_run(local, dask_client):
    res = bm.run_simulation(DESIGN, R, seed=11, executor=dask_client, progress=False)
    assert_bitwise_equal(local, res)
    assert res.executor == "Client"


def test_dask_failed_replication_keeps_the_others(dask_client):
    # lambdas travel (cloudpickle); get_executor() is the concurrent.futures face of the client
    design = bm.SimulationDesign("failing", lambda rng: generate_failing(rng), lambda df: build(df), FIT_KWARGS)
    res = bm.run_simulation(design, R, seed=5, executor=dask_client.get_executor(), progress=False)
    fits = res.fits.set_index("rep")
    assert fits.loc[1, "error"] == "generate: RuntimeError: boom in replication 1"
    assert fits["error"].isna().tolist() == [True, False, True] and fits["converged"].tolist() == [True, False, True]
    assert sorted(res.replications["rep"].unique()) == [0, 2]
