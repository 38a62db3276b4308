"""Latent transition analysis (paper sections 3-4) against brute force.

The likelihood of tiny data sets is compared with an explicit sum over all K^T
class paths written here in plain numpy (eqs. 6-9, reference class K), and the
two-level likelihood with scipy's dblquad of that sum over (alpha_1j, alpha_2j)
(eq. 15). Parameter values are random raw values; bayesmix is only asked for
the values under test.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

import bayesmix as bm
from bayesmix.fit.compiled import compiled

# ============================================================================ brute force


def softmax_ref(logits):
    """P over K classes from K-1 reference-coded logits (class K: logit 0)."""
    full = np.append(np.asarray(logits, float), 0.0)
    return np.exp(full - special.logsumexp(full))


def binary_emit(y_t, tau):
    """f(y_t | class) (K,) for binary items coded 0/1 with thresholds tau (K, P):
    P(y = 1 | c) = 1 - expit(tau); a missing item contributes 1."""
    p1 = 1.0 - special.expit(tau)
    out = np.ones(tau.shape[0])
    for p, v in enumerate(y_t):
        if not np.isnan(v):
            out *= p1[:, p] if v == 1 else 1.0 - p1[:, p]
    return out


def path_prior(path, v, k, full=False, x=None, shift=(0.0, 0.0)):
    """P(C_1 = path[0]) prod_t P(C_t = path[t] | earlier classes), eqs. (8)-(9),
    from the raw values v (alpha_t, gamma_s_t, beta_t), covariates x[t] (Q_t,)."""
    prob = 1.0
    for t, c in enumerate(path):
        logit = np.array(v.get("mu", v.get("alpha_2")) if t == 1 and "mu" in v else v[f"alpha_{t + 1}"], float)
        logit = logit + shift[t] if t < len(shift) else logit
        if f"beta_{t + 1}" in v:
            logit = logit + v[f"beta_{t + 1}"] @ x[t]
        for s in (range(t) if full else [t - 1]) if t else []:
            j = path[s]
            if j < k - 1:
                logit = logit + v[f"gamma_{s + 1}_{t + 1}"][:, j]
        prob *= softmax_ref(logit)[c]
    return prob


def brute_loglik(y, tau_t, v, k, full=False, x=None, shift=(0.0, 0.0)):
    """(N,) log sum over all K^T paths; y (N, T, P), tau_t[t] (K, P)."""
    n, n_t, _ = y.shape
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for path in itertools.product(range(k), repeat=n_t):
            f = np.prod([binary_emit(y[i, t], tau_t[t])[path[t]] for t in range(n_t)])
            total += path_prior(path, v, k, full, None if x is None else [xt[i] for xt in x], shift) * f
        out[i] = np.log(total)
    return out


# ============================================================================ data


def wide_data(n_t, n=6, p=3, seed=0):
    """n persons, p binary items at n_t occasions, with missing cells, one person
    missing a whole occasion."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, n_t, p)) > 0.5).astype(float)
    y[0, 0, 1] = np.nan
    y[2, 1, :] = np.nan  # person 2 seen at occasion 1 only
    y[3, :, 0] = np.nan
    for t in range(n_t):  # every column shows both values
        y[4, t], y[5, t] = 0.0, 1.0
    cols = {f"t{t + 1}": [f"u{j + 1}_{t + 1}" for j in range(p)] for t in range(n_t)}
    df = pd.DataFrame({c: y[:, t, j] for t, cs in enumerate(cols.values()) for j, c in enumerate(cs)})
    return df, cols, y


def random_point(fam, seed=1, scale=1.0):
    comp = compiled(fam)
    rng = np.random.default_rng(seed)
    point = comp.packing.unpack(scale * rng.normal(size=comp.packing.size))
    return comp, point, comp.packing.pack(point)


def unit_ll(fam, point):
    comp = compiled(fam)
    return comp.unit_loglik(comp.packing.pack(point))


# ============================================================================ single level


@pytest.fixture(scope="module")
def t2k2():
    df, cols, y = wide_data(2)
    return bm.lta(df, cols, 2), df, cols, y


@pytest.fixture(scope="module")
def t3k3_free():
    """T = 3, K = 3, occasion-specific item parameters (invariance=False)."""
    df, cols, y = wide_data(3, n=7, seed=3)
    return bm.lta(df, cols, 3, invariance=False), y


def test_likelihood_t2_k2_matches_path_enumeration(t2k2):
    fam, _, _, y = t2k2
    _, v, theta = random_point(fam)
    expected = brute_loglik(y, [v["tau"]] * 2, v, 2)
    np.testing.assert_allclose(compiled(fam).unit_loglik(theta), expected, rtol=0, atol=1e-8)


def test_likelihood_t3_k3_occasion_specific_matches_enumeration(t3k3_free):
    fam, y = t3k3_free
    _, v, theta = random_point(fam, seed=2)
    tau = v["tau"].reshape(3, 3, 3).transpose(1, 0, 2)  # (K, T*P) -> per occasion (K, P)
    expected = brute_loglik(y, list(tau), v, 3)
    np.testing.assert_allclose(compiled(fam).unit_loglik(theta), expected, rtol=0, atol=1e-8)


def test_occasion_specific_relabelling_per_occasion(t3k3_free):
    """Each occasion is its own relabelling group without invariance; relabelling
    any of them (or all at once) leaves the likelihood unchanged."""
    fam, _ = t3k3_free
    assert [cv.relabel_group for cv in fam.class_variables] == ["C1", "C2", "C3"]
    comp, v, theta = random_point(fam, seed=4)
    base = comp.unit_loglik(theta)
    perms = {"C1": np.array([2, 0, 1]), "C2": np.array([1, 0, 2]), "C3": np.array([0, 2, 1])}
    for group, perm in [*perms.items(), ("all", None)]:
        moved = fam.permute_classes(v, perms if group == "all" else {group: perm})
        theta_m = comp.packing.pack(moved)
        assert not np.allclose(theta_m, theta)
        np.testing.assert_allclose(comp.unit_loglik(theta_m), base, atol=1e-9, err_msg=group)


def test_invariant_relabelling_moves_every_occasion(t2k2):
    fam = t2k2[0]
    assert {cv.relabel_group for cv in fam.class_variables} == {"C"}
    comp, v, theta = random_point(fam, seed=5)
    moved = fam.permute_classes(v, np.array([1, 0]))
    np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), comp.unit_loglik(theta), atol=1e-9)
    # the transition matrix is relabelled consistently on both axes
    tr, tr_m = comp.reported(theta)["transition_prob"], comp.reported(comp.packing.pack(moved))["transition_prob"]
    np.testing.assert_allclose(tr_m[0], tr[0][np.ix_([1, 0], [1, 0])], atol=1e-10)


def test_shares_and_transitions_from_the_parameters(t2k2):
    """Without covariates: class shares at occasion 1 are softmax(alpha_1), the
    transition matrix is eq. (9) row by row, shares at 2 = shares at 1 @ P."""
    fam = t2k2[0]
    comp, v, theta = random_point(fam, seed=6)
    rep = comp.reported(theta)
    p1 = softmax_ref(v["alpha_1"])
    trans = np.array([softmax_ref(v["alpha_2"] + (v["gamma_1_2"][:, j] if j < 1 else 0.0)) for j in range(2)])
    np.testing.assert_allclose(rep["class_share_C1"], p1, atol=1e-12)
    np.testing.assert_allclose(rep["transition_prob"][0], trans, atol=1e-12)
    np.testing.assert_allclose(rep["class_share_C2"], p1 @ trans, atol=1e-12)


def test_one_occasion_equals_lca():
    """T = 1: the LTA is the LCA of those items (eq. 8 is eq. 4)."""
    df, cols, _ = wide_data(2)
    fam = bm.lta(df, {"t1": cols["t1"]}, 2)
    ref = bm.lca(df, cols["t1"], 2)
    comp, v, theta = random_point(fam, seed=7)
    point = {"tau": v["tau"], "alpha": v["alpha_1"]}
    np.testing.assert_allclose(comp.unit_loglik(theta), unit_ll(ref, point), atol=1e-10)


def test_one_class_is_independent_items(t2k2):
    """K = 1: no class logits; the likelihood is the product of the item probabilities."""
    _, df, cols, y = t2k2
    fam = bm.lta(df, cols, 1)
    assert fam.free_names == ["tau"]
    comp, v, theta = random_point(fam, seed=45)
    expected = np.log([np.prod([binary_emit(y[i, t], v["tau"])[0] for t in range(2)]) for i in range(len(y))])
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, atol=1e-10)
    np.testing.assert_allclose(comp.memberships(theta)["C2"], 1.0)


def test_full_dependence_t3_matches_enumeration_and_t2_equals_markov(t2k2):
    df, cols, y = wide_data(3, n=6, seed=8)
    fam = bm.lta(df, cols, 2, dependence="full")
    assert "gamma_1_3" in fam.free_names and "gamma_2_3" in fam.free_names
    comp, v, theta = random_point(fam, seed=9)
    expected = brute_loglik(y, [v["tau"]] * 3, v, 2, full=True)
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, rtol=0, atol=1e-8)
    moved = fam.permute_classes(v, np.array([1, 0]))
    np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), expected, atol=1e-9)
    # the Markov chain is full dependence without the effect of C_1 on C_3
    markov = {**v, "gamma_1_3": np.zeros_like(v["gamma_1_3"])}
    np.testing.assert_allclose(unit_ll(fam, markov), brute_loglik(y, [v["tau"]] * 3, v, 2, full=False),
                               rtol=0, atol=1e-8)
    # T = 2: full dependence is the Markov chain (the same parameters)
    markov2, df2, cols2, _ = t2k2
    assert bm.lta(df2, cols2, 2, dependence="full").free_names == markov2.free_names


def test_long_data_give_the_wide_model(t2k2):
    fam, df, cols, _ = t2k2
    rows = []
    for i in range(len(df)):
        for t, occ in enumerate(["w1", "w2"]):
            vals = df.loc[i, cols[f"t{t + 1}"]].to_numpy()
            if np.isnan(vals).all():
                continue  # person 2 has no row at w2
            rows.append({"id": f"p{i}", "wave": occ, **{f"u{j + 1}": vals[j] for j in range(3)}})
    long = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter
    fam_long = bm.lta(long, ["u1", "u2", "u3"], 2, person="id", time="wave")
    assert list(fam_long.data.row_index) == [f"p{i}" for i in range(len(df))] or \
        sorted(fam_long.data.row_index) == sorted(f"p{i}" for i in range(len(df)))
    order = [list(fam_long.data.row_index).index(f"p{i}") for i in range(len(df))]
    _, v, _ = random_point(fam, seed=11)
    np.testing.assert_allclose(unit_ll(fam_long, v)[order], unit_ll(fam, v), atol=1e-10)


def test_covariates_on_initial_class_and_transitions():
    """Occasion-specific covariates: x1 in eq. (8), x2 in eq. (9)."""
    df, cols, y = wide_data(2, n=6, seed=12)
    rng = np.random.default_rng(13)
    df["x1"], df["x2"] = rng.normal(size=6), rng.normal(size=6)
    fam = bm.lta(df, cols, 2, covariates={"t1": ["x1"], "t2": ["x2"]})
    assert {"beta_1", "beta_2"} <= set(fam.free_names)
    comp, v, theta = random_point(fam, seed=14)
    x = [df[["x1"]].to_numpy(), df[["x2"]].to_numpy()]
    expected = brute_loglik(y, [v["tau"]] * 2, v, 2, x=x)
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, rtol=0, atol=1e-8)
    moved = fam.permute_classes(v, np.array([1, 0]))
    np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), expected, atol=1e-9)


def test_person_without_any_response_is_reported():
    df, cols, _ = wide_data(2)
    df.loc[len(df)] = np.nan
    with pytest.warns(bm.DroppedRowsWarning, match="1 of 7 rows excluded"):
        fam = bm.lta(df, cols, 2)
    assert fam.data.n_dropped == 1 and fam.data.n_persons == 6


# ============================================================================ argument errors


@pytest.mark.parametrize("kwargs, match", [
    ({"items": ["u1_1", "u2_1"]}, "items: got"),
    ({"items": {"t1": ["u1_1", "u2_1", "u3_1"], "t2": ["u1_2", "u2_2"]}}, "invariance: got True"),
    ({"dependence": "second"}, "dependence: got 'second'"),
    ({"n_classes": 0}, "n_classes: got 0"),
    ({"person": "id"}, "person/time"),
    ({"n_classes": 4, "cluster": "cl"}, "random_intercepts: got True with n_classes=4"),
    ({"covariates": {"t9": ["u1_1"]}}, "covariates: key 't9'"),
])
def test_bad_arguments_raise_before_compiling(kwargs, match):
    df, cols, _ = wide_data(2)
    df["cl"] = [0, 0, 0, 1, 1, 1]
    args = {"items": cols, "n_classes": 2, **kwargs}
    with pytest.raises(bm.SpecificationError, match=match):
        bm.lta(df, **args)


def test_constant_covariate_is_refused():
    df, cols, _ = wide_data(2)
    df["z"] = 1.0
    with pytest.raises(bm.DataError, match="z: the column is constant"):
        bm.lta(df, cols, 2, covariates={"t2": ["z"]})


def test_long_data_errors():
    long = pd.DataFrame({"id": [1, 1, 2], "wave": [1, 1, 1], "u": [0.0, 1.0, 1.0]})
    with pytest.raises(bm.DataError, match="duplicate"):
        bm.lta(long, ["u"], 2, person="id", time="wave")
    with pytest.raises(bm.DataError, match="column 'v' not found"):
        bm.lta(long, ["v"], 2, person="id", time="wave")


# ============================================================================ two level


def two_level_data():
    df, cols, y = wide_data(2, n=9, seed=20)
    df["school"] = np.repeat(["a", "b", "c"], 3)
    return df, cols, y


@pytest.fixture(scope="module")
def two_level():
    df, cols, y = two_level_data()
    # a dense trapezoid grid: the test tolerance is on the model's integral
    fam = bm.lta(df, cols, 2, cluster="school", integration={"rule": "trapezoid", "n_points": 61, "bound": 8.0})
    return fam, df, cols, y


def test_two_level_likelihood_matches_dblquad(two_level):
    fam, df, cols, y = two_level
    comp, v, theta = random_point(fam, seed=21, scale=0.7)
    sd1, sde = np.exp(v["log_sd"])
    beta = float(v["beta"])
    idx = fam.data.cluster_idx
    expected = []
    for j in range(3):
        rows = np.flatnonzero(idx == j)

        # f(y_it | C_t = c) does not depend on the random effects: enumerate once
        emit = np.array([[binary_emit(y[i, t], v["tau"]) for t in range(2)] for i in rows])  # (n_j, T, K)
        e1, e2 = emit[:, 0], emit[:, 1]
        alpha1, mu, gamma = float(v["alpha_1"][0]), float(v["mu"][0]), float(v["gamma_1_2"][0, 0])

        def f(a2, a1):  # u_1 = a1, alpha_2j - E alpha_2j = a2 = beta u_1 + eps
            eps = a2 - beta * a1
            dens = np.exp(-0.5 * (a1 / sd1) ** 2 - 0.5 * (eps / sde) ** 2) / (2 * np.pi * sd1 * sde)
            q1 = special.expit(alpha1 + a1)  # P(C_1 = 1 | alpha_1j), eq. (12)
            a2j = mu + beta * alpha1 + a2  # alpha_2j, eq. (15)
            q2 = special.expit(a2j + gamma), special.expit(a2j)  # P(C_2 = 1 | C_1 = 1, 2), eq. (13)
            persons = (q1 * e1[:, 0] * (q2[0] * e2[:, 0] + (1 - q2[0]) * e2[:, 1])
                       + (1 - q1) * e1[:, 1] * (q2[1] * e2[:, 0] + (1 - q2[1]) * e2[:, 1]))  # the 4 paths
            return dens * np.prod(persons)

        # inner variable a2 over its conditional range given a1 (beta a1 +- 8 sd(eps))
        val, _ = integrate.dblquad(f, -8 * sd1, 8 * sd1, lambda a1: beta * a1 - 8 * sde,
                                   lambda a1: beta * a1 + 8 * sde, epsabs=0.0, epsrel=1e-9)
        expected.append(np.log(val))
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, rtol=0, atol=1e-6)
    rep = comp.reported(theta)
    np.testing.assert_allclose([rep["var_alpha1"], rep["var_eps"]], [sd1**2, sde**2], rtol=1e-12)
    np.testing.assert_allclose(rep["psi"], [[sd1**2, beta * sd1**2], [beta * sd1**2, beta**2 * sd1**2 + sde**2]],
                               rtol=1e-12)


def test_two_level_without_random_effects_is_the_single_level_lta(two_level):
    fam, df, cols, y = two_level
    plain = bm.lta(df, cols, 2, cluster="school", random_intercepts=False)
    _, v, _ = random_point(plain, seed=22)
    per_cluster = unit_ll(plain, v)
    person = brute_loglik(y, [v["tau"]] * 2, v, 2)
    np.testing.assert_allclose(per_cluster, [person[fam.data.cluster_idx == j].sum() for j in range(3)], atol=1e-8)
    # random intercepts with variances at the lower bound (sd 3e-4) give the same likelihood
    point = {**v, "mu": v["alpha_2"], "beta": np.array(0.0), "log_sd": np.full(2, -8.0)}
    point.pop("alpha_2")
    np.testing.assert_allclose(unit_ll(fam, point), per_cluster, atol=1e-5)


# ============================================================================ item kinds, memberships, simulation


def test_posterior_class_probabilities_match_enumeration(t2k2):
    fam, _, _, y = t2k2
    comp, v, theta = random_point(fam, seed=30)
    post = comp.memberships(theta)
    expected = np.zeros((len(y), 2, 2))
    for i in range(len(y)):
        for path in itertools.product(range(2), repeat=2):
            w = path_prior(path, v, 2) * np.prod([binary_emit(y[i, t], v["tau"])[path[t]] for t in range(2)])
            expected[i, 0, path[0]] += w
            expected[i, 1, path[1]] += w
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(post["C1"], expected[:, 0], atol=1e-10)
    np.testing.assert_allclose(post["C2"], expected[:, 1], atol=1e-10)


def test_occasions_with_different_items_without_invariance():
    """invariance=False: 3 items at occasion 1, 2 at occasion 2."""
    df, cols, y = wide_data(2, n=6, seed=31)
    cols = {"t1": cols["t1"], "t2": cols["t2"][:2]}
    fam = bm.lta(df, cols, 2, invariance=False)
    comp, v, theta = random_point(fam, seed=32)
    y = y.copy()
    y[:, 1, 2] = np.nan  # the third item is not measured at occasion 2
    tau = [v["tau"][:, :3], np.concatenate([v["tau"][:, 3:], np.zeros((2, 1))], axis=1)]
    np.testing.assert_allclose(comp.unit_loglik(theta), brute_loglik(y, tau, v, 2), rtol=0, atol=1e-8)


def test_ordinal_and_continuous_items_probit_invariant():
    """An ordinal item whose top category nobody chose at occasion 2 (the union
    of the categories keeps its codes) and a continuous item; probit link."""
    rng = np.random.default_rng(33)
    n = 7
    ordinal = rng.integers(0, 3, size=(n, 2)).astype(float)
    ordinal[:3, 0] = [0, 1, 2]
    ordinal[:, 1] = np.minimum(ordinal[:, 1], 1.0)  # occasion 2: categories 0, 1 only
    ordinal[:2, 1] = [0, 1]
    cont = rng.normal(size=(n, 2))
    cont[1, 1] = np.nan
    df = pd.DataFrame({"o_1": ordinal[:, 0], "c_1": cont[:, 0], "o_2": ordinal[:, 1], "c_2": cont[:, 1]})
    fam = bm.lta(df, {"a": ["o_1", "c_1"], "b": ["o_2", "c_2"]}, 2, link="probit",
                 item_types={"o_1": "ordinal", "o_2": "ordinal"})
    comp, v, theta = random_point(fam, seed=34, scale=0.5)
    raw = v["tau_raw"]  # first threshold, then a log-increment
    tau = np.stack([raw[:, 0], raw[:, 0] + np.exp(raw[:, 1])], axis=1)  # (K, 2)
    cdf = np.concatenate([np.zeros((2, 1)), special.ndtr(tau), np.ones((2, 1))], axis=1)
    sd = np.sqrt(np.exp(v["log_theta"][0]))

    def emit(i, t):
        out = np.ones(2)
        if not np.isnan(ordinal[i, t]):
            k = int(ordinal[i, t])
            out *= cdf[:, k + 1] - cdf[:, k]
        if not np.isnan(cont[i, t]):
            out *= np.exp(-0.5 * ((cont[i, t] - v["nu"][:, 0]) / sd) ** 2) / (np.sqrt(2 * np.pi) * sd)
        return out

    expected = [np.log(sum(path_prior(path, v, 2) * emit(i, 0)[path[0]] * emit(i, 1)[path[1]]
                           for path in itertools.product(range(2), repeat=2))) for i in range(n)]
    np.testing.assert_allclose(comp.unit_loglik(theta), expected, rtol=0, atol=1e-8)
    with warnings.catch_warnings():  # a simulated top category at occasion 2 comes back missing, with a warning
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        y_sim, cls = fam.simulate(comp.reported(theta), np.random.default_rng(0))
    assert y_sim.shape == (n, 4) and cls.shape == (n,)
    assert np.isnan(y_sim[~fam.data.observed]).all()


def test_simulated_paths_follow_the_shares_and_transitions(t2k2):
    """The simulator draws (C_1, C_2) with P(C_1) = class_share_C1 and
    P(C_2 | C_1) = transition_prob (within 4 binomial SE over 12 000 paths)."""
    from bayesmix.families.lta_sim import draw_paths

    fam = t2k2[0]
    comp, _, theta = random_point(fam, seed=40)
    nat = comp.reported(theta)
    rng = np.random.default_rng(41)
    paths = np.concatenate([draw_paths(fam, nat, rng) for _ in range(2000)])
    joint = np.array([[np.mean((paths[:, 0] == j) & (paths[:, 1] == k)) for k in range(2)] for j in range(2)])
    expected = nat["class_share_C1"][:, None] * nat["transition_prob"][0]
    se = np.sqrt(expected * (1 - expected) / len(paths))
    assert np.all(np.abs(joint - expected) < 4 * se), (joint, expected)


def test_long_covariates_are_occasion_specific():
    """A covariate of long data enters each occasion's logits with its value at
    that occasion (beta_1 x_1 in eq. 8, beta_2 x_2 in eq. 9)."""
    df, cols, _ = wide_data(2, n=6, seed=42)
    rng = np.random.default_rng(43)
    df["x_1"], df["x_2"] = rng.normal(size=6), rng.normal(size=6)
    rows = [{"id": i, "wave": t + 1, "x": df.loc[i, f"x_{t + 1}"],
             **{f"u{j + 1}": df.loc[i, cols[f"t{t + 1}"][j]] for j in range(3)}} for i in range(6) for t in range(2)]
    fam_long = bm.lta(pd.DataFrame(rows), ["u1", "u2", "u3"], 2, person="id", time="wave", covariates=["x"])
    _, v, theta = random_point(fam_long, seed=44)
    y = np.stack([df[cols["t1"]].to_numpy(), df[cols["t2"]].to_numpy()], axis=1)
    expected = brute_loglik(y, [v["tau"]] * 2, v, 2, x=[df[["x_1"]].to_numpy(), df[["x_2"]].to_numpy()])
    np.testing.assert_allclose(compiled(fam_long).unit_loglik(theta), expected, rtol=0, atol=1e-8)


def test_two_level_relabelling_of_each_occasion_separately():
    """invariance=False, two-level: relabelling C_1 alone flips alpha_1j (and the
    sign of beta, eq. 15) and moves gamma into mu; C_2 alone flips alpha_2j."""
    df, cols, _ = two_level_data()
    fam = bm.lta(df, cols, 2, cluster="school", invariance=False, integration={"rule": "trapezoid", "n_points": 9})
    comp, v, theta = random_point(fam, seed=50, scale=0.7)
    base = comp.unit_loglik(theta)
    for perms in ({"C1": [1, 0]}, {"C2": [1, 0]}, {"C1": [1, 0], "C2": [1, 0]}):
        moved = fam.permute_classes(v, {g: np.array(p) for g, p in perms.items()})
        np.testing.assert_allclose(comp.unit_loglik(comp.packing.pack(moved)), base, atol=1e-9, err_msg=str(perms))
    moved = fam.permute_classes(v, {"C1": np.array([1, 0])})
    np.testing.assert_allclose(moved["beta"], -v["beta"])
    np.testing.assert_allclose(moved["mu"], v["mu"] + v["gamma_1_2"][:, 0])


def test_two_level_simulated_paths_follow_the_model_shares(two_level):
    """Classes drawn with cluster random intercepts (eq. 15) have the model's
    occasion shares and averaged transitions (within 4 SE over 27 000 paths;
    3 clusters per draw, so the SE is that of 9 000 cluster draws)."""
    from bayesmix.families.lta_sim import draw_paths

    fam = two_level[0]
    comp, _, theta = random_point(fam, seed=51, scale=0.7)
    nat = comp.reported(theta)
    rng = np.random.default_rng(52)
    paths = np.stack([draw_paths(fam, nat, rng) for _ in range(3000)])  # (draws, N, T)
    for t, name in enumerate(["class_share_C1", "class_share_C2"]):
        per_draw = (paths[:, :, t] == 0).mean(axis=1)
        se = per_draw.std() / np.sqrt(len(per_draw))
        assert abs(per_draw.mean() - nat[name][0]) < 4 * se, (name, per_draw.mean(), nat[name][0], se)
    stay = ((paths[:, :, 0] == 0) & (paths[:, :, 1] == 0)).mean() / (paths[:, :, 0] == 0).mean()
    assert abs(stay - nat["transition_prob"][0, 0, 0]) < 0.02, (stay, nat["transition_prob"][0, 0, 0])
