"""Model families: one module per paper section, one registry line each.

Tests iterate ``REGISTRY`` so that every family gets the shared checks (builds,
brute-force likelihood, ML/NUTS plumbing). A new family is a new module that
subclasses ``FamilyModel`` plus one line here.
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
