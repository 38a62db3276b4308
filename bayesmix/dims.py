"""Names of dimensions and coordinates, used by every module (one source of truth).

Data dims: ``person`` (a row of the wide data), ``cluster`` (a level-2 unit),
``item`` (an observed indicator), ``covariate``.
Latent dims: ``class`` (the within or single-level latent class, C),
``class_logit`` (the K-1 non-reference classes of eq. 4; the last class is the
reference, alpha_K = 0), ``threshold`` (tau_k of eq. 1), ``re`` (a random-effect
dimension), ``re_bis`` (second index of a covariance), ``node`` (quadrature node).
"""

PERSON = "person"
CLUSTER = "cluster"
ITEM = "item"
COVARIATE = "covariate"
CLASS = "class"
CLASS_LOGIT = "class_logit"
THRESHOLD = "threshold"
CATEGORY = "category"
RESPONSE = "response"  # a category of a categorical item (item_prob columns)
RE = "re"
RE_BIS = "re_bis"
NODE = "node"
CONTINUOUS_ITEM = "continuous_item"

# ArviZ sampling dims
CHAIN = "chain"
DRAW = "draw"

# Mixture regression (sections 2, 5, 6): outcomes, their random coefficients and
# the predictors at each level.
OUTCOME = "outcome"
CONTINUOUS_OUTCOME = "continuous_outcome"
CLASS_COVARIATE = "class_covariate"
CLUSTER_COVARIATE = "cluster_covariate"
RE_COEF = "re_coef"  # a random intercept or slope of an outcome regression (eq. 5's eta_j)
RE_COEF_BIS = "re_coef_bis"
RE_COEF_OFFDIAG = "re_coef_offdiag"
RE_OFFDIAG = "re_offdiag"
CLASS_BETWEEN = "class_between"  # D_j of section 6
CLASS_BETWEEN_LOGIT = "class_between_logit"
BETWEEN_COVARIATE = "between_covariate"
OBSERVED_ITEM = "observed_item"  # a column of the analysed data (posterior predictive draws)

# Latent transition analysis (sections 3-4): occasions t = 1..T of the class C_t
OCCASION = "occasion"
TRANSITION = "transition"  # C_(t-1) -> C_t (rows of the transition matrices)
CLASS_FROM = "class_from"  # the earlier class j of P(C_t = k | C_(t-1) = j)
CLASS_FROM_LOGIT = "class_from_logit"  # the K-1 non-reference earlier classes (second index of gamma_dc, eq. 9)


def per_occasion(dim: str, occasion: int) -> str:
    """The dim of an occasion-specific block, e.g. ``covariate_2`` (covariates of C_2's logits)."""
    return f"{dim}_{occasion}"
