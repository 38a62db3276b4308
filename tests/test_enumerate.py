"""Class enumeration (bayesmix.enumerate): the table, the VLMR / adjusted LMR test
against an independent computation of the published formula (Vuong 1989 eq. 3.6;
Lo, Mendell & Rubin 2001 eq. 15), the weighted chi-square tail, and the BLRT."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import stats

import bayesmix as bm
from bayesmix.enumerate import bootstrap_lrt, enumerate_classes, vlmr_test, weighted_chi2_sf
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca

ITEMS = [f"y{i}" for i in range(1, 6)]


def build(df, k):
    return bm.lca(df, ITEMS, n_classes=k)


@pytest.fixture(scope="module")
def two_class_data():
    # two well separated classes: P(y=1) = 0.12 vs 0.88 on five items, N = 150
    tau = np.array([[-2.0] * 5, [2.0] * 5])
    df, _ = simulate_lca(tau, np.array([0.0]), n_persons=150, seed=3)
    return df


@pytest.fixture(scope="module")
def table(two_class_data):
    with pytest.warns(bm.BayesmixWarning):  # the 3-class fit has thresholds at their bounds
        return enumerate_classes(build, two_class_data, range(1, 4), n_starts=4, n_final=2, seed=0,
                                 progress=False)


# --------------------------------------------------------------------------- weighted chi-square
def test_weighted_chi2_equal_weights_is_chi2():
    for m, x in ((1, 0.3), (3, 2.0), (6, 12.6), (10, 4.0)):
        assert weighted_chi2_sf(x, np.ones(m)) == pytest.approx(stats.chi2.sf(x, m), abs=1e-7)
    # scaling: 2 * chi2(4) exceeds x when chi2(4) exceeds x / 2
    assert weighted_chi2_sf(5.0, [2.0] * 4) == pytest.approx(stats.chi2.sf(2.5, 4), abs=1e-7)


def test_weighted_chi2_mixed_weights_monte_carlo():
    w = np.array([1.3, 0.8, 0.2, -0.4])
    z = np.random.default_rng(1).standard_normal((1_000_000, w.size))
    q = (z ** 2) @ w
    for x in (-0.5, 0.5, 2.0, 5.0):
        mc = np.mean(q > x)
        se = np.sqrt(mc * (1 - mc) / q.size)
        assert abs(weighted_chi2_sf(x, w) - mc) < 5 * se + 1e-4, x


# --------------------------------------------------------------------------- VLMR, independently
def _derivatives(res, rel_step=1e-4):
    """Per-unit scores and the Hessian by central differences of the per-unit
    log-likelihood and of the gradient (a step 10x the package's), over the free
    parameters not held at a bound."""
    comp = compiled(res.model)
    theta = np.asarray(res.theta, float)
    fixed = set(res.convergence["fixed_at_bound"])
    free = [i for i, lab in enumerate(comp.packing.labels()) if lab not in fixed]
    scores, hess = [], []
    for i in free:
        h = rel_step * (1 + abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        scores.append((comp.unit_loglik(up) - comp.unit_loglik(down)) / (2 * h))
        hess.append((comp.ll_and_grad(up)[1][free] - comp.ll_and_grad(down)[1][free]) / (2 * h))
    hess = np.array(hess)
    return np.array(scores).T, (hess + hess.T) / 2


def independent_vlmr(null, alt, n_mc=1_000_000):
    """Vuong (1989) eq. 3.6 written out: W = [[-B_f A_f^-1, -B_fg A_g^-1], [B_gf A_f^-1, B_g A_g^-1]],
    A the mean Hessian, B the mean outer products of the per-unit scores; the tail of
    sum lambda_i Z_i^2 by Monte Carlo."""
    s_f, h_f = _derivatives(alt)
    s_g, h_g = _derivatives(null)
    n = s_f.shape[0]
    a_f, a_g = h_f / n, h_g / n
    b_f, b_g, b_fg = s_f.T @ s_f / n, s_g.T @ s_g / n, s_f.T @ s_g / n
    w = np.block([[-b_f @ np.linalg.inv(a_f), -b_fg @ np.linalg.inv(a_g)],
                  [b_fg.T @ np.linalg.inv(a_f), b_g @ np.linalg.inv(a_g)]])
    lam = np.sort(np.linalg.eigvals(w).real)[::-1]
    lr = 2 * (alt.loglik - null.loglik)
    z2 = np.random.default_rng(7).standard_normal((n_mc, lam.size)) ** 2
    q = z2 @ lam
    df = alt.n_params - null.n_params
    lr_adj = lr / (1 + 1 / (df * np.log(alt.n_obs)))  # LMR (2001) eq. 15
    return {"eigenvalues": lam, "mean": np.trace(w), "p": np.mean(q > lr), "p_adj": np.mean(q > lr_adj),
            "lr": lr, "lr_adj": lr_adj, "n_mc": n_mc}


@pytest.mark.parametrize("k", [2, 3])
def test_vlmr_matches_independent_formula(table, k):
    fits = table.fits
    test = table.tests[k]["lmr"]
    ref = independent_vlmr(fits[k - 1], fits[k])
    scale = np.max(np.abs(ref["eigenvalues"]))
    np.testing.assert_allclose(test.eigenvalues, ref["eigenvalues"], atol=1e-4 * scale)
    assert test.mean == pytest.approx(ref["mean"], abs=1e-4 * scale)
    assert test.statistic == pytest.approx(ref["lr"], abs=1e-9)
    assert test.adjusted_statistic == pytest.approx(ref["lr_adj"], abs=1e-9)
    for got, want in ((test.p_value, ref["p"]), (test.adjusted_p_value, ref["p_adj"])):
        se = np.sqrt(max(want * (1 - want), 1e-12) / ref["n_mc"])
        assert abs(got - want) < 5 * se + 2e-4
    row = table.table.set_index("k").loc[k]
    assert row["lmr_p"] == test.p_value and row["lmr_adjusted_p"] == test.adjusted_p_value


def test_vlmr_small_for_two_separated_classes(table):
    t = table.tests[2]["lmr"]
    assert t.statistic > 200 and t.p_value < 1e-6 and t.adjusted_p_value < 1e-6
    # correct specification: the null distribution's mean is close to the parameter difference
    assert t.mean == pytest.approx(t.df, abs=1.0)
    assert "VUONG-LO-MENDELL-RUBIN" in str(t)


def test_vlmr_refuses_wrong_order(table):
    fits = table.fits
    with pytest.raises(bm.SpecificationError, match="fewer classes first"):
        vlmr_test(fits[2], fits[1])


# --------------------------------------------------------------------------- the table
def test_table_columns_and_criteria(table):
    fits = table.fits
    tab = table.table
    assert list(tab["k"]) == [1, 2, 3]
    for _, row in tab.iterrows():
        res = fits[row["k"]]
        # AIC, BIC, aBIC from their definitions (Akaike; Schwarz; Sclove 1987, n* = (n + 2) / 24)
        assert row["aic"] == pytest.approx(-2 * res.loglik + 2 * res.n_params)
        assert row["bic"] == pytest.approx(-2 * res.loglik + res.n_params * np.log(150))
        assert row["abic"] == pytest.approx(-2 * res.loglik + res.n_params * np.log(152 / 24))
        finals = res.starts["loglik_final"].dropna().to_numpy()
        assert row["n_best"] == np.sum(np.abs(finals - finals.max()) < 1e-3)
    assert np.isnan(tab.loc[0, "lmr_p"]) and tab["blrt_p"].isna().all()
    assert tab.loc[0, "smallest_class"] == 1.0 and tab.loc[1, "smallest_class"] == pytest.approx(0.5, abs=0.1)
    picks = table.picks
    assert picks["bic"] == 2 and picks["lmr"] == 2
    assert "BIC" in tab.loc[1, "picked_by"] and "BIC" not in tab.loc[2, "picked_by"]
    assert "CLASS ENUMERATION" in str(table)


def test_bad_k_range(two_class_data):
    with pytest.raises(bm.SpecificationError, match="k_range"):
        enumerate_classes(build, two_class_data, [2, 1])


def test_blrt_executor_matches_serial(table, two_class_data):
    fits = table.fits
    kw = dict(n_boot=1, n_starts=2, n_final=1, seed=5, progress=False)
    serial = bootstrap_lrt(build, two_class_data, fits[1], fits[2], **kw)
    with ThreadPoolExecutor(max_workers=1) as ex:
        par = bootstrap_lrt(build, two_class_data, fits[1], fits[2], executor=ex, **kw)
    assert serial.replicates["error"].isna().all(), serial.replicates
    np.testing.assert_array_equal(serial.replicates["statistic"], par.replicates["statistic"])
    # under the one-class null the replicate LRs are far below the observed 2 x 140
    assert (serial.replicates["statistic"] < 0.2 * serial.statistic).all()


# --------------------------------------------------------------------------- BLRT (slow)
@pytest.mark.slow
def test_blrt_small_for_true_k_not_small_above(two_class_data):
    """B = 19 replicates with 4 starts (2 completed) each, seed 0 (+K): a fixed draw.
    Under 2 vs 3 classes the BLRT p is uniform on {1/20, ..., 1}; the assertion
    p > 0.1 fails for 2 of the 20 values (probability 0.1 for a random seed)."""
    with pytest.warns(bm.BayesmixWarning):
        tab = enumerate_classes(build, two_class_data, range(1, 4), n_starts=4, n_final=2, seed=0, blrt=True,
                                n_boot=19, alpha=0.1, progress=False)
    p = tab.table.set_index("k")["blrt_p"]
    assert p[2] == pytest.approx(1 / 20)  # no replicate reached the observed LR
    assert p[3] > 0.1
    assert tab.picks["blrt"] == 2
    assert "BOOTSTRAPPED LRT" in str(tab.tests[2]["blrt"])
    assert tab.tests[2]["blrt"].n_boot == 19


# --------------------------------------------------------------------------- another family: the LTA
@pytest.fixture(scope="module")
def lta_case():
    from bayesmix.families.examples import example_data

    df = example_data()  # the registry's tiny data: 48 persons, binary items
    df["y2b"] = df["y2"].to_numpy()[::-1]
    df["y3b"] = df["y3"].to_numpy()[::-1]
    items = {"t1": ["y1", "y2", "y3"], "t2": ["y4", "y2b", "y3b"]}

    def build_lta(d, k):
        return bm.lta(d, items, k)

    return build_lta, df


@pytest.fixture(scope="module")
def lta_enum(lta_case):
    build_lta, df = lta_case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)  # starts warnings on 48 persons
        return enumerate_classes(build_lta, df, range(1, 3), n_starts=3, n_final=2, progress=False)


def test_lta_vlmr_matches_independent_formula(lta_enum):
    t = lta_enum.tests[2]["lmr"]
    ref = independent_vlmr(lta_enum.fits[1], lta_enum.fits[2])
    scale = np.max(np.abs(ref["eigenvalues"]))
    np.testing.assert_allclose(t.eigenvalues, ref["eigenvalues"], atol=1e-4 * scale)
    se = np.sqrt(ref["p"] * (1 - ref["p"]) / ref["n_mc"])
    assert abs(t.p_value - ref["p"]) < 5 * se + 2e-4
    assert lta_enum.table["n_params"].tolist() == [lta_enum.fits[1].n_params, lta_enum.fits[2].n_params]


@pytest.mark.slow
def test_lta_blrt_runs(lta_case, lta_enum):
    """The BLRT machinery (simulate -> data frame -> rebuild -> refit) on the LTA's
    wide occasion columns: every replicate succeeds and p is on its grid."""
    build_lta, df = lta_case
    b = bootstrap_lrt(build_lta, df, lta_enum.fits[1], lta_enum.fits[2], n_boot=3, n_starts=2, n_final=1,
                      progress=False)
    assert b.replicates["error"].isna().all(), b.replicates
    assert b.p_value in {0.25, 0.5, 0.75, 1.0}
    assert np.isfinite(b.replicates["statistic"]).all()


def test_summary_prints_the_tests_computed(table):
    """TECH11 lines in the K-class summary, numbers parsed back = the table's."""
    import re

    res = table.fits[2]
    text = res.summary()
    assert "TECHNICAL 11 OUTPUT" in text and "TECHNICAL 14" not in text
    p = float(re.search(r"TEST FOR 1 \(H0\) VERSUS 2 CLASSES\n(?:.*\n){3}\s+P-Value\s+([0-9.]+)", text).group(1))
    assert p == pytest.approx(table.table.loc[1, "lmr_p"], abs=5e-5)
    assert "TECHNICAL 11" not in table.fits[1].summary()
