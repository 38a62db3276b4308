"""Specification and argument checks of the mixture regression factories
(``mixture_regression``, ``within_between``): everything that is validated
before any data are prepared or any graph is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from bayesmix.core import items as core_items
from bayesmix.core.quadrature import Integration, as_integration
from bayesmix.data import PreparedData, prepare_wide
from bayesmix.exceptions import DataError, SpecificationError
from bayesmix.families.blocks import check_n_classes

LEVELS = ("within", "between", "within-between")
RE_COV = ("full", "diagonal")


@dataclass(frozen=True)
class RegressionSpec:
    """Specification of a two-level mixture regression (frozen; stored with every fit)."""

    n_classes: int
    class_level: str = "within"
    link: str = "logit"
    covariates: tuple = ()
    random: tuple = ()
    cluster_covariates: tuple = ()
    class_covariates: tuple = ()
    re_cov: str = "full"
    class_specific_variance: bool = False
    integration: Integration = field(default_factory=Integration)
    n_between: int = 1
    between_covariates: tuple = ()
    prior_names: tuple = ()


def _names(arg, argname):
    if arg is None:
        return ()
    if isinstance(arg, str):
        return (arg,)
    try:
        return tuple(arg)
    except TypeError:
        raise SpecificationError(f"{argname}: got {arg!r}; give a column name or a list of column names.") from None


def _outcome_words(message: str) -> str:
    message = message.replace("`items`", "`outcomes`").replace("item_types", "outcome_types")
    return "outcomes:" + message[len("items:"):] if message.startswith("items:") else message


def _check_arguments(spec_args: dict, cluster) -> None:
    """Argument checks of the regression factories, before any data or graph."""
    a = spec_args
    n_classes, n_between, class_level = a["n_classes"], a["n_between"], a["class_level"]
    random, covariates = a["random"], a["covariates"]
    needs_cluster = [name for name, v in (("random", random), ("cluster_covariates", a["cluster_covariates"]),
                                          ("n_between", n_between > 1),
                                          (f"class_level={class_level!r}", class_level != "within")) if v]
    if cluster is None and needs_cluster:
        raise SpecificationError(f"{needs_cluster[0]}: needs a two-level model; give cluster='<column>'.")
    bad = [t for t in random if t != "intercept" and t not in covariates]
    if bad:
        raise SpecificationError(f"random: got {bad[0]!r}; valid terms are 'intercept' and the covariates "
                                 f"{list(covariates)} (a random slope needs its covariate in `covariates`).")
    if len(set(random)) != len(random):
        raise SpecificationError(f"random: got duplicates in {list(random)}; list each term once.")
    if a["cluster_covariates"] and not random:
        raise SpecificationError("cluster_covariates: they predict the random effects (eq. 5), but random is "
                                 "empty; give random=['intercept', ...] or move them to class_covariates.")
    for argname in ("covariates", "cluster_covariates", "class_covariates", "between_covariates"):
        names = a[argname]
        if len(set(names)) != len(names):
            dup = [n for n in names if names.count(n) > 1][0]
            raise SpecificationError(f"{argname}: got {dup!r} more than once; list each column once.")
    overlap = [n for n in a["cluster_covariates"] if n in covariates]
    if overlap:
        raise SpecificationError(
            f"cluster_covariates: column {overlap[0]!r} is also in `covariates`; a cluster-level covariate on a "
            "random intercept (eq. 5) and a within-level slope on the same column cannot be told apart. Fix: "
            "keep it in one list (or centre the within-level version on its cluster mean and rename it).")
    if a["class_covariates"] and n_classes == 1:
        raise SpecificationError(f"class_covariates: got {list(a['class_covariates'])} with n_classes=1; a single "
                                 "class has no class logits to predict. Fix: drop them or use n_classes >= 2.")
    if a["class_specific_variance"] and not random:
        raise SpecificationError("class_specific_variance: got True without random effects; give random=["
                                 "'intercept', ...] or drop class_specific_variance.")
    if n_between > 1 and n_classes == 1 and not random:
        raise SpecificationError("n_between: a between class D with n_classes=1 and no random effects does not "
                                 "enter the likelihood (D acts through gamma_cd on C and through the random-"
                                 "effect means, eq. 24-25). Fix: n_classes >= 2 or random=['intercept', ...].")
    if a["class_specific_variance"] and class_level != "between" and n_between == 1:
        raise SpecificationError(f"class_specific_variance: got True with class_level={class_level!r}; class-"
                                 "specific random-effect variances need a between-level class (eq. 18).")
    if class_level == "within-between" and n_classes < 2:
        raise SpecificationError("class_level: 'within-between' needs n_classes >= 2 (the random intercept sits "
                                 "in the class logits).")


def build_regression(model_cls, data, outcomes, covariates, n_classes, n_between, *, cluster, class_level, random,
                     cluster_covariates, class_covariates, outcome_types, link, re_cov, class_specific_variance,
                     integration, priors, between_covariates=()):
    """Validate the arguments of a regression factory, prepare the data and build
    ``model_cls`` (``RegressionModel`` or its within-between subclass)."""
    n_classes = check_n_classes(n_classes)
    n_between = check_n_classes(n_between, "n_between")
    core_items.check_link(link)
    integration = as_integration(integration)
    if class_level not in LEVELS:
        raise SpecificationError(f"class_level: got {class_level!r}; valid choices are "
                                 + ", ".join(repr(v) for v in LEVELS) + ".")
    if re_cov not in RE_COV:
        raise SpecificationError(f"re_cov: got {re_cov!r}; valid choices are 'full', 'diagonal'.")
    args = dict(n_classes=n_classes, n_between=n_between, class_level=class_level, link=link,
                covariates=_names(covariates, "covariates"), random=_names(random, "random"),
                cluster_covariates=_names(cluster_covariates, "cluster_covariates"),
                class_covariates=_names(class_covariates, "class_covariates"),
                between_covariates=_names(between_covariates, "between_covariates"),
                re_cov=re_cov, class_specific_variance=bool(class_specific_variance), integration=integration)
    outcomes = _names(outcomes, "outcomes")
    _check_arguments(args, cluster)
    all_cov = list(dict.fromkeys([*args["covariates"], *args["cluster_covariates"], *args["class_covariates"],
                                  *args["between_covariates"]]))
    prepare_args = dict(items=list(outcomes), item_types=outcome_types, cluster=cluster, covariates=all_cov)
    if isinstance(data, PreparedData):
        prepared = data
    else:
        try:
            prepared = prepare_wide(data, **prepare_args)
        except DataError as err:  # the data layer speaks of items; this factory's argument is `outcomes`
            raise DataError(_outcome_words(str(err))) from None
    spec = RegressionSpec(**args, prior_names=tuple(sorted(priors or {})))
    model = model_cls.build(prepared, spec, priors)
    model._prepare_args = prepare_args
    return model


