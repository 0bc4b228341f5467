"""The JSON form of engine values (:func:`to_jsonable`) and :class:`ResultBase`, the frozen
dataclass every engine result derives from, whose ``to_dict()`` gives that form."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """JSON-ready copy of an engine value: numpy scalars and arrays, tuples and nested results.

    Non-finite floats become ``None``: JSON has no NaN, and the platform shows ``None`` with the
    reason recorded next to it (see ``ResultBase.na_reasons``). Float arrays, the bulk of a report
    at large k, are converted with one ``tolist()`` and scanned for non-finite values only when
    there are some.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            out = value.tolist()
            if value.size and not np.isfinite(value).all():
                return _none_for_nan(out)
            return out
        if value.dtype.kind in "biu":
            return value.tolist()
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, ResultBase):
        return value.to_dict()
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _none_for_nan(values: list[Any]) -> list[Any]:
    return [_none_for_nan(v) if isinstance(v, list) else (v if math.isfinite(v) else None) for v in values]


@dataclasses.dataclass(frozen=True)
class ResultBase:
    """Frozen dataclass base: every engine result serialises with ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
