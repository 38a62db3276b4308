"""Label switching with several class variables (fit/relabel.py): the section 6
model's between class D_j is relabelled in NUTS draws like C_ij (sampler mocked,
constructed switched draws), and simulation-study fits are aligned to the truth
over both class variables."""

import dataclasses
import json
import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix import families
from bayesmix.fit.compiled import compiled
from bayesmix.fit.relabel import align_to_truth, groups, relabel, table_labels
from bayesmix.fit.results import entropy
from registry_checks import fake_posterior, spread_point


@pytest.fixture(scope="module")
def wb():
    fam = families.example("within_between", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        res = bm.fit_ml(fam, n_starts=2, n_final=1, seed=0, progress=False)
    comp = compiled(fam)
    theta0 = comp.packing.pack(spread_point(fam))
    ref = dataclasses.replace(res, theta=theta0, point=comp.packing.unpack(theta0), natural=comp.reported(theta0))
    fam.cache["ml"] = res
    return fam, ref


def test_summary_and_tables_cover_both_class_variables(wb):
    fam, _ = wb
    res = fam.cache["ml"]
    text = res.summary()
    assert "classes C: 2, D: 2" in text
    assert "FINAL CLASS COUNTS AND PROPORTIONS (C: latent class)" in text
    assert "FINAL CLASS COUNTS AND PROPORTIONS (D: between class D)" in text
    assert "Entropy (C)" in text and "Entropy (D)" in text
    d = res.class_proportions("D")
    np.testing.assert_allclose(d["model"].sum(), 1.0, atol=1e-10)
    # counted over persons, who carry their cluster's D
    assert d["count_most_likely"].sum() == fam.data.n_persons
    cm = res.cluster_membership()
    assert cm.equals(res.memberships["D"]) and len(cm) == fam.data.n_clusters
    post = cm.filter(like="p_class").to_numpy()[fam.data.cluster_idx]
    np.testing.assert_allclose(d["posterior"], post.mean(axis=0), atol=1e-12)
    assert res.entropy_of("D") == pytest.approx(entropy(post))


def _switch(fam, dt, chain, draws, perms):
    """Put draws of one chain into another labelling (free values and deterministics)."""
    comp = compiled(fam)
    post = dt["posterior"]
    free = {n: post[n].to_numpy() for n in fam.free_names}
    moved = fam.permute_classes({n: v[chain, draws] for n, v in free.items()}, perms)
    for i, d in enumerate(np.arange(post.sizes["draw"])[draws]):
        flat = np.concatenate([np.asarray(moved[n][i]).reshape(-1) for n in fam.free_names])
        values = {**comp.packing.unpack(flat), **comp.deterministics(flat)}
        for name, val in values.items():
            arr = post[name].to_numpy().copy()
            arr[chain, d] = val
            post[name] = post[name].copy(data=arr)


def test_groups_of_the_section6_model(wb):
    fam, _ = wb
    assert groups(fam) == {"C": 2, "D": 2}
    assert [cv.membership_dims for cv in fam.class_variables] == [("person",), ("cluster",)]


def test_d_relabelled_like_c_in_draws(wb):
    fam, ref = wb
    dt, theta, _ = fake_posterior(fam, ref, n_chain=2, n_draw=12)
    # fake_posterior switched C and D in chain 1, draws 6-11; add D only (chain 0,
    # draws 2-4) and C only (chain 0, draws 8-9)
    _switch(fam, dt, 0, slice(2, 5), {"D": np.array([1, 0])})
    _switch(fam, dt, 0, slice(8, 10), {"C": np.array([1, 0])})
    # with M = 2 the D logit changes sign: the draws really are in another labelling
    switched_d = dt["posterior"]["alpha_between"].to_numpy()[0, 2:5, 0]
    np.testing.assert_allclose(switched_d, -theta[0, 2:5, _col(fam, "alpha_between")], atol=1e-9)
    with pytest.warns(bm.LabelSwitchingWarning, match="D: "):
        report = relabel(fam, dt, ref)
    assert report["groups"]["D"]["switched_draws_per_chain"] == [3, 6]
    assert report["groups"]["C"]["switched_draws_per_chain"] == [2, 6]
    assert report["switched_draws_per_chain"] == [5, 6]
    assert json.dumps(report)  # stored in the posterior attrs as JSON
    flat = np.concatenate([dt["posterior"][n].to_numpy().reshape(2, 12, -1) for n in fam.free_names], axis=-1)
    np.testing.assert_allclose(flat, theta, atol=1e-7)
    # the deterministics were recomputed for the relabelled draws
    comp = compiled(fam)
    share = comp.deterministics(theta[0, 3])["class_between_share"]
    np.testing.assert_allclose(dt["posterior"]["class_between_share"].to_numpy()[0, 3], share, atol=1e-10)


def _col(fam, name):
    comp = compiled(fam)
    return [i for i, o in enumerate(comp.packing.owners()) if o == name][0]


def test_align_to_truth_over_both_class_variables(wb):
    fam, ref = wb
    comp = compiled(fam)
    labels = table_labels(fam)
    truth_point = ref.point
    flat = comp.flat_reported(comp.packing.pack(truth_point))
    truth = dict(zip(labels, flat))
    perm, _, dist = align_to_truth(fam, truth_point, truth)
    assert perm == {"C": (0, 1), "D": (0, 1)} and dist == pytest.approx(0.0, abs=1e-20)
    for perms in ({"D": np.array([1, 0])}, {"C": np.array([1, 0]), "D": np.array([1, 0])}):
        fitted = fam.permute_classes(truth_point, perms)
        perm, aligned, dist = align_to_truth(fam, fitted, truth)
        assert dist < 1e-12, perms
        np.testing.assert_allclose(comp.packing.pack(aligned), comp.packing.pack(truth_point), atol=1e-7)
