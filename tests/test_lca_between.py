"""Between-level latent class LCA (paper section 5, eq. 16-17; Model 5 vs Model 6).

The likelihood is checked against an independent numpy computation that
enumerates every assignment of one class to each cluster (K^J terms): nothing
expected here is computed with bayesmix.
"""

from __future__ import annotations

import itertools
import types

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmix
from bayesmix.fit.compiled import compiled
from bayesmix.simulate import simulate_lca

pytestmark = pytest.mark.filterwarnings("ignore:The same einsum subscript:UserWarning")

ITEMS = ["i1", "i2", "i3", "i4"]


# ============================================================================ brute force


def brute_parts(df, raw, k, covariate="w", cluster="school"):
    """Per cluster label (in order of first appearance): (log_f_j (K,), log prior (K,)).

    Binary items: P(y = 1 | c) = 1 - expit(tau_c); missing cells skipped;
    P(C_j = c | w_j) = softmax(alpha_c + beta_c w_j) with the last class as reference.
    """
    labels = list(dict.fromkeys(df[cluster]))
    tau = np.asarray(raw["tau"], dtype=float)
    out = []
    for lab in labels:
        rows = df[df[cluster] == lab]
        log_f = np.zeros(k)
        for _, r in rows.iterrows():
            for p, it in enumerate(ITEMS):
                y = r[it]
                if np.isnan(y):
                    continue
                p1 = 1.0 / (1.0 + np.exp(tau[:, p]))
                log_f += np.log(p1 if y == 1 else 1.0 - p1)
        if k == 1:
            log_prior = np.zeros(1)
        else:
            w = rows[covariate].iloc[0] if "beta" in raw else 0.0
            logit = np.append(raw["alpha"] + (raw["beta"][:, 0] * w if "beta" in raw else 0.0), 0.0)
            log_prior = logit - special.logsumexp(logit)
        out.append((log_f, log_prior))
    return labels, out


def brute_total_loglik(parts, k):
    """log of the sum over all K^J assignments (c_1..c_J) of prod_j P(c_j) f(y_j | c_j)."""
    terms = []
    for assign in itertools.product(range(k), repeat=len(parts)):
        terms.append(sum(lp[c] + lf[c] for (lf, lp), c in zip(parts, assign)))
    return special.logsumexp(terms)


def brute_cluster_posterior(parts, k):
    """(J, K) P(C_j = c | data) by summing the K^J assignments with c_j = c."""
    j_n = len(parts)
    num = np.full((j_n, k), -np.inf)
    terms = []
    for assign in itertools.product(range(k), repeat=j_n):
        t = sum(lp[c] + lf[c] for (lf, lp), c in zip(parts, assign))
        terms.append(t)
        for j, c in enumerate(assign):
            num[j, c] = np.logaddexp(num[j, c], t)
    return np.exp(num - special.logsumexp(terms))


# ============================================================================ data / models


def tiny_frame(missing: bool) -> pd.DataFrame:
    """4 clusters (labels not sorted) x 3 persons, 4 binary items, cluster covariate w."""
    rng = np.random.default_rng(11)
    df = pd.DataFrame((rng.random((12, 4)) < 0.5).astype(float), columns=ITEMS)
    df.insert(0, "school", np.repeat(["s3", "s1", "s4", "s2"], 3))
    df["w"] = np.repeat([0.4, -1.1, 1.7, 0.2], 3)
    if missing:
        df.loc[1, "i2"] = np.nan
        df.loc[5, ["i1", "i4"]] = np.nan
        df.loc[9, "i3"] = np.nan
    return df


def random_raw(comp, rng):
    out = {}
    for name, shape in zip(comp.packing.names, comp.packing.shapes):
        out[name] = rng.normal(0.0, {"beta": 0.8}.get(name, 1.2), size=shape)
    return out


CASES = {"K2": (2, False), "K3": (3, False), "K2-missing": (2, True)}


@pytest.fixture(scope="module", params=list(CASES))
def between_case(request):
    k, missing = CASES[request.param]
    df = tiny_frame(missing)
    m = bayesmix.lca(df, ITEMS, k, cluster="school", covariates=["w"], class_level="between")
    comp = compiled(m)
    rng = np.random.default_rng(7 + k + 10 * missing)
    raws = [random_raw(comp, rng) for _ in range(3)]
    return m, comp, df, k, raws


@pytest.fixture(scope="module")
def k2_between():
    """The K = 2 between model of the complete tiny data (compiled once)."""
    df = tiny_frame(False)
    m = bayesmix.lca(df, ITEMS, 2, cluster="school", covariates=["w"], class_level="between")
    return m, compiled(m), df


# ============================================================================ 1. brute force


def test_between_spec_and_parameters(between_case):
    m, comp, df, k, _ = between_case
    assert m.class_level == "between" and m.spec.class_level == "between"
    assert not m.spec.random_intercepts and m.is_two_level
    assert m.free_names == ["tau", "alpha", "beta"]
    assert m.unit_dim == "cluster"


def test_between_loglik_vs_enumeration_of_cluster_classes(between_case):
    m, comp, df, k, raws = between_case
    for raw in raws:
        theta = comp.packing.pack(raw)
        labels, parts = brute_parts(df, raw, k)
        assert list(m.data.cluster_labels) == labels
        per_cluster = np.array([special.logsumexp(lf + lp) for lf, lp in parts])
        got = comp.unit_loglik(theta)
        assert got.shape == (4,)
        np.testing.assert_allclose(got, per_cluster, rtol=0, atol=1e-8)
        ll, _ = comp.ll_and_grad(theta)
        assert abs(ll - brute_total_loglik(parts, k)) < 1e-8


def test_between_gradient_vs_finite_differences_of_brute_force(between_case):
    m, comp, df, k, raws = between_case
    theta = comp.packing.pack(raws[0])
    _, grad = comp.ll_and_grad(theta)
    h = 1e-6
    for p in range(theta.size):
        e = np.zeros_like(theta)
        e[p] = h
        up = brute_total_loglik(brute_parts(df, comp.packing.unpack(theta + e), k)[1], k)
        down = brute_total_loglik(brute_parts(df, comp.packing.unpack(theta - e), k)[1], k)
        assert grad[p] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-6), comp.packing.labels()[p]


def test_between_membership_and_class_share_vs_brute_force(between_case):
    m, comp, df, k, raws = between_case
    raw = raws[1]
    theta = comp.packing.pack(raw)
    _, parts = brute_parts(df, raw, k)
    expected = brute_cluster_posterior(parts, k)
    got = comp.cluster_membership(theta)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # each person carries its cluster's posterior
    np.testing.assert_allclose(comp.membership(theta), expected[m.data.cluster_idx], atol=1e-10)
    share = np.mean([np.exp(lp) for _, lp in parts], axis=0)
    np.testing.assert_allclose(comp.reported(theta)["class_share"], share, atol=1e-12)


# ============================================================================ 2-3. identities


def test_k1_between_equals_k1_within():
    df = tiny_frame(True)
    within = compiled(bayesmix.lca(df, ITEMS, 1, cluster="school"))
    between = compiled(bayesmix.lca(df, ITEMS, 1, cluster="school", class_level="between"))
    raw = {"tau": np.array([[0.3, -0.7, 1.1, 0.2]])}
    np.testing.assert_allclose(between.unit_loglik(between.packing.pack(raw)),
                               within.unit_loglik(within.packing.pack(raw)), rtol=0, atol=1e-12)


def test_within_lca_with_huge_intercept_variance_tends_to_between_lca(k2_between):
    """Model 5 is nested in Model 6 (eq. 21): as Var(alpha_1j) -> infinity, the
    persons of a cluster share their class. The within model's class-1 share is
    then P(alpha_1 + u_j > 0) = Phi(alpha_1 / sd), so alpha_1 = sd * Phi^-1(share).
    The gap closes like 1/sd (the mass of u_j where the class logit is not
    decisive); the trapezoid grid must resolve a logit width of 1/sd in z."""
    m_b, comp_b, df = k2_between
    within = bayesmix.lca(df, ITEMS, 2, cluster="school", random_intercepts=True,
                          integration=bayesmix.Integration("trapezoid", n_points=8001, bound=8.0))
    comp_w = compiled(within)
    tau = np.array([[-1.2, 0.4, -0.8, 1.5], [1.0, -0.6, 0.9, -1.3]])
    alpha_b = 0.7
    ll_b = comp_b.ll_and_grad(comp_b.packing.pack({"tau": tau, "alpha": [alpha_b], "beta": [[0.0]]}))[0]
    gaps = {}
    for sd in (30.0, 100.0, 1000.0):
        alpha_w = sd * stats.norm.ppf(special.expit(alpha_b))
        theta = comp_w.packing.pack({"tau": tau, "alpha": [alpha_w], "chol_log_diag": [np.log(sd)]})
        gaps[sd] = comp_w.ll_and_grad(theta)[0] - ll_b
    assert 0 < gaps[1000.0] < 1e-2
    assert gaps[30.0] > gaps[100.0] > gaps[1000.0] > 0
    # O(1/sd): sd * gap is (nearly) constant
    assert 100.0 * gaps[100.0] == pytest.approx(1000.0 * gaps[1000.0], rel=0.05)


# ============================================================================ 4. errors


def test_between_without_cluster_is_refused():
    with pytest.raises(bayesmix.SpecificationError, match="class_level: got 'between' without a cluster") as e:
        bayesmix.lca(tiny_frame(False), ITEMS, 2, class_level="between")
    assert "cluster='<column>'" in str(e.value)


def test_between_with_random_intercepts_is_refused():
    msg = "random_intercepts: got True with class_level='between'"
    with pytest.raises(bayesmix.SpecificationError, match=msg) as e:
        bayesmix.lca(tiny_frame(False), ITEMS, 2, cluster="school", random_intercepts=True, class_level="between")
    assert "within-cluster" in str(e.value) and "huge" in str(e.value)


def test_unknown_class_level_is_refused():
    with pytest.raises(bayesmix.SpecificationError, match="class_level: got 'cluster'; valid choices"):
        bayesmix.lca(tiny_frame(False), ITEMS, 2, cluster="school", class_level="cluster")


def test_within_cluster_varying_covariate_is_refused():
    df = tiny_frame(False)
    df["x"] = np.arange(12.0)
    df.loc[3:5, "x"] = 4.0  # constant in s1, varies in s3 (first cluster)
    with pytest.raises(bayesmix.SpecificationError) as e:
        bayesmix.lca(df, ITEMS, 2, cluster="school", covariates=["w", "x"], class_level="between")
    msg = str(e.value)
    assert "'x'" in msg and "'s3'" in msg and "values 0 and 1" in msg
    assert "transform('mean')" in msg and "class_level='within'" in msg
    # a within-level class accepts the person-level covariate
    assert bayesmix.lca(df, ITEMS, 2, cluster="school", covariates=["x"], random_intercepts=False).n_classes == 2


def test_cluster_membership_needs_a_between_class():
    m = bayesmix.lca(tiny_frame(False), ITEMS, 2, cluster="school", random_intercepts=False)
    with pytest.raises(bayesmix.SpecificationError, match="cluster_membership: .*within-level class"):
        compiled(m).cluster_membership(np.zeros(compiled(m).packing.size))
    fake = types.SimpleNamespace(model=m, theta=None)
    with pytest.raises(bayesmix.SpecificationError, match="class_level='between'"):
        bayesmix.MLResult.cluster_membership(fake)
    assert m.class_level == "within"


# ============================================================================ 5. ML fit


TAU_TRUE = np.array([[-1.8, -1.5, -1.2, -2.0, -1.0, -1.6], [1.5, 1.2, 1.8, 0.9, 1.4, 1.1]])


def test_simulate_between_gives_one_class_per_cluster():
    df, truth = simulate_lca(TAU_TRUE[:, :4], [0.2], n_clusters=7, cluster_size=4, beta=[[1.0]],
                             class_level="between", seed=3)
    assert df.groupby("cluster")["x1"].nunique().eq(1).all()
    cls = pd.Series(truth["class"]).groupby(df["cluster"].to_numpy()).nunique()
    assert cls.eq(1).all() and truth["cluster_class"].shape == (7,)
    m = bayesmix.lca(df, [f"y{p}" for p in range(1, 5)], 2, cluster="cluster",
                     covariates=["x1"], class_level="between")
    y, c = m.simulate({"tau": TAU_TRUE[:, :4], "alpha": np.array([0.2]), "beta": np.array([[1.0]])},
                      np.random.default_rng(0))
    assert y.shape == (28, 4)
    assert pd.Series(c).groupby(m.data.cluster_idx).nunique().eq(1).all()


def test_ml_fit_between_and_cluster_membership():
    df, truth = simulate_lca(TAU_TRUE[:, :5], [0.3], n_clusters=30, cluster_size=5, beta=[[0.8]],
                             class_level="between", seed=5)
    items = [f"y{p}" for p in range(1, 6)]
    m = bayesmix.lca(df, items, 2, cluster="cluster", covariates=["x1"], class_level="between")
    res = bayesmix.fit_ml(m, n_starts=4, n_final=2, progress=False)
    comp = compiled(m)
    raw_truth = {"tau": TAU_TRUE[:, :5], "alpha": np.array([0.3]), "beta": np.array([[0.8]])}
    assert res.loglik >= comp.ll_and_grad(comp.packing.pack(raw_truth))[0] - 1e-8
    assert res.convergence["max_abs_gradient"] < 1e-4
    assert res.n_obs == 150 and res.n_params == 12
    cm = res.cluster_membership()
    assert cm.shape == (30, 3) and cm.index.name == "cluster"
    assert list(cm.index) == list(m.data.cluster_labels)
    np.testing.assert_allclose(cm.filter(like="p_class").sum(axis=1), 1.0, atol=1e-12)
    # persons carry their cluster's probabilities
    np.testing.assert_allclose(res.membership.filter(like="p_class").to_numpy(),
                               cm.filter(like="p_class").to_numpy()[m.data.cluster_idx], atol=1e-12)
    true_cls = truth["cluster_class"]
    agree = max(np.mean(cm["class"].to_numpy() == true_cls), np.mean(cm["class"].to_numpy() == 3 - true_cls))
    assert agree >= 0.9
    # model-implied share = mean over clusters of P(C_j = c | w_j)
    x = df.groupby("cluster", sort=False)["x1"].first().to_numpy()
    a, b = res.natural["alpha"][0], res.natural["beta"][0, 0]
    p1 = special.expit(a + b * x)
    np.testing.assert_allclose(res.natural["class_share"], [p1.mean(), 1 - p1.mean()], atol=1e-12)


# ============================================================================ 6. recovery (slow)


@pytest.mark.slow
def test_between_recovery_150_clusters():
    alpha, beta = np.array([0.4]), np.array([[1.0]])
    df, truth = simulate_lca(TAU_TRUE, alpha, n_clusters=150, cluster_size=10, beta=beta,
                             class_level="between", seed=2024)
    items = [f"y{p}" for p in range(1, 7)]
    m = bayesmix.lca(df, items, 2, cluster="cluster", covariates=["x1"], class_level="between")
    res = bayesmix.fit_ml(m, n_starts=10, n_final=3, progress=False)
    true_raw = {"tau": TAU_TRUE, "alpha": alpha, "beta": beta}
    # align labels: the permutation whose thresholds are closest to the estimates
    perms = [np.array(p) for p in itertools.permutations(range(2))]
    perm = min(perms, key=lambda p: np.sum((m.permute_classes(true_raw, p)["tau"] - res.natural["tau"]) ** 2))
    aligned = m.permute_classes(true_raw, perm)
    rows = res.params[res.params.parameter.isin(["tau", "alpha", "beta"])]
    truth_flat = np.concatenate([np.asarray(aligned[n]).reshape(-1) for n in ("tau", "alpha", "beta")])
    z = (rows["estimate"].to_numpy() - truth_flat) / rows["se"].to_numpy()
    assert res.se_type == "mlr"
    assert np.all(np.abs(z) < 3), dict(zip(rows["label"], np.round(z, 2)))
    fitted = res.cluster_membership()["class"].to_numpy()
    true_cls = truth["cluster_class"] if perm[0] == 0 else 3 - truth["cluster_class"]
    assert np.mean(fitted == true_cls) > 0.95
