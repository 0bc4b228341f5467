"""Each row's weight in a fitted model, in percent, as metafor's ``weights()`` gives it.

- :func:`rma_weights`: ``weights.rma.uni``, ``100 w_i / sum(w)`` with ``w_i = 1/(v_i + tau²)``
  (``tau² = 0`` for the equal-effects model); the weights that ``influence()`` reports too.
- :func:`multilevel_weights`: ``weights.rma.mv``. Its default (``type = "diagonal"``) is the
  diagonal of ``M^-1``, M the model's marginal covariance; ``type = "rowsum"`` (intercept-only
  models) the row sums of ``M^-1``, whose sum over a study's rows, ``1' M_j^-1 1``, is the study's
  share of the estimate ``sum_j 1' M_j^-1 y_j / sum_j 1' M_j^-1 1``: the weight a forest plot of
  studies shows.

Source: metafor 3.8-1 ``weights.rma.uni()``, ``weights.rma.mv()``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .fit_result import EngineResult, FitResult
from .multilevel.fit import MultilevelFit

__all__ = ["MultilevelWeights", "RowWeights", "multilevel_weights", "rma_weights", "weights_percent"]


def weights_percent(fit: FitResult) -> np.ndarray:
    """``weights(fit)`` of an ``rma.uni`` model: each study's weight in percent."""
    w = fit.weights
    return 100.0 * w / np.sum(w)


@dataclasses.dataclass(frozen=True, eq=False)
class RowWeights(EngineResult):
    """``weights()`` of a one-level model: ``weight`` in percent, one per study of the model, in
    its order (the report adds the ``study`` labels)."""

    weight: np.ndarray


def rma_weights(fit: FitResult) -> RowWeights:
    """metafor's ``weights.rma.uni()`` (see :func:`weights_percent`)."""
    return RowWeights(weight=weights_percent(fit))


@dataclasses.dataclass(frozen=True, eq=False)
class MultilevelWeights(EngineResult):
    """``weights()`` of a multilevel model.

    Attributes
    ----------
    study : list of str
        Each row's study, in the model's row order.
    weight : ndarray
        ``weights(fit)``: the diagonal of ``M^-1``, percent.
    rowsum : ndarray or None
        ``weights(fit, type = "rowsum")``: the row sums of ``M^-1``, percent; None for a model with
        moderators (metafor: only meaningful for intercept-only models).
    studies : list of str
        The studies, in order of first appearance.
    study_weight : ndarray or None
        Each study's share, the sum of its rows' ``rowsum`` weights (percent); None with ``rowsum``.
    na_reasons : dict of str to str
    """

    study: list[str]
    weight: np.ndarray
    rowsum: np.ndarray | None
    studies: list[str]
    study_weight: np.ndarray | None
    na_reasons: dict[str, str]


def multilevel_weights(fit: MultilevelFit) -> MultilevelWeights:
    """metafor's ``weights.rma.mv()``, default and row-sum types, and each study's share.

    ``M^-1`` is block-diagonal by study: the blocks at the estimate (``fit.evaluation.W``) give
    every weight without a k x k matrix.
    """
    blocks = fit.blocks
    diagonal = np.empty(fit.k)
    rowsum = np.empty(fit.k)
    by_study = np.empty(blocks.n_clusters)
    for group, W in zip(blocks.groups, fit.evaluation.W, strict=True):
        diagonal[group.rows] = np.einsum("nii->ni", W)
        sums = W.sum(axis=2)
        rowsum[group.rows] = sums
        by_study[group.clusters] = sums.sum(axis=1)
    reasons: dict[str, str] = {}
    rows: np.ndarray | None
    studies: np.ndarray | None
    if fit.p == 1:
        total = float(np.sum(rowsum))
        rows, studies = 100.0 * rowsum / total, 100.0 * by_study / total
    else:
        rows = studies = None
        reasons["rowsum"] = "row-sum weights are only meaningful for intercept-only models (as metafor)"
    return MultilevelWeights(
        study=[blocks.labels[c] for c in blocks.cluster],
        weight=100.0 * diagonal / np.sum(diagonal),
        rowsum=rows,
        studies=list(blocks.labels),
        study_weight=studies,
        na_reasons=reasons,
    )
