"""models/epi_lta.py on quick settings: the structure of the real-data LTA analysis.

Expected values are counted here from the model structure (K classes, P binary items,
T occasions) or follow from identities of the model (the shares at occasion 2 are the
shares at occasion 1 times the transition matrix), not taken from the code under test.
"""

from __future__ import annotations


import numpy as np
import pytest
from model_scripts import load_script
from scipy import stats

# slow: 6 LCAs and 2 LTAs compiled (about 20-50 s); the default run executes the same
# analysis through notebooks/03 (tests/test_notebooks.py)
pytestmark = pytest.mark.slow

K_RANGE = (1, 2, 3)  # the script's K = 1..4 less one model, to keep this test short
N_ITEMS, N_OCCASIONS = 5, 2


def _load():
    return load_script("epi_lta")


@pytest.fixture(scope="module")
def epi():
    mod = _load()
    # 3 random starts (1 completed) suffice on these 5 items: every start of the quick
    # settings reaches the same optimum for K <= 3 (best_ll_replicated = n_final)
    return mod, mod.run(quick=True, k_range=K_RANGE, starts=(3, 1))


def lca_params(k, p=N_ITEMS):
    """Free parameters of an LCA of p binary items: one threshold per item and class,
    K - 1 class logits (eq. 1-2)."""
    return k * p + (k - 1)


def lta_params(k, invariant, p=N_ITEMS, n_t=N_OCCASIONS):
    """Markov LTA of p binary items at n_t occasions (eqs. 6-9): thresholds K P (once, or
    per occasion), alpha_1 (K - 1), per later occasion alpha_t (K - 1) and gamma (K - 1)^2."""
    thresholds = k * p * (1 if invariant else n_t)
    return thresholds + (k - 1) + (n_t - 1) * ((k - 1) + (k - 1) ** 2)


def test_bic_table_has_one_row_per_k_and_the_counted_parameters(epi):
    _, out = epi
    assert sorted(out["bic"]) == [1, 2]
    for occ, tab in out["bic"].items():
        assert list(tab.index) == list(K_RANGE)
        assert list(tab["n_params"]) == [lca_params(k) for k in K_RANGE]
        n = tab.attrs["n_obs"]
        assert 460 <= n <= 474  # 474 persons, a few answer none of the items at an occasion
        np.testing.assert_allclose(tab["bic"], -2 * tab["loglik"] + tab["n_params"] * np.log(n))
        np.testing.assert_allclose(tab["aic"], -2 * tab["loglik"] + 2 * tab["n_params"])
        assert np.all(np.diff(tab["loglik"]) > -1e-6)  # more classes never fit worse (nested at the ML)
        assert out["chosen_k"][occ] == int(tab["bic"].idxmin())
    assert out["k"] == max(out["chosen_k"].values())


def test_invariance_lr_test_df_is_the_counted_parameter_difference(epi):
    _, out = epi
    k, lrt = out["k"], out["lrt"]
    assert out["invariant"].n_params == lta_params(k, True)
    assert out["free"].n_params == lta_params(k, False)
    assert lrt.df == (N_OCCASIONS - 1) * k * N_ITEMS == lta_params(k, False) - lta_params(k, True)
    assert out["free"].loglik >= out["invariant"].loglik - 1e-6  # nested: started at the invariant point
    np.testing.assert_allclose(lrt.lr, 2 * (out["free"].loglik - out["invariant"].loglik), atol=1e-9)
    np.testing.assert_allclose(lrt.p, stats.chi2.sf(lrt.lr, lrt.df))


def test_transition_rows_sum_to_one_and_carry_the_shares(epi):
    _, out = epi
    trans, se = out["transition"].to_numpy(), out["transition_se"].to_numpy()
    k = out["k"]
    assert trans.shape == se.shape == (k, k)
    assert np.all((trans >= 0) & (trans <= 1))
    np.testing.assert_allclose(trans.sum(axis=1), 1.0, atol=1e-10)
    shares = out["shares"]
    p1, p2 = shares["C1 share"].to_numpy(), shares["C2 share"].to_numpy()
    np.testing.assert_allclose([p1.sum(), p2.sum()], 1.0, atol=1e-10)
    # P(C2 = k) = sum_j P(C1 = j) P(C2 = k | C1 = j) (no covariates: the same for everyone)
    np.testing.assert_allclose(p1 @ trans, p2, atol=1e-8)
    # every SE of a free (not at a bound) row is a positive number
    assert np.all(np.isfinite(shares[["C1 se", "C2 se"]].to_numpy()))


def test_profiles_paths_and_report(epi):
    mod, out = epi
    prof = out["profiles"]
    assert list(prof.index) == mod.ITEMS and prof.shape == (N_ITEMS, out["k"])
    assert np.all((prof.to_numpy() > 0) & (prof.to_numpy() < 1))
    paths = out["paths"]
    assert paths.to_numpy().sum() == out["invariant"].n_obs == 474
    text = mod.report(out)
    for key in ("(a) Number of classes", "lowest BIC", "Likelihood-ratio test", "Transition matrix",
                "Most likely class paths"):
        assert key in text, key
