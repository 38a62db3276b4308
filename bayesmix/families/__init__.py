"""Model families: one module per paper section, one registry line each.

``tests/test_registry.py`` iterates ``REGISTRY`` so that every family gets the
shared checks (a plain PyMC model, unconstrained parameters, starts and bounds,
class-permutation invariance, fitting, summary, sampling). A new family is a new
module that subclasses ``FamilyModel`` and one line here (ARCHITECTURE.md,
"Adding a family").
"""

import importlib
import sys

from bayesmix.families.base import ClassVariable, FamilyModel, ParameterInfo, Reported
from bayesmix.families.calls import record_calls
from bayesmix.families.fma import FMAModel, fma
from bayesmix.families.fma_gom import FMAGoMModel, fma_gom
from bayesmix.families.gom import GoMModel, gom
from bayesmix.families.irt import IRTModel, irt_2pl, irt_3pl
from bayesmix.families.lca import LCAModel, lca
from bayesmix.families.lta import LTAModel, lta
from bayesmix.families.mixture_regression import RegressionModel, mixture_regression
from bayesmix.families.within_between import WithinBetweenModel, within_between

REGISTRY = {
    "fma": fma,
    "fma_gom": fma_gom,
    "gom": gom,
    "irt_3pl": irt_3pl,
    "lca": lca,
    "lta": lta,
    "mixture_regression": mixture_regression,
    "within_between": within_between,
}
# every factory records its call (fam.call: pickling, bayesmix.load, predict_classes); the
# names above and in the families' modules are rebound to the recording factories
REGISTRY = record_calls(REGISTRY, globals())


def example(name: str, two_level: bool = False):
    """The tiny example model of registered family ``name`` (its module's
    ``example(two_level)``; None when the family has no such variant)."""
    module = sys.modules.get(REGISTRY[name].__module__) or importlib.import_module(REGISTRY[name].__module__)
    return module.example(two_level)


__all__ = ["example", "REGISTRY", "ClassVariable", "FamilyModel", "FMAModel", "fma", "FMAGoMModel", "fma_gom", "GoMModel", "gom", "IRTModel", "irt_2pl", "irt_3pl", "LCAModel", "LTAModel", "lta", "ParameterInfo", "RegressionModel", "Reported",
           "WithinBetweenModel", "lca", "mixture_regression", "within_between"]
