"""One effect per study from several: metafor's ``aggregate(escalc, cluster, struct = "CS", rho)``.

A study's estimates are combined by generalised least squares under an assumed correlation rho of
their sampling errors (compound symmetry: every pair of a study's estimates correlates rho):
V_s = rho sqrt(vi vj) off the diagonal, vi on it, W_s = V_s^-1, yi = 1'W_s y / 1'W_s 1,
vi = 1 / 1'W_s 1 (Borenstein et al. 2009, ch. 24). The aggregated rows are then independent and
any ``rma`` model applies; the choice of rho matters, which is why the platform reports the pooled
estimate over rho in {0.2, 0.4, 0.6, 0.8} beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..fit_result import EngineResult, jsonable
from ..spec import check_rho
from .blocks import group_rows, sampling_blocks

__all__ = ["Aggregated", "aggregate"]


# A frozen result with a numpydoc Attributes section, the form of every engine result.
@dataclasses.dataclass(frozen=True, eq=False)
class Aggregated(EngineResult):
    """One row per study, in order of first appearance.

    Attributes
    ----------
    study : tuple of str
    ki : ndarray of int
        Estimates pooled into each row.
    yi, vi : ndarray
    rho : float
    members : tuple of ndarray
        Each study's input rows (positions in the input), for display beneath the study.
    """

    study: tuple[str, ...]
    ki: np.ndarray
    yi: np.ndarray
    vi: np.ndarray
    rho: float
    members: tuple[np.ndarray, ...]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "study": list(self.study),
                "ki": self.ki,
                "yi": self.yi,
                "vi": self.vi,
                "rho": self.rho,
                "members": [m.tolist() for m in self.members],
            }
        )


def aggregate(
    yi: np.ndarray,
    vi: np.ndarray,
    study: Sequence[object],
    rho: float,
    row_numbers: np.ndarray | None = None,
) -> Aggregated:
    """Aggregate the estimates of each study (rows with a missing yi or vi are dropped first).

    Parameters
    ----------
    yi, vi : ndarray, shape (k,)
    study : sequence
        Each row's study.
    rho : float
        Assumed correlation of two sampling errors of one study, in (-1, 1).
    row_numbers : ndarray of int, optional
        What ``members`` calls each input row (default its position): the rows' numbers in the
        uploaded table when ``yi`` holds only some of them.

    Notes
    -----
    metafor 3.8-1 ``aggregate.escalc(x, cluster, struct = "CS", rho)``.
    """
    check_rho(rho)
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    keep = np.flatnonzero(np.isfinite(yi) & np.isfinite(vi))
    labels = [study[int(i)] for i in keep]
    blocks = group_rows(labels)
    n = blocks.n_clusters
    out_y = np.empty(n)
    out_v = np.empty(n)
    ki = np.empty(n, dtype=np.intp)
    members: list[np.ndarray] = [np.empty(0, dtype=np.intp)] * n
    y, v = yi[keep], vi[keep]
    for g in blocks.groups:
        V = sampling_blocks(v, g, rho)
        # W 1 by a solve, as the blocks are small and positive definite
        w1 = np.linalg.solve(V, np.ones(g.rows.shape[:2])[..., None])[..., 0]
        total = w1.sum(axis=1)
        out_y[g.clusters] = np.einsum("ns,ns->n", w1, g.take(y)) / total
        out_v[g.clusters] = 1.0 / total
        ki[g.clusters] = g.size
        for c, rows in zip(g.clusters, g.rows, strict=True):
            members[c] = keep[rows]
    if row_numbers is not None:
        members = [np.asarray(row_numbers)[m] for m in members]
    for arr in (out_y, out_v, ki):
        arr.setflags(write=False)
    return Aggregated(study=blocks.labels, ki=ki, yi=out_y, vi=out_v, rho=float(rho), members=tuple(members))
