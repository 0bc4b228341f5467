"""What to compute for one outcome: :class:`AnalysisSpec`, its JSON form and its hash.

The one codec of an analysis specification: the platform stores ``to_dict()``, rebuilds the spec
with ``from_dict()`` and identifies it by :func:`spec_hash`, the same digest a partner can compute
outside the platform from a stored result's ``spec``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInputError
from .estimators import METHODS, TESTS
from .measures import OUTCOME_MEASURES

__all__ = ["DEPENDENCE_MODELS", "LATEST", "RHO_SENSITIVITY", "AnalysisSpec", "spec_hash"]

#: How several effects of one study are handled (see docs/engine.md, "Dependent effects"):
#: ``auto`` chooses ``che`` with cluster-robust (CR2) tests when any study has more than one row
#: after the row selection, and ``none`` otherwise; ``none`` treats rows as independent studies
#: (with several rows per study only together with cluster-robust tests); ``aggregate`` pools each
#: study's rows first (compound symmetry, ``rho``); ``multilevel`` fits the three-level model;
#: ``che`` the correlated-and-hierarchical-effects model (three levels, sampling errors
#: correlated ``rho`` within a study).
DEPENDENCE_MODELS: tuple[str, ...] = ("auto", "none", "aggregate", "multilevel", "che")

#: The ``timepoint`` that keeps, per study, the rows of its latest time point.
LATEST = "latest"

#: The assumed within-study correlations the sensitivity analysis reports the pooled estimate at.
RHO_SENSITIVITY: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """What to compute for one outcome.

    Attributes
    ----------
    measure : str
        metafor's effect-size measure (``SMD``, ``OR``, ..., ``GEN`` for given yi/vi).
    method : str
        tau² estimator (``REML`` default; ``EE`` for the equal-effects model).
    test : str
        ``z`` or ``knha`` (Knapp-Hartung); ``t`` is accepted too.
    level : float
        Confidence level in percent.
    mods : tuple of str
        Moderator columns of a meta-regression (intercept added).
    subgroup : str or None
        Column defining subgroups for a subgroup analysis.
    cumulative_order : str or None
        Column to order the cumulative meta-analysis by (row order when None).
    sensitivity : bool
        Run leave-one-out, cumulative and influence diagnostics.
    bias : bool
        Run the publication-bias analyses (Egger, rank test, fail-safe N, trim-and-fill).
    dependence : str
        How several rows of one study are handled: one of :data:`DEPENDENCE_MODELS`.
    rho : float
        Assumed correlation of two sampling errors of one study (``aggregate`` and ``che``).
    robust : bool
        Report cluster-robust tests (CR2, with CR1 beside it) as the headline inference where a
        study has several rows.
    timepoint : str or None
        Which rows enter: None keeps every time point, a time point code keeps that one,
        ``"latest"`` keeps each study's latest (in the order of ``timepoints``).
    timepoints : tuple of str
        The data dictionary's time points, earliest first (what "latest" is judged by).
    instruments : tuple of str
        Preferred instruments, first choice first: each study (at each time point) keeps the rows
        of the first listed instrument it reports; empty keeps every instrument.
    reverse_instruments : tuple of str
        Instruments whose effects are sign-aligned before anything is pooled: their ``yi`` is
        negated (a log ratio inverted), because a higher score on them means the opposite of what
        the outcome's direction says (a problem count in an outcome where higher is better). Only
        for measures whose sign carries the direction (differences of means, mean changes,
        correlations, given effect sizes). Left out of the JSON form when empty, so that the hash
        of a specification without it is what it always was.
    """

    measure: str
    method: str = "REML"
    test: str = "z"
    level: float = 95.0
    mods: tuple[str, ...] = ()
    subgroup: str | None = None
    cumulative_order: str | None = None
    sensitivity: bool = True
    bias: bool = True
    dependence: str = "auto"
    rho: float = 0.6
    robust: bool = True
    timepoint: str | None = None
    timepoints: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    reverse_instruments: tuple[str, ...] = ()

    def _choose(self, name: str, what: str, allowed: tuple[str, ...]) -> None:
        """Refuse a field whose value is not one of ``allowed``, naming them."""
        value = getattr(self, name)
        if not isinstance(value, str) or value not in allowed:
            raise InvalidInputError(
                f"unknown {what} {value!r}; use one of {', '.join(allowed)}",
                code=f"invalid_{name}",
                column=name,
            )

    def __post_init__(self) -> None:
        self._choose("measure", "measure", OUTCOME_MEASURES)
        self._choose("method", "method", METHODS)
        self._choose("test", "test", TESTS)
        lev = self.level
        if (
            isinstance(lev, bool)
            or not isinstance(lev, int | float)
            or not math.isfinite(lev)
            or not 0 < lev < 100
        ):
            raise InvalidInputError(
                f"level must be a percentage between 0 and 100, got {lev!r}",
                code="invalid_level",
                column="level",
            )
        object.__setattr__(self, "level", float(lev))
        if isinstance(self.mods, str):
            raise InvalidInputError(
                "mods must be a sequence of column names, not a string", code="invalid_mods", column="mods"
            )
        mods = tuple(self.mods)
        if not all(isinstance(m, str) and m for m in mods):
            raise InvalidInputError("mods must be non-empty column names", code="invalid_mods", column="mods")
        if len(set(mods)) != len(mods):
            raise InvalidInputError("mods lists a column twice", code="invalid_mods", column="mods")
        object.__setattr__(self, "mods", mods)
        for name in ("subgroup", "cumulative_order"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, str) or not val):
                raise InvalidInputError(
                    f"{name} must be a column name or None", code=f"invalid_{name}", column=name
                )
        for name in ("sensitivity", "bias", "robust"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false", code=f"invalid_{name}", column=name)
        self._check_dependence()

    def _check_dependence(self) -> None:
        self._choose("dependence", "dependence model", DEPENDENCE_MODELS)
        rho = self.rho
        if isinstance(rho, bool) or not isinstance(rho, int | float) or not -1 < rho < 1:
            raise InvalidInputError(
                f"rho must be a correlation between -1 and 1 (exclusive), got {rho!r}",
                code="invalid_rho",
                column="rho",
            )
        object.__setattr__(self, "rho", float(rho))
        if self.dependence in ("multilevel", "che") and self.method not in ("ML", "REML"):
            raise InvalidInputError(
                f"the {self.dependence} model is fitted by ML or REML, not {self.method}",
                code="invalid_method",
                column="method",
            )
        if self.dependence in ("multilevel", "che") and self.test == "knha":
            raise InvalidInputError(
                f"the {self.dependence} model uses the z or t test (Knapp-Hartung is for one-level models)",
                code="invalid_test",
                column="test",
            )
        for name in ("timepoints", "instruments", "reverse_instruments"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise InvalidInputError(
                    f"{name} must be a list of codes", code=f"invalid_{name}", column=name
                )
            object.__setattr__(self, name, tuple(value))
        tp = self.timepoint
        if tp is not None and (not isinstance(tp, str) or not tp):
            raise InvalidInputError(
                'timepoint must be a time point code, "latest" or null',
                code="invalid_timepoint",
                column="timepoint",
            )
        if tp == LATEST and not self.timepoints:
            raise InvalidInputError(
                'timepoint "latest" needs the time points in order (timepoints)',
                code="invalid_timepoint",
                column="timepoint",
            )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form of the spec."""
        return {
            "measure": self.measure,
            "method": self.method,
            "test": self.test,
            "level": self.level,
            "mods": list(self.mods),
            "subgroup": self.subgroup,
            "cumulative_order": self.cumulative_order,
            "sensitivity": self.sensitivity,
            "bias": self.bias,
            "dependence": self.dependence,
            "rho": self.rho,
            "robust": self.robust,
            "timepoint": self.timepoint,
            "timepoints": list(self.timepoints),
            "instruments": list(self.instruments),
            **({"reverse_instruments": list(self.reverse_instruments)} if self.reverse_instruments else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisSpec:
        """Build a spec from its ``to_dict()`` form (unknown keys are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - known
        if extra:
            raise InvalidInputError(f"unknown spec field(s): {', '.join(sorted(extra))}", code="invalid_spec")
        kwargs = dict(data)
        for name in ("mods", "timepoints", "instruments", "reverse_instruments"):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON (see :func:`spec_hash`)."""
        return spec_hash(self.to_dict())


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a specification's canonical JSON: sorted keys, no whitespace, ASCII.

    The one hash of a specification, for the engine and the platform alike, so that a stored
    result's ``spec_hash`` can be reproduced from its ``spec`` outside the platform.
    """
    canonical = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
