"""Model families: one module per paper section, one registry line each.

``tests/test_registry.py`` iterates ``REGISTRY`` so that every family gets the
shared checks (a plain PyMC model, unconstrained parameters, starts and bounds,
class-permutation invariance). A new family is a new module that subclasses
``FamilyModel``, one line here and one example there.
"""

from bayesmix.families.base import FamilyModel
from bayesmix.families.lca import LCAModel, lca
from bayesmix.families.regression import RegressionModel, mixture_regression
from bayesmix.families.within_between import within_between

REGISTRY = {
    "lca": lca,
    "mixture_regression": mixture_regression,
    "within_between": within_between,
}

__all__ = ["REGISTRY", "FamilyModel", "LCAModel", "RegressionModel", "lca", "mixture_regression", "within_between"]
