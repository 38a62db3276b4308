"""The epi data set, ML of the LTA against an independent EM, and the R^2 of
eq. (14) / section 4 (``families/lta_derived.py``).

The EM (Baum-Welch for T = 2: invariant item probabilities, initial shares and
a transition matrix, binary items with missing cells skipped) is written here in
plain numpy, from many random starts. The R^2 pieces are checked against a
Monte Carlo simulation of the latent logit responses, written here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import bayesmix as bm
from bayesmix.data import dataset_items, load_dataset
from bayesmix.exceptions import SpecificationError
from bayesmix.families.lta_derived import LOGISTIC_VAR, lta_r_squared, r_squared_values, transition_table

# ============================================================================ data


def test_epi_dataset_layout():
    df = load_dataset("epi")
    assert df.shape == (948, 61)
    assert dataset_items("epi") == ["V2", "V9", "V16", "V40", "V50"]
    assert list(df.columns[:4]) == ["person", "id", "time", "study"]
    assert df["person"].nunique() == 474
    assert (df.groupby("person")["time"].apply(sorted).map(tuple) == (1, 2)).all()
    first = df.iloc[0]  # the first line of psychTools' epiR (long), as stored
    assert (first["person"], first["id"], first["time"], first["study"]) == ("MAPS-112", 112, 1, "MAPS")
    assert [first[f"V{i}"] for i in range(1, 6)] == [2, 1, 1, 2, 2]
    values = df[[f"V{i}" for i in range(1, 58)]].stack().dropna()
    assert set(values.unique()) == {1.0, 2.0}
    assert int(df[[f"V{i}" for i in range(1, 58)]].isna().sum().sum()) == 1002  # as the source README says


# ============================================================================ EM


def epi_array():
    """(N, 2, P) responses 0/1 (code 2 -> 1), NaN missing; persons sorted."""
    df = load_dataset("epi").sort_values(["person", "time"])
    items = dataset_items("epi")
    y = df[items].to_numpy(float).reshape(-1, 2, len(items)) - 1.0
    assert (df["time"].to_numpy().reshape(-1, 2) == [1, 2]).all()
    return y


def em_loglik(y, pi, a, p):
    """(log P(C1 = j, C2 = k, y) (N, K, K), LL) of the Markov LTA with initial
    shares pi, transition matrix a (from, to) and P(y = 1 | c) p (K, P)."""
    obs = ~np.isnan(y)
    y0 = np.where(obs, y, 0.0)
    with np.errstate(divide="ignore"):  # a transition probability of exactly 0 (the EM's boundary)
        lf = (np.einsum("ntp,kp->ntk", y0 * obs, np.log(p))
              + np.einsum("ntp,kp->ntk", (1 - y0) * obs, np.log1p(-p)))  # missing items contribute 1
        lj = np.log(pi)[None, :, None] + np.log(a)[None] + lf[:, 0, :, None] + lf[:, 1, None, :]
    return lj, special.logsumexp(lj, axis=(1, 2)).sum()


def em_lta(y, k, n_starts=20, n_iter=3000, seed=0):
    """Max LL of the Markov LTA with invariant item probabilities by EM
    (Baum-Welch; T = 2, so the pair posteriors are the joint table)."""
    obs = (~np.isnan(y)).astype(float)
    y0 = np.where(obs > 0, y, 0.0)
    rng = np.random.default_rng(seed)
    best = -np.inf
    for _ in range(n_starts):
        pi = rng.dirichlet(np.ones(k))
        a = rng.dirichlet(np.ones(k), size=k)
        p = rng.uniform(0.1, 0.9, size=(k, y.shape[2]))
        prev = -np.inf
        for _ in range(n_iter):
            lj, ll = em_loglik(y, pi, a, p)
            w = np.exp(lj - special.logsumexp(lj, axis=(1, 2))[:, None, None])  # P(C1 = j, C2 = k | y)
            post = np.stack([w.sum(2), w.sum(1)], axis=1)  # (N, T, K)
            pi = w.sum((0, 2)) / len(y)
            a = w.sum(0) / w.sum((0, 2))[:, None]
            p = np.einsum("ntk,ntp->kp", post, y0) / np.einsum("ntk,ntp->kp", post, obs)
            if ll - prev < 1e-10:
                break
            prev = ll
        best = max(best, ll)
    return best


def loglik_at_fit(res, y):
    """The EM's LL evaluated at bayesmix's estimates (natural scale)."""
    nat = res.natural
    p = 1.0 - special.expit(nat["tau"])  # P(code 2 | c), binary thresholds (K, P)
    return em_loglik(y, nat["class_share_C1"], nat["transition_prob"][0], p)[1]


@pytest.fixture(scope="module")
def epi_k2():
    df = load_dataset("epi")
    fam = bm.lta(df, dataset_items("epi"), 2, person="person", time="time")
    with pytest.warns(bm.ConvergenceWarning):  # gamma at its bound: C1 = 1 (nearly) never leaves
        return bm.fit_ml(fam, n_starts=10, seed=1)


def test_fit_ml_matches_independent_em_k2(epi_k2):
    y = epi_array()
    assert loglik_at_fit(epi_k2, y) == pytest.approx(epi_k2.loglik, abs=1e-8)
    em = em_lta(y, 2)
    # gamma sits at its bound (+-30, lta.GAMMA_BOUND) while EM reaches the boundary
    # supremum (a transition probability of 0): bayesmix is 3e-10 below
    assert abs(epi_k2.loglik - em) < 1e-3, (epi_k2.loglik, em)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayesmix.IdentificationWarning")  # the separation of those gammas, expected
def test_fit_ml_matches_independent_em_k3():
    df = load_dataset("epi")
    with pytest.warns(bm.ConvergenceWarning):  # a transition logit at its bound
        res = bm.fit_ml(bm.lta(df, dataset_items("epi"), 3, person="person", time="time"), n_starts=30, seed=2)
    y = epi_array()
    assert loglik_at_fit(res, y) == pytest.approx(res.loglik, abs=1e-8)
    em = em_lta(y, 3, n_starts=40)
    # The K = 3 maximum is on the boundary (transition probabilities 0): alpha_2 runs to
    # -15 and gamma, a contrast of two logits, to +30 (lta.GAMMA_BOUND); bayesmix is
    # 1.1e-5 below EM's supremum (0.0205 when gamma was bounded at 15 like alpha).
    assert abs(em - res.loglik) < 1e-3, (res.loglik, em)


# ============================================================================ R^2


def two_level_values(gamma=1.7, beta=0.8, v1=1.3, ve=0.4, a1=-0.3, mu=0.2):
    return {"gamma_1_2": np.array([[gamma]]), "beta": np.array(beta), "var_alpha1": np.array(v1),
            "var_eps": np.array(ve), "alpha_1": np.array([a1]), "mu": np.array([mu]),
            "alpha_2": np.array([mu + beta * a1])}


def test_eq14_single_level_by_hand_and_zero_without_transition_effect():
    vals = {"gamma_1_2": np.array([[2.0]]), "class_share_C1": np.array([0.3, 0.7])}
    r2 = r_squared_values(vals)["C2_by_C1"]
    num = 4.0 * 0.3 * 0.7
    assert r2 == pytest.approx(num / (num + np.pi ** 2 / 3), abs=1e-14)
    vals["gamma_1_2"] = np.array([[0.0]])
    assert r_squared_values(vals)["C2_by_C1"] == 0.0


def test_two_level_pieces_add_up_and_reduce_to_eq14():
    r = r_squared_values(two_level_values())
    assert r["C2_by_alpha1"] + r["C2_by_residual_C1"] + r["C2_by_residual_alpha2"] == pytest.approx(
        r["C2_total"], abs=1e-14)
    assert r["C2_by_C1_alone"] + r["C2_added_by_alpha2"] == pytest.approx(r["C2_total"], abs=1e-14)
    assert all(0 < r[n] < 1 for n in r)
    # no random effects: eq. (14) with P(C1 = 1) = expit(alpha_1)
    r0 = r_squared_values(two_level_values(v1=0.0, ve=0.0, beta=0.0))
    pr = special.expit(-0.3)
    num = 1.7 ** 2 * pr * (1 - pr)
    assert r0["C2_total"] == pytest.approx(num / (num + np.pi ** 2 / 3), abs=1e-12)
    assert r0["C2_by_C1_alone"] == pytest.approx(r0["C2_total"], abs=1e-12)
    assert r0["C1_by_alpha1"] == 0.0


def test_two_level_pieces_match_monte_carlo_of_latent_responses():
    g, b, v1, ve, a1, mu = 1.7, 0.8, 1.3, 0.4, -0.3, 0.2
    rng = np.random.default_rng(5)
    n = 2_000_000
    al1 = a1 + np.sqrt(v1) * rng.standard_normal(n)
    ind = (al1 + rng.logistic(size=n) > 0).astype(float)  # C1 = 1 (eq. 12)
    al2 = mu + b * al1 + np.sqrt(ve) * rng.standard_normal(n)  # eq. (15)
    c2 = al2 + g * ind + rng.logistic(size=n)  # latent response of C2 (eq. 13)
    var = c2.var()
    r = r_squared_values(two_level_values(g, b, v1, ve, a1, mu))
    assert r["C1_by_alpha1"] == pytest.approx(v1 / (v1 + LOGISTIC_VAR), abs=1e-14)
    assert r["C2_total"] == pytest.approx(1 - LOGISTIC_VAR / var, abs=3e-3)
    assert r["C2_by_alpha1"] == pytest.approx(np.corrcoef(c2, al1)[0, 1] ** 2, abs=3e-3)
    assert r["C2_by_C1_alone"] == pytest.approx(np.corrcoef(c2, ind)[0, 1] ** 2, abs=3e-3)
    assert r["C2_by_residual_alpha2"] == pytest.approx(ve / var, abs=3e-3)


def test_draw_axes_are_kept():
    vals = two_level_values()
    stacked = {n: np.stack([np.asarray(v), np.asarray(v)]) for n, v in vals.items()}
    r1, r2 = r_squared_values(vals), r_squared_values(stacked)
    for n in r1:
        assert r2[n].shape == (2,)
        np.testing.assert_allclose(r2[n], r1[n], atol=1e-15)


def test_r_squared_of_the_epi_fit(epi_k2):
    tab = lta_r_squared(epi_k2)
    nat = epi_k2.natural
    g, p1 = nat["gamma_1_2"][0, 0], nat["class_share_C1"][0]
    num = g ** 2 * p1 * (1 - p1)
    assert tab.loc["C2_by_C1", "estimate"] == pytest.approx(num / (num + np.pi ** 2 / 3), abs=1e-12)
    # its SE: none here, gamma is at its bound (test_quantities_driven_by_a_bound_parameter_have_no_se)


def test_r_squared_refuses_more_than_two_classes():
    with pytest.raises(SpecificationError, match="K = 2"):
        r_squared_values({"gamma_1_2": np.zeros((2, 2)), "class_share_C1": np.ones(3) / 3})
    with pytest.raises(SpecificationError, match="MLResult"):
        lta_r_squared(object())


def test_two_level_result_uses_the_reported_values_and_a_delta_se():
    """A two-level model at a chosen raw point (no fit): the estimates are
    ``r_squared_values`` of its reported values and the SE is J cov J' with J
    from central differences taken here with another step."""
    import importlib
    from types import SimpleNamespace

    from bayesmix.fit.compiled import compiled

    fam = importlib.import_module("bayesmix.families.lta").example(two_level=True)
    comp = compiled(fam)
    theta = np.random.default_rng(3).normal(0.0, 0.5, comp.packing.size)
    cov = np.diag(np.linspace(0.01, 0.05, theta.size))
    # an MLResult at a chosen point: only the fields a derived quantity reads
    res = object.__new__(bm.MLResult)
    vars(res).update(vars(SimpleNamespace(model=fam, theta=theta, cov=cov, natural=comp.reported(theta),
                                          convergence={"fixed_at_bound": []})))
    tab = lta_r_squared(res)
    nat = res.natural
    assert set(tab.index) == {"C1_by_alpha1", "C2_by_alpha1", "C2_by_residual_C1", "C2_by_residual_alpha2",
                              "C2_total", "C2_by_C1_alone", "C2_added_by_alpha2"}
    assert tab.loc["C1_by_alpha1", "estimate"] == pytest.approx(
        nat["var_alpha1"] / (nat["var_alpha1"] + np.pi ** 2 / 3), abs=1e-14)
    h = 1e-4

    def total(th):
        return r_squared_values(comp.reported(th))["C2_total"]

    jac = np.array([(total(theta + h * e) - total(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    assert tab.loc["C2_total", "se"] == pytest.approx(np.sqrt(jac @ cov @ jac), rel=1e-6)


# ============================================================================ class paths


def test_paths_and_pattern_probabilities_match_enumeration(epi_k2):
    from bayesmix.families.lta_derived import most_likely_paths, pattern_probabilities

    y = epi_array()
    nat = epi_k2.natural
    lj, _ = em_loglik(y, nat["class_share_C1"], nat["transition_prob"][0], 1.0 - special.expit(nat["tau"]))
    lj = lj.reshape(len(y), -1)  # the 4 paths (j, k), k fastest
    persons = sorted(load_dataset("epi")["person"].unique())
    paths = most_likely_paths(epi_k2).loc[persons]
    best = np.argmax(lj, axis=1)
    np.testing.assert_array_equal(paths.iloc[:, 0].to_numpy(), best // 2 + 1)
    np.testing.assert_array_equal(paths.iloc[:, 1].to_numpy(), best % 2 + 1)
    np.testing.assert_allclose(paths["log_joint"].to_numpy(), lj.max(axis=1), atol=1e-9)
    post = pattern_probabilities(epi_k2).loc[persons]
    assert list(post.columns) == ["1,1", "1,2", "2,1", "2,2"]
    np.testing.assert_allclose(post.to_numpy(), special.softmax(lj, axis=1), atol=1e-10)
    prior = pattern_probabilities(epi_k2, posterior=False)
    joint = nat["class_share_C1"][:, None] * nat["transition_prob"][0]
    np.testing.assert_allclose(prior.to_numpy(), np.broadcast_to(joint.reshape(-1), prior.shape), atol=1e-12)
    # the posterior marginals of the patterns are the package's memberships per occasion
    mem = epi_k2.memberships
    np.testing.assert_allclose(post[["1,1", "1,2"]].sum(axis=1), mem["C1"].loc[persons, "p_class1"], atol=1e-9)
    np.testing.assert_allclose(post[["1,1", "2,1"]].sum(axis=1), mem["C2"].loc[persons, "p_class1"], atol=1e-9)


def test_paths_refuse_two_level_models():
    import importlib
    from types import SimpleNamespace

    from bayesmix.families.lta_derived import most_likely_paths

    fam = importlib.import_module("bayesmix.families.lta").example(two_level=True)
    with pytest.raises(SpecificationError, match="random_intercepts=True"):
        most_likely_paths(SimpleNamespace(model=fam, theta=None))


def test_summary_prints_shares_by_occasion_and_the_transition_matrix(epi_k2):
    text = epi_k2.summary()
    head, _, tail = text.partition("LATENT TRANSITION PROBABILITIES BASED ON THE ESTIMATED MODEL")
    assert tail, "no transition section"
    assert "Transition probabilities" not in head  # printed once, as matrices, not per class
    nat = epi_k2.natural
    trans = nat["transition_prob"][0]
    table = transition_table(epi_k2)
    se = table["se"].to_numpy().reshape(2, 2)
    for j in range(2):  # row j: "j  p_j1 (se) p_j2 (se)"
        row = [ln for ln in tail.splitlines() if ln.split()[:1] == [str(j + 1)]][0]
        assert row.split() == [str(j + 1), f"{trans[j, 0]:.3f}", f"({se[j, 0]:.3f})", f"{trans[j, 1]:.3f}",
                               f"({se[j, 1]:.3f})"]
    np.testing.assert_allclose(trans.sum(axis=1), 1.0, atol=1e-12)
    shares = head.split("CLASS PROPORTIONS BY OCCASION")[1].splitlines()
    row1 = [ln for ln in shares if ln.split()[:1] == ["1"]][0].split()
    assert row1[1] == f"{nat['class_share_C1'][0]:.3f}" and row1[3] == f"{nat['class_share_C2'][0]:.3f}"
    with pytest.raises(SpecificationError, match="MLResult"):
        transition_table(object())


def test_quantities_driven_by_a_bound_parameter_have_no_se(epi_k2):
    """A transition logit sits at its bound (one class never moves to the other):
    the transition probability pinned at 0 / 1 by it gets no SE (not ~0 with a
    z of 1e5); the other transitions and the occasion-2 shares keep theirs."""
    assert epi_k2.convergence["fixed_at_bound"]
    tab = transition_table(epi_k2)
    pinned = (tab["estimate"] < 1e-5) | (tab["estimate"] > 1 - 1e-5)
    assert pinned.sum() == 2, tab  # one row of the 2 x 2 matrix
    assert tab.loc[pinned, "se"].isna().all() and (tab.loc[~pinned, "se"] > 0.01).all()
    share2 = epi_k2.params[epi_k2.params["parameter"] == "class_share_C2"]
    assert share2["se"].notna().all() and (share2["se"] > 0.01).all()


def test_bound_driven_rule_by_hand():
    from bayesmix.fit.results import bound_driven

    # columns: free, fixed, free; rows: pinned, free-driven, moved by both (informative), free only
    jac = np.array([[1e-7, 2e-7, 0.0], [0.3, 1e-7, 0.0], [0.05, 0.06, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(bound_driven(jac, np.array([False, True, False])), [True, False, False, False])
    np.testing.assert_array_equal(bound_driven(jac, np.zeros(3, bool)), [False] * 4)
