"""The compilation backend (issue 11, item 2): the setting switches PyTensor's
mode, every backend gives the brute-force LCA likelihood, bad settings are
refused, a missing JAX falls back to C, and compiling is announced on stderr
(one line per model)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytensor
import pytest
from scipy import special

import bayesmix as bm
from bayesmix.families.examples import example_data
from bayesmix.fit import compiled as cmod

ITEMS = ["y1", "y2", "y3", "y4"]
# "c" falls back to Numba where PyTensor has no C compiler configured (the default test
# run sets cxx= so that nothing is compiled with gcc: scripts/test.sh)
C_OR_NUMBA = "c" if pytensor.config.cxx else "numba"


@pytest.fixture
def restore_backend():
    saved = dict(cmod._state, announced=set(cmod._state["announced"]))
    yield
    cmod._state.update(saved)


def brute_ll(y, tau, alpha):
    """Binary logit LCA by class enumeration (eq. 1, 2, 4): P(y = 1 | c) = 1 - F(tau_c),
    class logits (alpha, 0) with the last class the reference."""
    log_prior = special.log_softmax(np.append(alpha, 0.0))
    log_p1, log_p0 = special.log_expit(-tau), special.log_expit(tau)  # (K, P)
    per_class = y @ log_p1.T + (1 - y) @ log_p0.T + log_prior  # (N, K)
    return float(special.logsumexp(per_class, axis=1).sum())


@pytest.fixture(scope="module")
def tiny():
    df = example_data()
    point = bm.lca(df, ITEMS, 2).start_point(np.random.default_rng(3))
    return df, point


def _ll(df, point, backend):
    cmod.set_backend(backend)
    m = bm.lca(df, ITEMS, 2)
    comp = cmod.compiled(m)
    ll, grad = comp.ll_and_grad(comp.packing.pack(point))
    linker = comp._fns[("unit_grad", backend)].maker.linker
    name = type(linker).__name__
    if name == "VMLinker":  # the C backend: PyTensor's VM running C thunks in its C loop
        name += "+C" if linker.use_cloop else ""
    return ll, grad, name


def test_jax_backend_gives_the_brute_force_ll(tiny, restore_backend):
    df, point = tiny
    y = df[ITEMS].to_numpy(float)
    expected = brute_ll(y, np.asarray(point["tau"]), np.asarray(point["alpha"]).reshape(-1))
    ll_jax, grad_jax, linker_jax = _ll(df, point, "jax")
    assert linker_jax == "JAXLinker"
    assert abs(ll_jax - expected) < 1e-9
    # float64 throughout: JAX in float32 would be off by about 1e-5 here
    assert np.asarray(grad_jax).dtype == np.float64


@pytest.mark.slow  # the C backend compiles its ops with gcc: ~40 s on an empty cache
@pytest.mark.skipif(not pytensor.config.cxx, reason="no C compiler configured for PyTensor (PYTENSOR_FLAGS cxx=)")
def test_c_and_numba_backends_give_the_same_ll(tiny, restore_backend):
    df, point = tiny
    y = df[ITEMS].to_numpy(float)
    expected = brute_ll(y, np.asarray(point["tau"]), np.asarray(point["alpha"]).reshape(-1))
    ll_c, grad_c, linker_c = _ll(df, point, "c")
    ll_jax, grad_jax, _ = _ll(df, point, "jax")
    ll_nb, grad_nb, linker_nb = _ll(df, point, "numba")
    assert (linker_c, linker_nb) == ("VMLinker+C", "NumbaLinker")
    assert abs(ll_c - expected) < 1e-9 and abs(ll_nb - expected) < 1e-9
    assert np.max(np.abs(grad_jax - grad_c)) < 1e-9 and np.max(np.abs(grad_nb - grad_c)) < 1e-9


def test_bad_backend_is_refused(restore_backend, monkeypatch):
    with pytest.raises(bm.SpecificationError, match=r"backend: got 'gpu'; valid choices are 'jax', 'c', 'numba'"):
        cmod.set_backend("gpu")
    with pytest.raises(bm.SpecificationError, match=r"messages: got 'no'"):
        cmod.set_backend(messages="no")
    monkeypatch.setenv("BAYESMIX_BACKEND", "cuda")
    cmod._state["backend"] = None
    with pytest.raises(bm.SpecificationError, match=r"BAYESMIX_BACKEND: got 'cuda'"):
        cmod.get_backend()
    monkeypatch.setenv("BAYESMIX_BACKEND", "C")
    cmod._state["backend"] = None
    assert cmod.get_backend() == C_OR_NUMBA


def test_missing_jax_falls_back_to_c_with_a_message(restore_backend, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    assert cmod.set_backend("jax") == C_OR_NUMBA
    err = capsys.readouterr().err
    assert err.count("\n") == (1 if C_OR_NUMBA == "c" else 2)
    assert "JAX is not installed; compiling with PyTensor's C backend instead" in err


def test_compiling_is_announced_once_per_model(tiny, restore_backend, capsys):
    df, _ = tiny
    cmod.set_backend("jax")
    cmod._state["announced"] = set()
    capsys.readouterr()
    bm.fit_ml(bm.lca(df, ITEMS, 2), n_starts=2, n_final=1, progress=False)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("bayesmix: compiling")]
    # one line for the model (the reported quantities and memberships compile quietly)
    assert len(lines) == 1, err
    assert re.fullmatch(r"bayesmix: compiling the likelihood and gradient of the lca model "
                        r"\(jax, 9 free parameters\) \.\.\. \d+\.\d s", lines[0]), lines[0]
    # a rebuild of the same model (a simulation study) is quiet
    bm.fit_ml(bm.lca(df, ITEMS, 2), n_starts=2, n_final=1, progress=False)
    assert "bayesmix: compiling" not in capsys.readouterr().err
    cmod.set_backend(messages=False)
    cmod._state["announced"] = set()
    bm.fit_ml(bm.lca(df, ITEMS, 2), n_starts=2, n_final=1, progress=False)
    assert "bayesmix: compiling" not in capsys.readouterr().err


def test_nutpie_compile_is_announced(tiny, restore_backend, capsys):
    from bayesmix.fit.bayes import _nutpie_model

    df, point = tiny
    cmod.set_backend("jax")
    cmod._state["announced"] = set()
    capsys.readouterr()
    cm = _nutpie_model(bm.lca(df, ITEMS, 2), point)
    err = capsys.readouterr().err
    assert re.search(r"bayesmix: compiling the NUTS sampler \(nutpie, jax\) of the lca model \(jax\) \.\.\. "
                     r"\d+\.\d s\n", err), err
    assert cm.n_dim == 9


def test_jax_keeps_float64_where_jax_promotion_would_not(restore_backend):
    """The K = 1 between-class LCA sums persons into clusters (Alloc + inc) and takes
    a logsumexp (switch with a float32 0): with PyTensor's own JAX Alloc it came back
    in float32. It must run in JAX (no fallback to C) and give each cluster's sum of
    independent item log-probabilities (K = 1) to 1e-12."""
    df = example_data()
    tau = np.array([0.3, -0.7, 1.1, 0.2])
    cmod.set_backend("jax")
    m = bm.lca(df, ITEMS, 1, cluster="cluster", class_level="between")
    comp = cmod.compiled(m)
    got = comp.unit_loglik(comp.packing.pack({"tau": tau[None]}))
    assert type(comp._fns[("unit_grad", "jax")].maker.linker).__name__ == "JAXLinker"
    assert got.dtype == np.float64
    y = df[ITEMS].to_numpy(float)
    per_person = (y * special.log_expit(-tau) + (1 - y) * special.log_expit(tau)).sum(axis=1)
    codes = {c: i for i, c in enumerate(m.data.cluster_labels)}
    expected = np.bincount([codes[c] for c in df["cluster"]], weights=per_person)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
