"""bayesmix: multilevel mixture models (Asparouhov & Muthen, 2006) on PyMC.

One specification, two estimators: ``fit_ml`` (maximum likelihood with random
starts and robust standard errors, as Mplus) and ``sample`` (NUTS with nutpie on
the same marginal likelihood).
"""

from bayesmix.compare import LRTest, check_integration, compare_fits, lr_test
from bayesmix.core.quadrature import Integration
from bayesmix.derived import icc
from bayesmix.enumerate import BLRTest, ClassEnumeration, VLMRTest, bootstrap_lrt, compare_loo, enumerate_classes, vlmr_test
from bayesmix.data import dataset_items, list_datasets, load_dataset, prepare_wide
from bayesmix.exceptions import (
    BayesmixError,
    BayesmixWarning,
    ConvergenceWarning,
    DataError,
    DroppedRowsWarning,
    FitError,
    IdentificationWarning,
    IntegrationWarning,
    ItemTypeWarning,
    LabelSwitchingWarning,
    MissingCodeWarning,
    SpecificationError,
    StartsWarning,
    PersistenceError,
    DataMismatchError,
    FormatVersionError,
)
from bayesmix.families import REGISTRY, fma, fma_gom, gom, irt_2pl, irt_3pl, lca, lta, mixture_regression, within_between
from bayesmix.families.lta_derived import lta_r_squared, most_likely_paths, pattern_probabilities, transition_table
from bayesmix.fit.bayes import compare_ml_bayes, sample
from bayesmix.fit.compiled import get_backend, set_backend
from bayesmix.fit.laplace import fit_laplace
from bayesmix.fit.map import MAPResult, fit_map
from bayesmix.fit.ml import fit_ml
from bayesmix.fit.results import MLResult
from bayesmix.persist import load, save
from bayesmix.ppc import PredictiveChecks, predictive_checks
from bayesmix.predict import ClassPrediction, predict_classes
from bayesmix.simstudy import SimulationDesign, SimulationResult, run_simulation

__version__ = "0.1.0"

__all__ = [
    "BLRTest", "ClassEnumeration", "VLMRTest", "bootstrap_lrt", "compare_loo", "enumerate_classes", "vlmr_test",
    "BayesmixError", "BayesmixWarning", "ConvergenceWarning", "DataError", "DroppedRowsWarning", "FitError", "IdentificationWarning", "IntegrationWarning", "ItemTypeWarning", "MissingCodeWarning",
    "Integration", "LabelSwitchingWarning", "LRTest", "MLResult", "REGISTRY", "SimulationDesign", "SimulationResult", "SpecificationError",
    "StartsWarning",
    "check_integration", "compare_fits", "compare_ml_bayes", "dataset_items", "fit_laplace", "fit_map", "fit_ml", "MAPResult", "icc", "sample", "fma", "fma_gom", "gom", "irt_2pl", "irt_3pl", "lca", "lta", "lta_r_squared", "most_likely_paths", "pattern_probabilities", "transition_table", "mixture_regression", "within_between", "list_datasets", "load_dataset", "lr_test",
    "prepare_wide", "run_simulation", "get_backend", "set_backend",
    "PredictiveChecks", "predictive_checks",
    "save", "load", "predict_classes", "ClassPrediction", "PersistenceError", "DataMismatchError", "FormatVersionError",
]
