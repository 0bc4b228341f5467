"""Errors the engine raises for input it cannot analyse.

Every error carries a machine-readable ``code`` so that the platform can show a data manager
or a steering-group member a specific reason instead of a silent NaN.
"""

from __future__ import annotations


class EngineError(ValueError):
    """Base class: the engine cannot compute what was asked, for the reason in ``message``."""

    code = "engine_error"

    def __init__(
        self, message: str, *, code: str | None = None, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.row = row
        self.column = column

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "row": self.row, "column": self.column}


class InvalidInputError(EngineError):
    """A value is outside its domain (``domains.py``: a negative SD or variance, events above N,
    |r| > 1, ...) or a setting outside its rule (``spec.py``)."""

    code = "invalid_input"


class InsufficientDataError(EngineError):
    """Fewer studies than the method needs (e.g. a heterogeneity test with k = 1)."""

    code = "insufficient_data"


class SingularModelError(EngineError):
    """The moderator matrix is not of full column rank."""

    code = "singular_model"


class ConvergenceError(EngineError):
    """An iterative estimator did not converge within its iteration limit."""

    code = "not_converged"
