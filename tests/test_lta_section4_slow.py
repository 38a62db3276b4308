"""Section 4 two-level LTA: ML recovery of the section 4 population on the
paper's design (100 classrooms x 20 students), through the script
models/section4_two_level_lta.py (STARTS = 20 5; about 30 s on 2 cores).

Data seed 0, start seed 1 (the script's defaults), fixed: the checks are on one
sample. 26 free parameters (20 thresholds, alpha_1, mu, gamma, beta, two log
sds). With 26 estimates about 26 x 0.046 = 1.2 fall outside 2 SE by chance; on
this sample three do, all thresholds of the calm class 2: Stubborn (z = +2.1),
Break Rules (+2.4) and Break Things (-2.0). P(3 or more of 26 beyond 2 SE) is
about 0.11 for independent estimates, so the test allows 3 (P(4 or more) =
0.025) and requires every estimate within 3 SE.
"""

from __future__ import annotations


import numpy as np
import pytest
from model_scripts import load_script

from bayesmix.families import lta_section4 as s4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def script():
    return load_script("section4_two_level_lta")


@pytest.fixture(scope="module")
def full(script):
    return script.run(quick=False)


def _free_z(res):
    """{label: (estimate - truth) / se} over the free parameters (log sds through
    the variances: log sd = log(var) / 2, se(log sd) = se(var) / (2 var))."""
    pop = s4.section4_population()
    par = res.params.set_index("label")
    out = {}
    tau = par.loc[[lab for lab in par.index if lab.startswith("tau[")]]
    for (lab, row), true in zip(tau.iterrows(), np.ravel(pop["tau"])):
        out[lab] = (row["estimate"] - true) / row["se"]
    for name, lab in (("alpha_1", "alpha_1[1]"), ("mu", "mu[1]"), ("gamma_1_2", "gamma_1_2[1, 1]"),
                      ("beta", "beta")):
        out[lab] = (par.loc[lab, "estimate"] - float(np.ravel(pop[name])[0])) / par.loc[lab, "se"]
    for name in ("var_alpha1", "var_eps"):
        est, se = par.loc[name, "estimate"], par.loc[name, "se"]
        out[f"log_sd({name})"] = (0.5 * np.log(est) - 0.5 * np.log(float(pop[name]))) / (se / (2 * est))
    return out


def test_recovery_of_every_free_parameter(full):
    res = full["fit"]
    assert not any("StartsWarning" in w for w in full["warnings"]), full["warnings"]
    z = _free_z(res)
    assert len(z) == 26
    print({k: round(v, 2) for k, v in z.items()})
    assert all(np.isfinite(v) for v in z.values())
    beyond2 = [k for k, v in z.items() if abs(v) > 2]
    assert len(beyond2) <= 3, beyond2  # module docstring: seed 0 gives three, 1.2 expected
    assert all(abs(v) < 3 for v in z.values()), z


def test_recovery_of_shares_switching_and_r2(full):
    tab = full["tables"]
    for key in ("shares", "switching", "r2", "structural"):
        t = tab[key]
        z = (t["estimate"] - t["truth"]) / t["se"]
        print(key, z.round(2).to_dict())
        assert (z.abs() < 3).all(), (key, z)
    it = tab["items"]
    assert (it["pi1"] > it["pi2"]).all()  # fitted class 1 is the disruptive class


def test_full_report_contains_the_paper_values(script, full):
    text = script.report(full)
    for value in list(np.ravel(s4.PI)) + list(s4.PAPER.values()) + list(s4.PAPER_R2.values()):
        assert f"{value:.2f}" in text, value
    for name in s4.ITEM_NAMES:
        assert name in text
    assert "STARTS = 20 5" in text
