"""The checks every registered family must pass (ARCHITECTURE.md, "Adding a
family"), as plain functions of a built family model, so that test_registry.py
runs them for every entry of ``bayesmix.REGISTRY`` and a new family (the test-only
toy family of test_toy_family.py) gets them unchanged.

Sampling is mocked (the sampler is not under test here): the fake sampler
returns the ML point plus small noise, with a block of draws of one chain in
another labelling of every relabelling group; ``bayesmix.sample`` must find
and undo exactly those.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import xarray as xr

import bayesmix as bm
from bayesmix import dims
from bayesmix.families.base import ClassVariable, ParameterInfo, Reported
from bayesmix.fit import bayes
from bayesmix.fit.compiled import compiled
from bayesmix.fit.relabel import groups


def _cycle(k: int) -> np.ndarray:
    """A permutation moving every class (new class c is old class c + 1)."""
    return np.roll(np.arange(k), -1)


def check_plain_model(fam):
    """A plain PyMC model: one observed ``loglik`` on the unit dim, free
    parameters on the real line and declared, class variables with their dims
    and share Deterministics, every reported name in the model."""
    model = fam.model
    assert isinstance(model, pm.Model)
    assert [rv.name for rv in model.observed_RVs] == ["loglik", "y"]
    assert model.named_vars_to_dims["loglik"] == (fam.unit_dim,)
    assert all(model.rvs_to_transforms.get(rv) is None for rv in model.free_RVs)
    assert [rv.name for rv in model.free_RVs] == fam.free_names
    assert all(isinstance(p, ParameterInfo) and p.title for p in fam.free)
    assert all(isinstance(r, Reported) and r.title for r in fam.reported)
    assert all(name in model.named_vars for name in fam.reported_names)
    cvs = fam.class_variables
    assert cvs and all(isinstance(cv, ClassVariable) for cv in cvs)
    assert len({cv.name for cv in cvs}) == len(cvs)
    for cv in cvs:
        assert len(model.coords[cv.dim]) == cv.n_classes
        assert all(d in model.coords or d in (dims.PERSON, dims.CLUSTER) for d in cv.membership_dims)
        assert cv.share in fam.reported_names and model.named_vars_to_dims[cv.share] == (cv.dim,)
        if cv.logit_variance is not None:
            assert cv.logit_variance in fam.reported_names and fam.reported_info(cv.logit_variance).variance


def check_starts_and_bounds(fam):
    packing = compiled(fam).packing
    theta = packing.pack(fam.start_point(np.random.default_rng(0)))
    low, high = fam.bounds(packing)
    assert theta.shape == low.shape == high.shape == (packing.size,)
    assert np.all(low < high)
    assert np.all((theta >= low) & (theta <= high)), [lab for lab, t, lo, hi in
                                                      zip(packing.labels(), theta, low, high) if not lo <= t <= hi]
    assert len(packing.labels()) == packing.size == len(packing.owners())


def spread_point(fam, seed: int = 5) -> dict:
    """A random start with every free value moved by N(0, 0.5) noise (kept inside
    the bounds), so that the classes of every class variable differ and every
    relabelling matters; no parameter name is assumed."""
    rng = np.random.default_rng(seed)
    comp = compiled(fam)
    theta = comp.packing.pack(fam.start_point(rng))
    low, high = fam.bounds(comp.packing)
    theta = np.clip(theta + rng.normal(0.0, 0.5, size=theta.size), np.maximum(low, -12.0), np.minimum(high, 4.0))
    return comp.packing.unpack(theta)


def check_permutation_invariance(fam):
    """For every relabelling group: the likelihood is unchanged under a
    relabelling, the raw values do change, the inverse permutation restores
    them, and the class signature moves with the classes."""
    comp = compiled(fam)
    point = spread_point(fam)
    theta = comp.packing.pack(point)
    base = comp.unit_loglik(theta)
    sig0 = fam.class_signature(comp.reported(theta))
    assert set(sig0) == set(groups(fam))
    for group, k in groups(fam).items():
        perm = _cycle(k)
        moved = fam.permute_classes(point, {group: perm})
        theta_m = comp.packing.pack(moved)
        assert not np.allclose(theta_m, theta), group
        np.testing.assert_allclose(comp.unit_loglik(theta_m), base, atol=1e-9, err_msg=group)
        back = fam.permute_classes(moved, {group: np.argsort(perm)})
        np.testing.assert_allclose(comp.packing.pack(back), theta, atol=1e-7, err_msg=group)
        sig = fam.class_signature(comp.reported(theta_m))[group]
        np.testing.assert_allclose(sig, sig0[group][perm], atol=1e-7, err_msg=group)


def check_membership(fam):
    comp = compiled(fam)
    post = comp.memberships(comp.packing.pack(spread_point(fam)))
    assert list(post) == [cv.name for cv in fam.class_variables]
    for cv in fam.class_variables:
        shape = tuple(len(fam.coord_index(d)) for d in cv.membership_dims) + (cv.n_classes,)
        assert post[cv.name].shape == shape, cv.name
        np.testing.assert_allclose(post[cv.name].sum(axis=-1), 1.0, atol=1e-10)


def check_fit_and_summary(fam):
    """ML with MLR SEs, the parameter table, memberships, the summary."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.BayesmixWarning)
        # the integration check (tests/test_integration_default.py) is not under test here: tiny
        # examples run to the LCA limit, where it would refine the grid and refit on a new model
        res = bm.fit_ml(fam, n_starts=3, n_final=2, seed=0, progress=False, check_integration=False)
    assert np.isfinite(res.loglik) and res.n_params == compiled(fam).packing.size
    assert res.se_type == "mlr" and np.isfinite(res.params["estimate"]).all()
    assert np.isfinite(res.params["se"]).mean() > 0.5
    assert set(res.memberships) == {cv.name for cv in fam.class_variables}
    assert len(res.membership) == fam.data.n_persons
    text = res.summary()
    assert "MODEL RESULTS" in text and f"{res.loglik:.3f}" in text
    extra, own = fam.summary_sections(res)
    assert "\n".join(extra) in text  # the family's own sections are printed, and replace the titles of
    for r in fam.reported:  # what they print (e.g. the LTA's transition matrices)
        if r.name not in {cv.share for cv in fam.class_variables} | own:
            assert r.title in text, r.title
    for cv in fam.class_variables:
        if cv.n_classes > 1:
            props = res.class_proportions(cv.name)
            np.testing.assert_allclose(props["model"].sum(), 1.0, atol=1e-8)
            assert 0.0 <= res.entropy_of(cv.name) <= 1.0
    check_predictive(fam, res)
    return res


def check_predictive(fam, res):
    """The mixture predictive checks run on every family (bootstrap at the fit):
    replicates keep the data's shape and missing cells, the observed endorsement
    of each categorical column is the data's."""
    checks = bm.predictive_checks(res, n_reps=3, seed=1)
    assert checks.y_rep.shape == (3, *fam.data.y.shape)
    np.testing.assert_array_equal(np.isnan(checks.y_rep[0]), ~fam.data.observed)
    end = checks.endorsement()
    assert len(end) == sum(len(it.categories) if it.is_categorical else 1 for it in fam.data.items)
    for j, it in enumerate(fam.data.items):
        rows = end[end["item"] == str(it.name)]
        seen = fam.data.observed[:, j]
        if it.is_categorical:
            np.testing.assert_allclose(rows["observed"], [np.mean(fam.data.y[seen, j] == k)
                                                          for k in range(len(it.categories))], atol=1e-12)
    if fam.data.cluster_idx is not None:
        assert len(checks.item_icc()) == len(fam.data.items)
        assert len(checks.cluster_shares()) == 4 * fam.n_classes


def fake_posterior(fam, res, n_chain=2, n_draw=12, seed=0):
    """Draws = ML point + small noise in the shape nutpie returns; the second
    half of chain 1 is in another labelling of every relabelling group."""
    comp = compiled(fam)
    rng = np.random.default_rng(seed)
    theta = res.theta + 1e-3 * rng.standard_normal((n_chain, n_draw, res.theta.size))
    switch = {g: _cycle(k) for g, k in groups(fam).items()}
    free = comp.packing.unpack(theta.copy())  # views: keep theta the unswitched truth
    half = slice(n_draw // 2, n_draw)
    moved = fam.permute_classes({n: v[1, half] for n, v in free.items()}, switch)
    for n, v in moved.items():
        free[n][1, half] = v
    flat = np.concatenate([free[n].reshape(n_chain, n_draw, -1) for n in fam.free_names], axis=-1)
    dets = [[comp.deterministics(flat[c, d]) for d in range(n_draw)] for c in range(n_chain)]
    data = {n: (("chain", "draw") + fam.model.named_vars_to_dims.get(n, ()), v) for n, v in free.items()}
    for name in dets[0][0]:
        arr = np.array([[dets[c][d][name] for d in range(n_draw)] for c in range(n_chain)])
        data[name] = (("chain", "draw") + fam.model.named_vars_to_dims.get(name, ()), arr)
    used = {d for v in data.values() for d in v[0]}
    coords = {k: list(v) for k, v in fam.model.coords.items() if k in used}
    coords.update(chain=np.arange(n_chain), draw=np.arange(n_draw))
    n_switched = n_draw - n_draw // 2 if switch else 0  # nothing to switch: no exchangeable class variable
    return xr.DataTree.from_dict({"posterior": xr.Dataset(data, coords=coords)}), theta, n_switched


def check_sample_relabels(fam, res, monkeypatch):
    """``bayesmix.sample`` with the sampler mocked: every switched draw of every
    relabelling group is found and put back; log_likelihood per unit."""
    import dataclasses

    import nutpie

    # the reference: the ML result moved to a point where every class variable's
    # classes are well apart (tiny data may leave two classes nearly equal at ML)
    comp = compiled(fam)
    theta0 = comp.packing.pack(spread_point(fam))
    res = dataclasses.replace(res, theta=theta0, point=comp.packing.unpack(theta0), natural=comp.reported(theta0))
    dt_fake, theta, n_switched = fake_posterior(fam, res)
    monkeypatch.setattr(bayes, "_nutpie_model", lambda model, init: None)
    monkeypatch.setattr(nutpie, "sample", lambda *a, **k: dt_fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = bm.sample(fam, ml=res, draws=12, tune=5, chains=2, progress=False)
    report = dt["posterior"].attrs["label_switching"]
    assert f'"switched_draws_per_chain": [0, {n_switched}]' in report
    assert any(issubclass(w.category, bm.LabelSwitchingWarning) for w in caught) == bool(n_switched)
    flat = np.concatenate([dt["posterior"][n].to_numpy().reshape(2, 12, -1) for n in fam.free_names], axis=-1)
    np.testing.assert_allclose(flat, theta, atol=1e-6)  # relabelled back to the unswitched draws
    ll = dt["log_likelihood"]["loglik"]
    assert ll.dims == ("chain", "draw", fam.unit_dim)
    np.testing.assert_allclose(ll.to_numpy()[0, 0], comp.unit_loglik(theta[0, 0]), atol=1e-8)
    return dt
