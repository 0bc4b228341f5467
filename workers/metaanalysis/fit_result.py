"""What a fitted model reports: :class:`FitResult`, the ``rma.uni`` fit, and
:class:`CoefficientTests`, the table of coefficient tests it shares with ``rma.mv`` and
``robust()``; and :class:`EngineResult`, the base of the engine's statistical results.

:class:`FitResult` is what :func:`~workers.metaanalysis.rma.rma` returns and what
:func:`~workers.metaanalysis.predict.predict`, :func:`~workers.metaanalysis.confint.confint`, the
sensitivity analyses and the bias tests read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .estimators import Control
from .jsonable import ResultBase
from .jsonable import to_jsonable as jsonable

__all__ = ["CoefficientTests", "EngineResult", "FitResult", "jsonable"]


@dataclasses.dataclass(frozen=True, eq=False)
class EngineResult(ResultBase):
    """Base of the engine's statistical results (fits, tests, diagnostics): they hold arrays, so
    they compare by identity (``eq=False``); ``to_dict()`` is :class:`ResultBase`'s."""


@dataclasses.dataclass(frozen=True, eq=False)
class CoefficientTests(EngineResult):
    """Tests of a model's coefficients, one entry per coefficient: what every fitted model and every
    robust test reports (``rma``, ``rma.mv``, ``robust()``), in one place.

    Attributes
    ----------
    coef_names : tuple of str
        ``"intrcpt"`` followed by the moderator names.
    beta, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
        Estimates, standard errors, z or t statistics, p-values and confidence limits.
    """

    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray

    def coefficients(self) -> dict[str, Any]:
        """The coefficient fields, in the order the reference blocks list them."""
        return {
            "coef_names": list(self.coef_names),
            "beta": self.beta,
            "se": self.se,
            "stat": self.stat,
            "pval": self.pval,
            "ci_lb": self.ci_lb,
            "ci_ub": self.ci_ub,
        }


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult(CoefficientTests):
    """A fitted ``rma.uni`` model.

    Attributes
    ----------
    method, test : str
        tau² estimator and test of the coefficients actually used (``test`` becomes ``"z"`` for
        k = 1, as in metafor).
    level : float
        Confidence level in percent.
    k, p : int
        Number of studies and of coefficients (intercept included).
    coef_names : tuple of str
        ``"intrcpt"`` followed by the moderator names.
    beta, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
        Coefficients, standard errors, z (or t) statistics, p-values and confidence limits.
    vb : ndarray, shape (p, p)
        Covariance matrix of the coefficients (scaled by ``s2w`` under Knapp-Hartung).
    tau2, se_tau2 : float
        Estimated tau² and its standard error (NaN for EE and k = 1).
    I2, H2 : float
        I² (percent) and H² (residual versions in a meta-regression).
    QE, QEp : float
        Test for (residual) heterogeneity and its p-value.
    QM, QMp : float
        Omnibus test of the moderators (chi² or F under Knapp-Hartung); NaN without moderators.
    QMdf : tuple
        Its degrees of freedom, ``(m, None)`` for chi², ``(m, k - p)`` for F.
    R2 : float
        Pseudo R² (percent); NaN without moderators.
    dfs : float
        Degrees of freedom of the t tests (NaN under the z test).
    s2w : float
        Knapp-Hartung scale factor (1 otherwise).
    vt : float
        metafor's "typical" within-study variance used for I² and H².
    yi, vi, X : ndarray
        The data the model was fitted to (``X`` includes the intercept column).
    control : Control
        Iteration settings used.
    tau2_0 : float
        The Sidik-Jonkman starting value (NaN for other estimators).
    na_reasons : dict of str to str
        Why a field is NaN/None where metafor gives NA.
    notes : tuple of str
        Things a user should know about the fit (e.g. test switched to z for k = 1).
    """

    method: str
    test: str
    level: float
    k: int
    p: int
    vb: np.ndarray
    tau2: float
    se_tau2: float
    I2: float
    H2: float
    QE: float
    QEp: float
    QM: float
    QMp: float
    QMdf: tuple[int, float | None]
    R2: float
    dfs: float
    s2w: float
    vt: float
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    control: Control
    tau2_0: float
    na_reasons: dict[str, str]
    notes: tuple[str, ...]

    @property
    def int_only(self) -> bool:
        """Whether the model is intercept-only."""
        return self.p == 1

    def pooled(self) -> dict[str, float]:
        """The intercept's estimate, standard error, statistic, p-value and confidence limits,
        with tau²: the summary trim-and-fill and each subgroup report of a model."""
        return {
            "beta": float(self.beta[0]),
            "se": float(self.se[0]),
            "stat": float(self.stat[0]),
            "pval": float(self.pval[0]),
            "ci_lb": float(self.ci_lb[0]),
            "ci_ub": float(self.ci_ub[0]),
            "tau2": self.tau2,
        }

    @property
    def weights(self) -> np.ndarray:
        """Model weights 1/(vi + tau²) (metafor ``weights()`` gives them in percent)."""
        return 1.0 / (self.vi + self.tau2)

    def to_dict(self) -> dict[str, Any]:
        """The fields of the reference ``fit`` block (plus ``na_reasons`` and ``notes``)."""
        out: dict[str, Any] = {
            "k": self.k,
            "p": self.p,
            **self.coefficients(),
            "tau2": self.tau2,
            "se_tau2": self.se_tau2,
            "I2": self.I2,
            "H2": self.H2,
            "QE": self.QE,
            "QEp": self.QEp,
        }
        if self.p > 1:
            out.update(QM=self.QM, QMp=self.QMp, QMdf=list(self.QMdf), R2=self.R2)
        if self.test in ("knha", "t"):
            out["dfs"] = [self.dfs]
        out["method"] = self.method
        out["test"] = self.test
        out["level"] = self.level
        out["na_reasons"] = dict(self.na_reasons)
        out["notes"] = list(self.notes)
        return jsonable(out)
