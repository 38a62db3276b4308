"""Class membership for new data (issue 10, part 3): ``bayesmix.predict_classes``
on every registered family reproduces the fit's memberships on the training
data; on the LCA it is checked against Bayes' rule written here in numpy (single
level: a subset of persons; two level: new clusters, whose random intercept is
integrated on a dense grid), on a between-level class per cluster, on posterior
draws (averaged and per draw), and bad new data give the fitting errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmix as bm
from bayesmix import families
from bayesmix.fit import bayes
from persist_fits import fit_of
from registry_checks import fake_posterior

NAMES = sorted(bm.REGISTRY)
# fitting every family is mostly compilation (5-25 s each here): the LCA by default, all with -m slow
FITTED = [n if n == "lca" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]
ITEMS = ["y1", "y2", "y3", "y4"]


@pytest.mark.parametrize("name", FITTED)
def test_training_data_reproduce_the_fit_exactly(name):
    fam, res = fit_of(name)
    pred = bm.predict_classes(res, fam.call.data)
    pd.testing.assert_frame_equal(pred.membership, res.membership, check_exact=True)
    assert list(pred.memberships) == list(res.memberships)
    for k, frame in res.memberships.items():
        pd.testing.assert_frame_equal(pred.memberships[k], frame, check_exact=True)
    assert pred.model is not res.model and pred.model.spec == res.model.spec


def _log_f(natural, df):
    """(N, K) log P(y_i | c) of the binary logit LCA items (eq. 1): P(y_p = 0 | c) =
    F(tau_cp), P(y_p = 1 | c) = 1 - F(tau_cp), F logistic."""
    tau = natural["tau"]  # (K, P): one threshold per binary item
    y = df[ITEMS].to_numpy().astype(int)
    return sum(np.where(y[:, [p]] == 0, special.log_expit(tau[:, p]), special.log_expit(-tau[:, p]))
               for p in range(len(ITEMS)))


def test_single_level_subset_is_bayes_rule():
    fam, res = fit_of("lca", False)
    df = fam.call.data
    rows = df.index[5:29]  # every item keeps both categories
    pred = bm.predict_classes(res, df.loc[rows])
    expect = res.membership.loc[rows]
    np.testing.assert_allclose(pred.membership.filter(like="p_class"), expect.filter(like="p_class"), rtol=0,
                               atol=1e-13)
    assert (pred.membership["class"] == expect["class"]).all()
    # Bayes' rule: P(c | y) = pi_c f(y | c) / sum_c' pi_c' f(y | c'), pi = softmax(alpha, 0)
    log_pi = np.log(special.softmax(np.append(res.natural["alpha"], 0.0)))
    post = special.softmax(log_pi + _log_f(res.natural, df.loc[rows]), axis=1)
    np.testing.assert_allclose(pred.membership.filter(like="p_class").to_numpy(), post, rtol=0, atol=1e-13)


def test_data_too_few_to_fit_are_predicted_beside_the_fit():
    """One person, or persons all with y1 = 1 (a constant item would be refused for
    fitting): evaluated beside the fit's rows, which are left out of the result."""
    fam, res = fit_of("lca", False)
    df = fam.call.data
    one = bm.predict_classes(res, df.iloc[[7]])
    assert list(one.membership.index) == [7]
    np.testing.assert_allclose(one.membership.filter(like="p_class"), res.membership.iloc[[7]].filter(like="p_class"),
                               rtol=0, atol=1e-13)
    ones = df[df["y1"] == 1]
    pred = bm.predict_classes(res, ones)
    assert list(pred.membership.index) == list(ones.index)
    np.testing.assert_allclose(pred.membership.filter(like="p_class"), res.membership.loc[ones.index].filter(
        like="p_class"), rtol=0, atol=1e-13)
    assert pred.model.data.n_persons == len(df) + len(ones)


def test_new_clusters_integrate_their_random_intercept():
    """Two-level LCA (K = 2, a random class-logit intercept u_j ~ N(0, psi)):
    whole training clusters give their training rows; renamed clusters (new
    labels, not in the fit) match the integral over u_j on a dense grid,
    P(C_ij = c | cluster) = int pi_c(u) f(y_ij | c) prod_(i' != i) f_i'(u) phi(u) du
    / int prod_i f_i(u) phi(u) du."""
    fam, res = fit_of("lca", True)
    df = fam.call.data
    keep = df[df["cluster"].isin([1, 4, 6])]
    pred = bm.predict_classes(res, keep)
    expect = res.membership.loc[keep.index]
    np.testing.assert_allclose(pred.membership.filter(like="p_class"), expect.filter(like="p_class"), rtol=0,
                               atol=1e-12)
    new = keep.assign(cluster=keep["cluster"].map({1: "new-a", 4: "new-b", 6: "new-c"}))
    got = bm.predict_classes(res, new).membership.filter(like="p_class").to_numpy()
    # brute force on a dense grid over u (the model's own rule has 61 trapezoid points)
    sd = np.sqrt(res.natural["psi"].reshape(-1)[0])
    u = np.linspace(-12 * sd, 12 * sd, 20001)
    log_phi = -0.5 * (u / sd) ** 2
    alpha = res.natural["alpha"][0]
    log_pi = np.stack([-np.logaddexp(0, -(alpha + u)), -np.logaddexp(0, alpha + u)], axis=1)  # (U, 2)
    log_f = _log_f(res.natural, new)
    expect_new = np.empty_like(got)
    for label in new["cluster"].unique():
        rows = np.flatnonzero((new["cluster"] == label).to_numpy())
        joint = log_pi[None] + log_f[rows][:, None, :]  # (n_j, U, 2)
        person = special.logsumexp(joint, axis=2)  # (n_j, U)
        others = person.sum(axis=0)[None] - person
        w = np.exp(joint + (others + log_phi[None])[:, :, None] - (person.sum(axis=0) + log_phi).max())
        expect_new[rows] = w.sum(axis=1) / w.sum(axis=(1, 2))[:, None]
    # the model's 61-point trapezoid rule on +-5 sd against the dense grid: 3.2e-7 measured
    np.testing.assert_allclose(got, expect_new, rtol=0, atol=1e-6)
    # one new cluster alone (a model needs two clusters): beside the fit's clusters
    alone = new[new["cluster"] == "new-b"]
    one = bm.predict_classes(res, alone)
    assert list(one.membership.index) == list(alone.index)
    np.testing.assert_allclose(one.membership.filter(like="p_class").to_numpy(),
                               got[(new["cluster"] == "new-b").to_numpy()], rtol=0, atol=1e-13)
    # the test can fail: ignoring the cluster (u = 0, no integration) is 1e-2 away or more
    at_zero = special.softmax(np.log(special.softmax([alpha, 0.0])) + log_f, axis=1)
    assert np.abs(at_zero - expect_new).max() > 1e-2
    np.testing.assert_allclose(got, expect.filter(like="p_class").to_numpy(), rtol=0, atol=1e-12)


def test_between_level_class_per_cluster():
    df = families.examples.example_data()
    fam = bm.lca(df, ITEMS, 2, cluster="cluster", class_level="between")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=2, n_final=1, progress=False)
    pred = bm.predict_classes(res, df)
    pd.testing.assert_frame_equal(pred.cluster_membership(), res.cluster_membership(), check_exact=True)
    pd.testing.assert_frame_equal(pred.membership, res.membership, check_exact=True)
    sub = df[df["cluster"].isin([0, 3, 5])]
    part = bm.predict_classes(res, sub).cluster_membership()
    assert list(part.index) == ["0", "3", "5"] or list(part.index) == [0, 3, 5]
    np.testing.assert_allclose(part.filter(like="p_class").to_numpy(),
                               res.cluster_membership().filter(like="p_class").to_numpy()[[0, 3, 5]], atol=1e-13)
    # Bayes' rule per cluster: P(C_j = c) prop. to pi_c prod_i f(y_ij | c) (eq. 16-17)
    log_pi = np.log(special.softmax(np.append(res.natural["alpha"], 0.0)))
    lf = _log_f(res.natural, df)
    joint = np.stack([lf[df["cluster"].to_numpy() == j].sum(axis=0) for j in range(8)]) + log_pi
    np.testing.assert_allclose(pred.cluster_membership().filter(like="p_class").to_numpy(),
                               special.softmax(joint, axis=1), atol=1e-12)


def test_bad_new_data_give_the_fitting_errors():
    fam, res = fit_of("lca", False)
    df = fam.call.data
    with pytest.raises(bm.DataError) as fitting:
        bm.lca(df.drop(columns="y3"), ITEMS, 2)
    with pytest.raises(bm.DataError) as predicting:
        bm.predict_classes(res, df.drop(columns="y3"))
    assert str(predicting.value) == str(fitting.value)
    bad = df.copy()
    bad["y2"] = bad["y2"].astype(object)
    bad.loc[0, "y2"] = "yes"
    with pytest.raises(bm.DataError, match="y2"):
        bm.predict_classes(res, bad)
    # a category the fit did not have: the model would differ
    unseen = df.copy()
    unseen.loc[2, "y1"] = 2.0
    with pytest.raises(bm.DataError, match=r"items differ from the fitted model's \('y1': binary \[0, 1\] in the fit, ordinal \[0, 1, 2\]"):
        bm.predict_classes(res, unseen)
    with pytest.raises(bm.SpecificationError, match="fit: got dict"):
        bm.predict_classes({}, df)


def test_posterior_draws_are_averaged(tmp_path, monkeypatch):
    """A posterior (sampler mocked: the ML point plus noise, half a chain in
    another labelling that ``sample`` undoes): the mean over draws of each draw's
    Bayes' rule, per draw on request; the same from the saved and loaded tree."""
    import nutpie

    fam, res = fit_of("lca", False)
    dt_fake = fake_posterior(fam, res, n_draw=6)[0]
    monkeypatch.setattr(bayes, "_nutpie_model", lambda model, init: None)
    monkeypatch.setattr(nutpie, "sample", lambda *a, **k: dt_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        dt = bm.sample(fam, ml=res, draws=6, tune=5, chains=2, progress=False)
    with pytest.raises(bm.SpecificationError, match="model: got None"):
        bm.predict_classes(dt, fam.call.data)
    pred = bm.predict_classes(dt, fam.call.data, model=res, per_draw=True)
    post = dt["posterior"]
    df = fam.call.data
    per = np.empty((2, 6, len(df), 2))
    for c in range(2):
        for d in range(6):
            nat = {"alpha": post["alpha"].values[c, d], "tau": post["tau"].values[c, d]}
            log_pi = np.log(special.softmax(np.append(nat["alpha"], 0.0)))
            per[c, d] = special.softmax(log_pi + _log_f(nat, df), axis=1)
    np.testing.assert_allclose(pred.draws["C"].to_numpy(), per, atol=1e-12)
    assert pred.draws["C"].dims == ("chain", "draw", "person", "class")
    np.testing.assert_allclose(pred.membership.filter(like="p_class").to_numpy(), per.mean(axis=(0, 1)), atol=1e-12)
    assert (pred.membership["class"].to_numpy() == per.mean(axis=(0, 1)).argmax(axis=1) + 1).all()
    loaded = bm.load(bm.save(dt, tmp_path / "post.zarr", model=res))
    again = bm.predict_classes(loaded, df.iloc[:10])
    np.testing.assert_allclose(again.membership.filter(like="p_class").to_numpy(), per.mean(axis=(0, 1))[:10],
                               atol=1e-12)
