"""Simulation studies (bayesmix.simstudy): bitwise reproducibility whatever n_jobs, label
alignment to the truth, summary formulas against a hand computation, failed
replications, model reuse through set_data, and argument errors."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.simstudy import SimulationResult, align_to_truth, lca_truth, summarize
from bayesmix.simulate import simulate_lca

# class 1 endorses every item with high probability (P(y=1|c) = 1 - expit(tau))
TAU = np.array([[-1.5, -1.0, -2.0, -0.5, -1.2], [1.0, 1.5, 0.8, 2.0, 1.2]])
ALPHA = np.array([0.4])
ITEMS = [f"y{j}" for j in range(1, 6)]
FIT_KWARGS = {"n_starts": 4, "n_final": 2}
R = 3


def generate(rng):
    df, _ = simulate_lca(TAU, ALPHA, n_persons=200, seed=rng)
    return df, lca_truth(TAU, ALPHA)


def generate_flipped(rng):
    """Same data, truth listed with the classes in the opposite order."""
    df, _ = simulate_lca(TAU, ALPHA, n_persons=200, seed=rng)
    return df, lca_truth(TAU[::-1], -ALPHA)


def build(df):
    return bm.lca(df, ITEMS, n_classes=2)


DESIGN = bm.SimulationDesign("lca K=2", generate, build, FIT_KWARGS)


@pytest.fixture(scope="module")
def serial():
    return bm.run_simulation(DESIGN, R, seed=5, n_jobs=1, progress=False)


@pytest.fixture(scope="module")
def parallel():
    return bm.run_simulation(DESIGN, R, seed=5, n_jobs=2, progress=False)


@pytest.fixture(scope="module")
def flipped():
    design = bm.SimulationDesign("lca K=2 flipped truth", generate_flipped, build, FIT_KWARGS)
    return bm.run_simulation(design, R, seed=5, n_jobs=1, progress=False)


@pytest.fixture(scope="module")
def model():
    df, _ = generate(np.random.default_rng(0))
    return build(df)


# --------------------------------------------------------------------------- 1. reproducibility
def test_identical_whatever_n_jobs(serial, parallel):
    # bit for bit: the workers (fresh processes) compile the same graphs from the same seeds
    pd.testing.assert_frame_equal(serial.replications, parallel.replications, check_exact=True)
    for col in ["loglik", "max_abs_gradient", "n_best", "permutation", "fit_seed", "converged"]:
        assert serial.fits[col].tolist() == parallel.fits[col].tolist()
    assert parallel.n_jobs == 2 and serial.n_jobs == 1


def test_result_tables(serial):
    assert serial.fits["rep"].tolist() == list(range(R))
    assert serial.fits["error"].isna().all()
    assert serial.fits["converged"].all()
    assert (serial.fits["max_abs_gradient"] < 1e-3).all()
    assert set(serial.fits.columns) >= {"rep", "loglik", "n_params", "success", "max_abs_gradient", "converged",
                                        "n_best", "seconds", "permutation", "warnings", "error"}
    assert len(serial.replications) == R * 13  # 10 thresholds, alpha, 2 class shares
    assert serial.replications["truth"].notna().all()
    summ = serial.summary()
    assert summ.index.tolist() == list(lca_truth(TAU, ALPHA))
    assert (summ["n"] == R).all() and (summ["converged_share"] == 1.0).all()
    text = str(serial)
    assert "lca K=2" in text and "coverage" in text and "alpha[1]" in text
    assert repr(serial) == text
    # the seed of a replication does not depend on n_reps
    again = bm.run_simulation(bm.SimulationDesign("one", generate, build, FIT_KWARGS), 1, seed=5, n_jobs=1,
                              progress=False)
    first = serial.replications[serial.replications["rep"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.replications, first)


# --------------------------------------------------------------------------- 2. label switching
def test_alignment_flips_to_the_truth_order(serial, flipped):
    for p_a, p_b in zip(serial.fits["permutation"], flipped.fits["permutation"]):
        assert {p_a, p_b} == {(0, 1), (1, 0)}
    assert (1, 0) in set(flipped.fits["permutation"]) | set(serial.fits["permutation"])
    # same data and fits: the aligned estimates of one are the other's, class order swapped
    a = serial.replications.set_index(["rep", "label"])
    b = flipped.replications.set_index(["rep", "label"])
    for r in range(R):
        for j in ITEMS:
            for c, c_other in ((1, 2), (2, 1)):
                ea, eb = a.loc[(r, f"tau[{c}, {j}$1]")], b.loc[(r, f"tau[{c_other}, {j}$1]")]
                assert eb["estimate"] == pytest.approx(ea["estimate"], abs=1e-6)
                assert eb["se"] == pytest.approx(ea["se"], rel=1e-4)
        assert b.loc[(r, "alpha[1]"), "estimate"] == pytest.approx(-a.loc[(r, "alpha[1]"), "estimate"], abs=1e-6)
        assert b.loc[(r, "alpha[1]"), "se"] == pytest.approx(a.loc[(r, "alpha[1]"), "se"], rel=1e-4)
    # after alignment the estimates are close to the (flipped) truth
    err = (flipped.replications["estimate"] - flipped.replications["truth"]).abs()
    assert err.max() < 1.5
    assert (flipped.summary()["bias"].abs() < 1.0).all()
    est = flipped.replications["estimate"].to_numpy()
    other_order = flipped.replications["label"].map(lca_truth(TAU, ALPHA)).to_numpy()
    assert np.sum((est - flipped.replications["truth"].to_numpy()) ** 2) < np.sum((est - other_order) ** 2) / 10


def test_align_to_truth_on_a_constructed_point(model):
    point = {"tau": TAU.copy(), "alpha": ALPHA.copy()}
    perm, same, dist = align_to_truth(model, point, lca_truth(TAU, ALPHA))
    assert perm == (0, 1) and dist == pytest.approx(0.0, abs=1e-16)
    np.testing.assert_array_equal(same["tau"], TAU)
    perm, new, dist = align_to_truth(model, point, lca_truth(TAU[::-1], -ALPHA))
    assert perm == (1, 0)
    assert dist == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(new["tau"], TAU[::-1])
    np.testing.assert_allclose(new["alpha"], -ALPHA)
    # only part of the truth given: thresholds of one class decide
    perm, _, _ = align_to_truth(model, point, {"tau[1, y1$1]": 1.0, "tau[1, y2$1]": 1.5})
    assert perm == (1, 0)


# --------------------------------------------------------------------------- 3. summary formulas
def test_summary_against_hand_computation():
    rng = np.random.default_rng(1)
    n_rep = 7
    est_a = 0.5 + rng.normal(0, 0.3, n_rep)
    se_a = np.abs(rng.normal(0.3, 0.1, n_rep))
    se_a[2] = np.nan  # fixed at a bound: no SE
    est_b = -1.0 + rng.normal(0, 0.2, n_rep)
    se_b = np.full(n_rep, 0.05)  # too small: low coverage
    reps = pd.DataFrame({
        "rep": np.repeat(np.arange(n_rep), 3),
        "label": ["a", "b", "c"] * n_rep,
        "estimate": np.column_stack([est_a, est_b, np.zeros(n_rep)]).ravel(),
        "se": np.column_stack([se_a, se_b, np.ones(n_rep)]).ravel(),
        "truth": np.column_stack([np.full(n_rep, 0.5), np.full(n_rep, -1.0), np.full(n_rep, np.nan)]).ravel(),
    })
    converged = np.ones(n_rep, bool)
    converged[[1, 4]] = False  # left out
    fits = pd.DataFrame({"rep": np.arange(n_rep), "converged": converged,
                         "error": [None] * n_rep})
    res = SimulationResult(name="synthetic", replications=reps, fits=fits, level=0.9)
    summ = res.summary()
    assert summ.index.tolist() == ["a", "b"]  # "c" has no truth
    z = stats.norm.ppf(0.95)
    for lab, est, se, truth in (("a", est_a, se_a, 0.5), ("b", est_b, se_b, -1.0)):
        e, s = est[converged], se[converged]
        n = e.size
        sq = (e - truth) ** 2
        ok = ~np.isnan(s)
        row = summ.loc[lab]
        assert row["n"] == n == 5
        assert row["truth"] == pytest.approx(truth)
        assert row["mean"] == pytest.approx(np.mean(e))
        assert row["bias"] == pytest.approx(np.mean(e) - truth)
        assert row["sd"] == pytest.approx(np.std(e, ddof=1))
        assert row["mean_se"] == pytest.approx(np.mean(s[ok]))
        assert row["mse"] == pytest.approx(np.mean(sq))
        assert row["mse_mcse"] == pytest.approx(np.std(sq, ddof=1) / np.sqrt(n))
        cover = np.mean((e[ok] - z * s[ok] <= truth) & (truth <= e[ok] + z * s[ok]))
        assert row["coverage"] == pytest.approx(cover)
        assert row["converged_share"] == pytest.approx(5 / 7)
    # the level can be changed at summary time
    z95 = stats.norm.ppf(0.975)
    e, s = est_b[converged], se_b[converged]
    assert res.summary(level=0.95).loc["b", "coverage"] == pytest.approx(np.mean(np.abs(e + 1.0) <= z95 * s))
    assert summarize(reps, fits, 0.9).equals(summ)
    assert "synthetic" in str(res)


# --------------------------------------------------------------------------- 4. failures
def generate_failing(rng):
    if rng.bit_generator.seed_seq.spawn_key == (1,):
        raise RuntimeError("boom in replication 1")
    return generate(rng)


def test_failed_replication_is_recorded():
    design = bm.SimulationDesign("failing", generate_failing, build, FIT_KWARGS)
    res = bm.run_simulation(design, 3, seed=5, n_jobs=2, progress=False)  # rep 1 fails in a worker
    err = res.fits.set_index("rep")["error"]
    assert "boom in replication 1" in err[1] and err[1].startswith("generate: RuntimeError")
    assert err[[0, 2]].isna().all()
    assert res.fits.set_index("rep")["converged"].tolist() == [True, False, True]
    assert sorted(res.replications["rep"].unique()) == [0, 2]
    assert (res.summary()["n"] == 2).all()
    assert res.summary()["converged_share"].iloc[0] == pytest.approx(2 / 3)
    assert res.n_failed == 1 and "boom" in str(res)


# --------------------------------------------------------------------------- model reuse (set_data)
def test_set_data_reuses_the_model_and_falls_back_to_build():
    fixed_df, _ = generate(np.random.default_rng(0))
    calls = {"build": 0, "set_data": 0}

    def gen_fixed(rng):
        return fixed_df, {"alpha[1]": 0.4}

    def build_with_set_data(df, works=True):
        calls["build"] += 1
        m = build(df)

        class Swappable(type(m)):  # a family that declares set_data (FamilyModel.can_set_data)
            can_set_data = True

            def set_data(self, new):  # the data never change here, so a no-op is a correct swap
                calls["set_data"] += 1
                if not works:
                    raise bm.SpecificationError("set_data: different structure")

        m.__class__ = Swappable
        return m

    res = bm.run_simulation(bm.SimulationDesign("reuse", gen_fixed, build_with_set_data, FIT_KWARGS), 3,
                            n_jobs=1, progress=False)
    assert calls == {"build": 1, "set_data": 2}
    assert res.fits["converged"].all()
    est = res.replications.pivot(index="rep", columns="label", values="estimate")["class_share[1]"]
    assert est.max() - est.min() < 1e-6  # same data, same optimum

    calls.update(build=0, set_data=0)
    design = bm.SimulationDesign("fallback", gen_fixed, lambda df: build_with_set_data(df, works=False), FIT_KWARGS)
    res = bm.run_simulation(design, 3, n_jobs=1, progress=False)
    assert calls == {"build": 3, "set_data": 2}
    assert res.fits["error"].isna().all()


# --------------------------------------------------------------------------- 5. errors
@pytest.mark.parametrize("kwargs, match", [
    ({"n_reps": 0}, r"n_reps: got 0; give an integer >= 1"),
    ({"n_reps": 2.5}, r"n_reps: got 2.5"),
    ({"n_jobs": 0}, r"n_jobs: got 0; give an integer >= 1 or None"),
    ({"n_jobs": "2"}, r"n_jobs: got '2'"),
    ({"level": 1.5}, r"level: got 1.5; give a number between 0 and 1"),
])
def test_bad_arguments(kwargs, match):
    args = {"n_reps": 2} | kwargs
    n_reps = args.pop("n_reps")
    with pytest.raises(bm.SpecificationError, match=match):
        bm.run_simulation(DESIGN, n_reps, progress=False, **args)


def test_bad_designs():
    with pytest.raises(bm.SpecificationError, match=r"design: got str"):
        bm.run_simulation("lca", 2, progress=False)
    bad_kw = bm.SimulationDesign("x", generate, build, {"seed": 1})
    with pytest.raises(bm.SpecificationError, match=r"design.fit_kwargs: got \['seed'\]"):
        bm.run_simulation(bad_kw, 2, progress=False)
    only_df = bm.SimulationDesign("x", lambda rng: generate(rng)[0], build, FIT_KWARGS)
    with pytest.raises(bm.SpecificationError, match=r"design.generate: got DataFrame .*give a function"):
        bm.run_simulation(only_df, 4, n_jobs=2, progress=False)
    array_truth = bm.SimulationDesign("x", lambda rng: (generate(rng)[0], {"tau": TAU}), build, FIT_KWARGS)
    with pytest.raises(bm.SpecificationError, match=r"truth\['tau'\]: got ndarray \(2, 5\); give one number"):
        bm.run_simulation(array_truth, 2, n_jobs=1, progress=False)

    def bad_in_rep_2(rng):  # a design error found in a worker stops the study
        df, truth = generate(rng)
        return (df, truth) if rng.bit_generator.seed_seq.spawn_key != (2,) else [df, truth]

    with pytest.raises(bm.SpecificationError, match=r"design.generate: got list \(replication 2\)"):
        bm.run_simulation(bm.SimulationDesign("x", bad_in_rep_2, build, FIT_KWARGS), 3, n_jobs=2, progress=False)


def test_unknown_truth_labels_raise_after_first_fit():
    def gen(rng):
        df, truth = generate(rng)
        return df, truth | {"tau[3, y1$1]": 0.0, "gamma[1]": 1.0}

    calls = []
    design = bm.SimulationDesign("x", gen, lambda df: calls.append(1) or build(df), FIT_KWARGS)
    with pytest.raises(bm.SpecificationError) as info:
        bm.run_simulation(design, 5, n_jobs=2, progress=False)
    msg = str(info.value)
    assert "['tau[3, y1$1]', 'gamma[1]']" in msg and "not in the parameter table" in msg
    assert "alpha[1]" in msg and "tau[2, y5$1]" in msg  # the valid labels are listed
    assert len(calls) == 1  # raised on the first replication, before any worker
