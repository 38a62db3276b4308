"""Likelihood ratio tests of K-1 against K classes: the Vuong-Lo-Mendell-Rubin
test and its adjusted version (Mplus TECH11), and the parametric bootstrap LRT
(Mplus TECH14). ``bayesmix.enumerate`` puts them in the class-enumeration table.

VLMR (Vuong 1989, Theorem 3.3; Lo, Mendell & Rubin 2001, Biometrika 88, 767-778).
With f the K-class model (p free parameters theta) and g the K-1-class model
(q free parameters gamma), 2 LR = 2 [L_f(theta^) - L_g(gamma^)] is referred to the
distribution of sum_i lambda_i Z_i^2 (Z_i iid N(0, 1)), lambda the p + q
eigenvalues of

    W = [ -B_f A_f^-1     -B_fg A_g^-1 ]
        [  B_gf A_f^-1     B_g  A_g^-1 ]

with A = (1/n) sum_j d2 l_j / d theta d theta' (the mean per-unit Hessian), B_f =
(1/n) sum_j s_fj s_fj', B_fg = (1/n) sum_j s_fj s_gj' (per-unit scores s of the two
fits, units = persons, or clusters in a two-level model), all at the two ML
estimates. The tail probability of the weighted chi-square is computed by Imhof's
(1961) inversion formula. The adjusted LRT (LMR 2001, eq. 15) divides 2 LR by
1 + 1 / ((p - q) log n) and refers it to the same distribution.

Caveats (documented in Jeffries 2003, Psychometrika 68, 409-431, and Nylund,
Asparouhov & Muthen 2007): the K-class model under the K-1-class null is not
identified (a class share on the boundary, or two classes equal), which violates
the regularity conditions of Vuong's theorem that LMR relied on; the test's size
is therefore not guaranteed, and the VLMR p-value tends to be too small (over-
extraction) in some designs and unstable in others. It is a heuristic; the BLRT is
preferred when affordable. The K-1 fit must be the best (global) solution and the
two fits must use the same data.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate
from tqdm import tqdm

from bayesmix.exceptions import BayesmixWarning, SpecificationError
from bayesmix.fit.compiled import compiled
from bayesmix.fit.ml import fit_ml


def weighted_chi2_sf(x: float, weights) -> float:
    """P(sum_i w_i Z_i^2 > x) by Imhof's (1961) formula (eq. 3.2 with central
    terms): 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du, theta(u) =
    1/2 sum atan(w_i u) - x u / 2, rho(u) = prod (1 + w_i^2 u^2)^(1/4). Weights may
    be negative; weights below 1e-10 of the largest are dropped (exact zeros)."""
    w = np.asarray(weights, float).ravel()
    if w.size == 0 or np.max(np.abs(w)) == 0:
        return float(x < 0)
    w = w[np.abs(w) > 1e-10 * np.max(np.abs(w))]
    omega = 0.5 * float(x)

    def a(u):
        return 0.5 * np.sum(np.arctan(w * u))

    def denom(u):
        return u * np.exp(0.25 * np.sum(np.log1p((w * u) ** 2)))

    def f(u):
        if u == 0.0:  # limit u -> 0: (sum w - x) / 2
            return 0.5 * (w.sum() - x)
        return np.sin(a(u) - omega * u) / denom(u)

    # [0, u0] by plain adaptive quadrature; the oscillating tail (decaying only like
    # u^(-1 - m/2), m = len(w)) by QAWF Fourier quadrature after writing
    # sin(a - omega u) = sin(a) cos(omega u) - cos(a) sin(omega u)
    u0 = 20.0 / np.max(np.abs(w))
    head, _ = integrate.quad(f, 0.0, u0, limit=400, epsabs=1e-11, epsrel=1e-10)
    if omega != 0:
        sign, wv = np.sign(omega), abs(omega)
        t_cos, _ = integrate.quad(lambda u: np.sin(a(u)) / denom(u), u0, np.inf, weight="cos", wvar=wv,
                                  limlst=200)
        t_sin, _ = integrate.quad(lambda u: np.cos(a(u)) / denom(u), u0, np.inf, weight="sin", wvar=wv,
                                  limlst=200)
        tail = t_cos - sign * t_sin
    else:  # x = 0: the integrand sin(a(u)) / (u rho(u)) does not oscillate in the tail
        tail, _ = integrate.quad(f, u0, np.inf, limit=400)
    return float(np.clip(0.5 + (head + tail) / np.pi, 0.0, 1.0))


def _free_mask(res) -> np.ndarray:
    fixed = set(res.convergence.get("fixed_at_bound", ()))
    return np.array([lab not in fixed for lab in compiled(res.model).packing.labels()], bool)


def vlmr_matrix(null, alt) -> np.ndarray:
    """Vuong's W (module docstring) from the two fits; parameters fixed at a bound
    (Mplus' convention) are left out."""
    blocks = {}
    for key, res in (("f", alt), ("g", null)):
        info = compiled(res.model).second_order(res.theta)
        free = _free_mask(res)
        blocks[key] = (info["hessian"][np.ix_(free, free)], info["scores"][:, free])
    (h_f, s_f), (h_g, s_g) = blocks["f"], blocks["g"]
    n = s_f.shape[0]
    if s_g.shape[0] != n:
        raise SpecificationError(f"vlmr_test: the two fits have {s_g.shape[0]} and {n} units; fit both models "
                                 "to the same data.")
    a_f_inv, a_g_inv = np.linalg.inv(h_f / n), np.linalg.inv(h_g / n)
    b_f, b_g, b_fg = s_f.T @ s_f / n, s_g.T @ s_g / n, s_f.T @ s_g / n
    return np.block([[-b_f @ a_f_inv, -b_fg @ a_g_inv], [b_fg.T @ a_f_inv, b_g @ a_g_inv]])


@dataclass
class VLMRTest:
    """Mplus TECH11: VLMR and adjusted LMR test of ``k_null`` against ``k_alt`` classes."""

    k_null: int
    k_alt: int
    loglik_null: float
    loglik_alt: float
    statistic: float  # 2 (LL_alt - LL_null)
    df: int  # difference in the number of parameters
    eigenvalues: np.ndarray
    p_value: float
    adjusted_statistic: float
    adjusted_p_value: float
    n_units: int

    @property
    def mean(self) -> float:
        """Mean of the weighted chi-square null distribution (sum of the weights)."""
        return float(np.sum(self.eigenvalues))

    @property
    def sd(self) -> float:
        return float(np.sqrt(2 * np.sum(self.eigenvalues ** 2)))

    def __str__(self) -> str:
        return (f"VUONG-LO-MENDELL-RUBIN LRT FOR {self.k_null} (H0) VERSUS {self.k_alt} CLASSES\n"
                f"  H0 Loglikelihood Value {self.loglik_null:14.3f}\n"
                f"  2 Times the Loglikelihood Difference {self.statistic:10.3f}\n"
                f"  Difference in the Number of Parameters {self.df:6d}\n"
                f"  Mean {self.mean:10.3f}  Standard Deviation {self.sd:10.3f}  P-Value {self.p_value:.4f}\n"
                f"LO-MENDELL-RUBIN ADJUSTED LRT TEST: Value {self.adjusted_statistic:.3f}  "
                f"P-Value {self.adjusted_p_value:.4f}")


def vlmr_test(null, alt) -> VLMRTest:
    """VLMR and adjusted LMR tests (module docstring) of the K-1-class fit ``null``
    against the K-class fit ``alt`` (two ``MLResult`` of the same data)."""
    if alt.n_params <= null.n_params or alt.n_classes <= null.n_classes:
        raise SpecificationError(f"vlmr_test: got null with K={null.n_classes} ({null.n_params} parameters) and "
                                 f"alt with K={alt.n_classes} ({alt.n_params}); give the fit with fewer classes "
                                 "first.")
    w = vlmr_matrix(null, alt)
    lam = np.linalg.eigvals(w)
    if np.max(np.abs(lam.imag), initial=0.0) > 1e-6 * max(1.0, np.max(np.abs(lam))):
        warnings.warn("vlmr_test: W has complex eigenvalues (the K-class fit is close to the K-1-class "
                      "solution); their real parts are used.", BayesmixWarning, stacklevel=2)
    lam = np.sort(lam.real)[::-1]
    stat = 2.0 * (alt.loglik - null.loglik)
    df = int(alt.n_params - null.n_params)
    n = int(alt.n_obs)  # the n of BIC (persons), as the sample size of LMR eq. 15
    adj = stat / (1.0 + 1.0 / (df * np.log(n)))  # LMR (2001) eq. 15
    return VLMRTest(k_null=null.n_classes, k_alt=alt.n_classes, loglik_null=null.loglik, loglik_alt=alt.loglik,
                    statistic=stat, df=df, eigenvalues=lam, p_value=weighted_chi2_sf(stat, lam),
                    adjusted_statistic=adj, adjusted_p_value=weighted_chi2_sf(adj, lam), n_units=n)


# --------------------------------------------------------------------------- bootstrap (TECH14)
def _replace_items(model, df: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """The analysed rows of ``df`` (the frame ``model`` was built from) with the item
    columns replaced by simulated responses ``y`` (N, P) of ``model.simulate``:
    categorical codes are mapped back to the observed category values; covariates
    and cluster ids are kept."""
    d = model.data
    out = df.loc[d.row_index].copy()
    for p, it in enumerate(d.items):
        col = y[:, p].astype(float)
        if it.is_categorical:
            miss = np.isnan(col)
            cats = np.asarray(it.categories)
            vals = pd.Series(cats[np.where(miss, 0, col).astype(int)], index=out.index)
            if miss.any():
                vals = vals.astype(float) if np.issubdtype(cats.dtype, np.number) else vals.astype(object)
                vals[miss] = np.nan
            elif vals.dtype != out[it.name].dtype:
                try:  # keep the column's dtype (int codes stay int) when it can hold the values
                    vals = vals.astype(out[it.name].dtype)
                except (TypeError, ValueError):
                    pass
            out[it.name] = vals
        else:
            out[it.name] = col
    return out


@dataclass
class BLRTest:
    """Mplus TECH14: parametric bootstrap LRT of ``k_null`` against ``k_alt`` classes."""

    k_null: int
    k_alt: int
    statistic: float
    replicates: pd.DataFrame  # rep, loglik_null, loglik_alt, statistic, error
    p_value: float
    seed: int
    seconds: float

    @property
    def n_boot(self) -> int:
        return int(self.replicates["statistic"].notna().sum())

    def __str__(self) -> str:
        return (f"PARAMETRIC BOOTSTRAPPED LRT FOR {self.k_null} (H0) VERSUS {self.k_alt} CLASSES\n"
                f"  2 Times the Loglikelihood Difference {self.statistic:10.3f}\n"
                f"  Approximate P-Value {self.p_value:.4f}\n  Successful Bootstrap Draws {self.n_boot}")


def bootstrap_lrt(build, data, null, alt, *, n_boot: int = 49, n_starts: int = 20, n_final: int = 5,
                  seed: int = 0, executor=None, progress: bool = True, fit_kwargs: dict | None = None) -> BLRTest:
    """Parametric bootstrap LRT (Mplus TECH14; McLachlan 1987) of ``null`` (the
    K-1-class MLResult) against ``alt`` (K classes), both fitted to ``data`` with
    ``build(data, k)``.

    Replicate b draws a data set from the K-1-class estimates
    (``null.model.simulate``, generator ``default_rng(SeedSequence(seed).spawn(n_boot)[b])``),
    fits K-1 and K classes to it, each with its own ``n_starts`` random starts (fit
    seed drawn from the same generator after the data), and records
    2 (LL_K - LL_K-1). p = (1 + #{LR_b >= LR}) / (1 + B) over the successful
    replicates (Davison & Hinkley 1997, eq. 4.11; Mplus reports #/B), so with B
    replicates the smallest attainable p is 1 / (B + 1).

    The data sets are drawn in this process; the fits run here one after the
    other, or, with ``executor`` (any ``concurrent.futures``-style object with
    ``submit``: a ``ProcessPoolExecutor``, a dask ``Client``), one task per
    replicate (``build`` travels by cloudpickle, lambdas are fine). Each
    replicate's numbers depend only on ``seed`` and b, so serial and parallel runs
    agree. A failed replicate is recorded in ``replicates["error"]`` and left out.
    """
    import cloudpickle

    fit_kwargs = {"check_integration": False, **(fit_kwargs or {})}
    t0 = time.perf_counter()
    stat = 2.0 * (alt.loglik - null.loglik)
    k0, k1 = null.n_classes, alt.n_classes
    tasks = []
    for b, child in enumerate(np.random.SeedSequence(seed).spawn(n_boot)):
        rng = np.random.default_rng(child)
        frame = _replace_items(null.model, data, null.model.simulate(null.natural, rng)[0])
        tasks.append((b, frame, int(rng.integers(2 ** 31 - 1))))
    opts = dict(ks=(k0, k1), n_starts=n_starts, n_final=n_final, fit_kwargs=fit_kwargs)
    bar = tqdm(total=n_boot, desc=f"BLRT {k0} vs {k1} classes", disable=not progress, leave=False)
    rows = []
    if executor is None:
        models: dict[int, object] = {}
        for b, frame, fit_seed in tasks:
            rows.append(_replicate(build, b, frame, fit_seed, models=models, **opts))
            bar.update()
    else:
        payload = cloudpickle.dumps(build)
        futures = [executor.submit(_replicate_remote, payload, b, frame, fit_seed, opts)
                   for b, frame, fit_seed in tasks]
        for b, fut in enumerate(futures):
            try:
                rows.append(fut.result())
            except Exception as exc:  # the executor lost the task
                rows.append({"rep": b, "loglik_null": np.nan, "loglik_alt": np.nan, "statistic": np.nan,
                             "error": f"executor: {type(exc).__name__}: {exc}"})
            bar.update()
    bar.close()
    reps = pd.DataFrame(rows).sort_values("rep", ignore_index=True)
    ok = reps["statistic"].dropna().to_numpy()
    p = float((1 + np.sum(ok >= stat - 1e-9)) / (1 + ok.size)) if ok.size else float("nan")
    return BLRTest(k_null=k0, k_alt=k1, statistic=stat, replicates=reps, p_value=p, seed=seed,
                   seconds=time.perf_counter() - t0)


def _replicate_remote(payload, b, frame, fit_seed, opts):
    import cloudpickle

    return _replicate(cloudpickle.loads(payload), b, frame, fit_seed, models={}, **opts)


def _replicate(build, b, frame, fit_seed, *, ks, n_starts, n_final, fit_kwargs, models) -> dict:
    """One bootstrap replicate: fit K-1 and K classes to ``frame``."""
    row = {"rep": b, "loglik_null": np.nan, "loglik_alt": np.nan, "statistic": np.nan, "error": None}
    try:
        lls = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayesmixWarning)  # starts/bounds warnings of replicates
            for k in ks:
                model = _model_for(build, frame, k, models)
                lls[k] = fit_ml(model, n_starts=n_starts, n_final=n_final, seed=fit_seed, progress=False,
                                **fit_kwargs).loglik
        row.update(loglik_null=lls[ks[0]], loglik_alt=lls[ks[1]], statistic=2.0 * (lls[ks[1]] - lls[ks[0]]))
    except Exception as exc:  # one failed replicate loses nothing else
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _model_for(build, frame, k, models):
    model = models.get(k)
    if model is not None and model.can_set_data:
        try:
            model.set_data(frame)
            return model
        except SpecificationError:
            pass
    model = build(frame, k)
    models[k] = model
    return model
