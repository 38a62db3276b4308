"""The Mplus-style tables of the printed ML summary (issue 10, part 8): the
CLASSIFICATION QUALITY table (average posterior class probabilities by most
likely class), model-estimated class counts (share x N) and C#k labels of the
class logits, checked against numpy computations from the membership frames."""

import importlib
import re
import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.families.examples import example_data
from bayesmix.fit.summary import CLASSIFICATION_TITLE

lca_family = importlib.import_module("bayesmix.families.lca")
lta_family = importlib.import_module("bayesmix.families.lta")
wb_family = importlib.import_module("bayesmix.families.within_between")


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bm.fit_ml(model, n_starts=4, n_final=2, seed=1, progress=False)


@pytest.fixture(scope="module")
def fits():
    return {"lca": _fit(lca_family.example()), "lta": _fit(lta_family.example()),
            "within_between": _fit(wb_family.example())}


def brute_table(res, name):
    """Row k: mean of the posterior probability rows whose argmax is k (persons;
    a cluster-level class counted once per person of its cluster)."""
    cv = res.model.class_variable(name)
    post = res.memberships[name].filter(like="p_class").to_numpy()
    if cv.membership_dims == ("cluster",):
        post = post[np.asarray(res.model.data.cluster_idx)]
    modal = post.argmax(axis=1)
    # a class that is nobody's most likely one: a row of NaN
    return np.vstack([post[modal == k].mean(axis=0) if (modal == k).any() else np.full(post.shape[1], np.nan)
                      for k in range(post.shape[1])])


def printed_table(text, cv, several):
    """The numbers printed under the class variable's CLASSIFICATION QUALITY title."""
    title = CLASSIFICATION_TITLE + (f" ({cv.name}: {cv.label})" if several else "")
    lines = text.splitlines()
    start = lines.index(title) + 2
    rows = [lines[start + k].split() for k in range(cv.n_classes)]
    assert [int(r[0]) for r in rows] == list(range(1, cv.n_classes + 1))
    return np.array([[np.nan if v == "n/a" else float(v) for v in r[1:]] for r in rows])


def printed_counts(text, cv, several):
    """(class, model count, model proportion) rows of FINAL CLASS COUNTS."""
    head = "FINAL CLASS COUNTS AND PROPORTIONS" + (f" ({cv.name}: {cv.label})" if several else "")
    lines = text.splitlines()
    start = lines.index(head) + 3
    return np.array([[float(v) for v in lines[start + k].split()[:3]] for k in range(cv.n_classes)])


@pytest.mark.parametrize("family, names", [("lca", ["C"]), ("lta", ["C1", "C2"]), ("within_between", ["C", "D"])])
def test_classification_table_matches_brute_force_and_print(fits, family, names):
    res = fits[family]
    text = res.summary()
    for name in names:
        cv = res.model.class_variable(name)
        expected = brute_table(res, name)
        table = res.classification_table(name)
        assert list(table.index) == list(table.columns) == list(range(1, cv.n_classes + 1))
        np.testing.assert_allclose(table.to_numpy(), expected, atol=1e-12, rtol=0)
        filled = ~np.isnan(expected).all(axis=1)
        assert filled.sum() >= 1
        np.testing.assert_allclose(table.to_numpy()[filled].sum(axis=1), 1.0, atol=1e-12)
        # printed with 3 decimals
        np.testing.assert_allclose(printed_table(text, cv, len(names) > 1), expected, atol=5e-4 + 1e-12, rtol=0)
    assert text.count(CLASSIFICATION_TITLE) == len(names)


def test_default_is_primary_class_variable(fits):
    res = fits["lta"]
    np.testing.assert_array_equal(res.classification_table().to_numpy(), res.classification_table("C1").to_numpy())


@pytest.mark.parametrize("family, names", [("lca", ["C"]), ("lta", ["C1", "C2"]), ("within_between", ["C", "D"])])
def test_model_counts_are_share_times_n(fits, family, names):
    res = fits[family]
    text = res.summary()
    n_persons = res.membership.shape[0]
    for name in names:
        cv = res.model.class_variable(name)
        share = res.params.loc[res.params.parameter == cv.share, "estimate"].to_numpy()
        rows = printed_counts(text, cv, len(names) > 1)
        np.testing.assert_array_equal(rows[:, 0], np.arange(1, cv.n_classes + 1))
        np.testing.assert_allclose(rows[:, 1], share * n_persons, atol=5e-3 + 1e-9, rtol=0)
        np.testing.assert_allclose(rows[:, 2], share, atol=5e-5 + 1e-12, rtol=0)
        assert abs(rows[:, 1].sum() - n_persons) < 0.01 * cv.n_classes


def _result_rows(text):
    """term -> estimate of the MODEL RESULTS rows."""
    block = text.split("MODEL RESULTS")[1].split("RESULTS IN PROBABILITY SCALE")[0]
    out = {}
    for line in block.splitlines():
        m = re.match(r"^    (\S.*?)\s+(-?\d+\.\d{3})\s", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_class_logit_labels(fits):
    rows = _result_rows(fits["lca"].summary())
    alpha = fits["lca"].params.query("parameter == 'alpha'")["estimate"].to_numpy()
    assert rows["C#1"] == pytest.approx(alpha[0], abs=5e-4)
    assert "1" not in rows

    p = fits["lta"].params.set_index("label")["estimate"]
    rows = _result_rows(fits["lta"].summary())
    assert rows["C1#1"] == pytest.approx(p["alpha_1[1]"], abs=5e-4)
    assert rows["C2#1"] == pytest.approx(p["alpha_2[1]"], abs=5e-4)
    assert rows["C2#1, C1#1"] == pytest.approx(p["gamma_1_2[1, 1]"], abs=5e-4)

    p = fits["within_between"].params.set_index("label")["estimate"]
    rows = _result_rows(fits["within_between"].summary())
    assert rows["D#1"] == pytest.approx(p["alpha_between[1]"], abs=5e-4)


def test_one_class_prints_no_table():
    res = _fit(bm.lca(example_data(), ["y1", "y2", "y3", "y4"], 1))
    text = res.summary()
    assert "CLASSIFICATION QUALITY" not in text
    assert "FINAL CLASS COUNTS" not in text
