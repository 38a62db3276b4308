"""Model families: one module per paper section, one registry line each.

Tests iterate ``REGISTRY`` so that every family gets the shared checks (builds,
brute-force likelihood, ML/NUTS plumbing). A new family is a new module that
subclasses ``FamilyModel`` plus one line here.
"""

from bayesmix.families.base import FamilyModel
from bayesmix.families.lca import LCAModel, lca

REGISTRY = {
    "lca": lca,
}

__all__ = ["REGISTRY", "FamilyModel", "LCAModel", "lca"]
