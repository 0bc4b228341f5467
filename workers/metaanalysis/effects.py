"""The effect-size interface the rest of the platform uses (``escalc``, ``check_rows``).

The computations live in :mod:`workers.metaanalysis.effect_sizes`; this module gives them the
names the analysis pipeline and the upload validator call, and turns ``na_reasons`` into the
``omitted`` rows the platform reports. Each row's input form and how its effect size was derived
are ``EffectSizes.forms`` and ``EffectSizes.derivations``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .effect_sizes import (
    EffectSizes,
    InvalidStudyDataError,
    compute_effect_sizes,
    read_study_table,
    unaccepted_values,
)
from .errors import EngineError
from .jsonable import ResultBase
from .measures import OUTCOME_MEASURES, REGISTRY

#: Measures a consortium outcome can use (PETO and IRD are computed but not offered as outcomes).
MEASURES: tuple[str, ...] = OUTCOME_MEASURES

#: The columns each measure needs, by metafor's argument names (the first of each alternative).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {m: REGISTRY[m].required for m in MEASURES}


@dataclasses.dataclass(frozen=True)
class OmittedRow(ResultBase):
    """A row left out of the model (metafor's ``na.omit``) and why. ``row`` counts from 0."""

    row: int
    code: str
    reason: str


def omitted_rows(es: EffectSizes) -> tuple[OmittedRow, ...]:
    """The rows without a usable effect size, with the reason for each.

    ``missing_value`` where the row has no complete input form (a value is missing),
    ``effect_not_computable`` where its values give no finite effect size or variance.
    """
    out = []
    for row, reason in sorted(es.na_reasons.items()):
        code = "missing_value" if es.forms[row] is None else "effect_not_computable"
        out.append(OmittedRow(row=row, code=code, reason=reason))
    return tuple(out)


def included(es: EffectSizes) -> np.ndarray:
    """Boolean mask of the rows with a usable effect size."""
    return es.usable


def columns_of(rows: Sequence[Mapping[str, object]]) -> dict[str, list[object]]:
    """Rows (one mapping per study) as columns, every name any row has, in first-seen order."""
    names: dict[str, None] = {}
    for r in rows:
        for key in r:
            names.setdefault(key, None)
    return {name: [r.get(name) for r in rows] for name in names}


def escalc(
    measure: str, data: Mapping[str, Any], *, add: float = 0.5, to: Any = "only0", drop00: bool = False
) -> EffectSizes:
    """Effect sizes per row as metafor's ``escalc()``; see :func:`effect_sizes.compute_effect_sizes`."""
    return compute_effect_sizes(measure, data, add=add, to=to, drop00=drop00)


def check_rows(measure: str, data: Mapping[str, Any]) -> list[EngineError]:
    """Every value in ``data`` a stored row may not hold, at once (empty when the rows may be stored).

    First the values metafor's ``escalc()`` refuses (:func:`read_study_table`); when there are
    none, the values outside the platform's narrower domain (:func:`unaccepted_values`): both are
    the limits of :mod:`workers.metaanalysis.domains`, which the upload validator checks too.
    """
    try:
        table = read_study_table(measure, data)
    except InvalidStudyDataError as exc:
        return list(exc.problems)
    except EngineError as exc:
        return [exc]
    return unaccepted_values(table)
