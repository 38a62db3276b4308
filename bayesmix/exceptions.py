"""Exception and warning classes of bayesmix.

Every error a user can trigger with bad input is one of these, raised before any
PyTensor compilation, with a message naming the argument/column, the value
received and the fix (in the style of StepMix and bambi).
"""

from __future__ import annotations


class BayesmixError(Exception):
    """Base class of every bayesmix error."""


class DataError(BayesmixError, ValueError):
    """The data cannot be used as given (unknown column, bad codes, ...)."""


class SpecificationError(BayesmixError, ValueError):
    """A model argument is invalid (n_classes < 1, unknown link, ...)."""


class FitError(BayesmixError, RuntimeError):
    """Estimation failed (no start converged, singular information, ...)."""


class BayesmixWarning(UserWarning):
    """Base class of bayesmix warnings."""


class DroppedRowsWarning(BayesmixWarning):
    """Rows were excluded from the analysis (they are counted and reported)."""


class StartsWarning(BayesmixWarning):
    """The best log-likelihood was reached by only one random start."""


class LabelSwitchingWarning(BayesmixWarning):
    """Class labels switched in MCMC draws (they were relabelled; see the report)."""


class ConvergenceWarning(BayesmixWarning):
    """An optimisation or a sampler did not converge cleanly."""


class IntegrationWarning(BayesmixWarning):
    """The log-likelihood depends on the integration rule: a finer rule changed
    it by more than the tolerance (the fit was refined, or should be)."""


class IdentificationWarning(BayesmixWarning):
    """The information matrix is singular at the optimum (parameters not
    identified, or a separation); the affected SEs are NaN."""


class ItemTypeWarning(BayesmixWarning):
    """An item's kind (binary, ordinal, continuous) was inferred from its codes
    where the choice is not obvious; the message says why and how to declare it."""


class MissingCodeWarning(BayesmixWarning):
    """A column holds values that look like missing-value codes (-9, 999, ...);
    they are used as numbers unless set to NaN."""


class PersistenceError(BayesmixError, TypeError):
    """A fit or model cannot be pickled, saved or loaded as asked (no recorded
    factory call, a prior without a stored representation, ...)."""


class DataMismatchError(PersistenceError, DataError):
    """``bayesmix.load`` was given data other than the fit's (the hash of the
    prepared arrays differs)."""


class FormatVersionError(PersistenceError):
    """A saved file was written in a format version this bayesmix cannot read."""
