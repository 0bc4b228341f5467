"""Moderator design matrices as R's ``model.matrix()`` builds them for ``rma(mods = ~ a + b)``.

A numeric column enters as is. A text (or boolean) column is a factor: dummy-coded with
treatment contrasts, its first level in sorted order as the reference, and coefficient names
``<column><level>`` as R pastes them (``grpb``, ``grpc``). Rows with a missing moderator value
are left out of the model (R's ``na.omit``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InvalidInputError, SingularModelError

#: Cell values read as missing in a moderator column (as R's read.csv does for "NA" and "").
_MISSING_TEXT = frozenset({"", "NA"})


def is_missing(value: object) -> bool:
    """Whether a cell is a missing value: None, NaN, pandas' NA, "" or "NA"."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    if isinstance(value, str):
        return value.strip() in _MISSING_TEXT
    return False


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def level_sort_key(level: str) -> tuple[str, str]:
    """Order factor levels as R's ``sort()`` does in a UTF-8 locale, to first order.

    Levels are compared case-insensitively first and, when equal ignoring case, lowercase
    before uppercase (``"a" < "B" < "b"``), which is what R's default collation gives for
    ordinary level names; pure code-point order would put every uppercase name first.
    """
    return (level.casefold(), level.swapcase())


@dataclasses.dataclass(frozen=True)
class Design:
    """A moderator design.

    Attributes
    ----------
    X : ndarray, shape (n_rows, m)
        Moderator columns without the intercept (the model adds it); NaN in rows not in the model.
    coef_names : tuple of str
        Names of the columns of ``X`` as R's ``model.matrix`` names them.
    complete : ndarray of bool, shape (n_rows,)
        Rows in the model: usable otherwise and no moderator missing.
    missing : dict of int to tuple of str
        Rows with a missing moderator and which ones.
    factors : dict of str to tuple of str
        The levels of every categorical moderator (the first is the reference).
    """

    X: np.ndarray
    coef_names: tuple[str, ...]
    complete: np.ndarray
    missing: dict[int, tuple[str, ...]]
    factors: dict[str, tuple[str, ...]]


def build_design(
    rows: Sequence[Mapping[str, object]], mods: Sequence[str], usable: np.ndarray | None = None
) -> Design:
    """Build the moderator matrix for ``mods`` from the study rows.

    Parameters
    ----------
    rows : sequence of mappings
        The study table, one mapping per row.
    mods : sequence of str
        Moderator column names, in model order.
    usable : ndarray of bool, optional
        Rows that can enter the model otherwise (those with an effect size); default all.

    Returns
    -------
    Design

    Raises
    ------
    InvalidInputError
        A moderator column is absent from every row, or a cell is neither a number nor text.

    Notes
    -----
    Source: R ``model.matrix()`` with treatment contrasts, as used by metafor 3.8-1 ``rma.uni``
    for a ``mods`` formula. Factor levels are the distinct values among the rows in the model.
    R takes them from the whole column, so a level seen only in rows left out of the model gives
    an all-zero dummy that metafor drops as a "redundant predictor"; leaving the level out gives
    the same fit. (Only if the *reference* level occurs solely in left-out rows do the two
    parametrisations differ: here the first level present is the reference.)
    """
    n = len(rows)
    use = np.ones(n, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    missing: dict[int, list[str]] = {}
    columns: dict[str, list[object]] = {}
    for name in mods:
        if not any(name in r for r in rows):
            raise InvalidInputError(
                f"moderator column {name!r} is not in the data", column=name, code="unknown_moderator"
            )
        values = [r.get(name) for r in rows]
        for i, val in enumerate(values):
            if is_missing(val):
                missing.setdefault(i, []).append(name)
            elif not (_is_number(val) or isinstance(val, str | bool | np.bool_)):
                raise InvalidInputError(
                    f"moderator {name!r} must be a number or text, got {val!r}",
                    row=i,
                    column=name,
                    code="invalid_moderator",
                )
        columns[name] = values
    complete = use & np.array([i not in missing for i in range(n)], dtype=bool)
    idx = np.flatnonzero(complete)
    cols: list[np.ndarray] = []
    names: list[str] = []
    factors: dict[str, tuple[str, ...]] = {}
    for name in mods:
        values = columns[name]
        present = [values[i] for i in idx]
        if all(_is_number(val) for val in present):
            col = np.full(n, np.nan)
            col[idx] = np.array(present, dtype=float)
            if not np.all(np.isfinite(col[idx])):
                raise InvalidInputError(
                    f"moderator {name!r} has a non-finite value", column=name, code="invalid_moderator"
                )
            cols.append(col)
            names.append(name)
            continue
        # R turns logicals into "FALSE"/"TRUE" levels; text (or mixed) columns are factors
        labels = [
            "TRUE"
            if val is True or val is np.True_
            else "FALSE"
            if isinstance(val, bool | np.bool_)
            else str(val)
            for val in present
        ]
        levels = tuple(sorted(set(labels), key=level_sort_key))
        factors[name] = levels
        lab = np.array(labels, dtype=object)
        for lev in levels[1:]:
            col = np.full(n, np.nan)
            col[idx] = (lab == lev).astype(float)
            cols.append(col)
            names.append(f"{name}{lev}")
    X = np.column_stack(cols) if cols else np.zeros((n, 0))
    return Design(
        X=X,
        coef_names=tuple(names),
        complete=complete,
        missing={i: tuple(v) for i, v in missing.items()},
        factors=factors,
    )


def check_rank(X: np.ndarray, names: Sequence[str], tol: float = 1e-7) -> None:
    """Raise :class:`SingularModelError` naming the columns that are linear combinations of others.

    ``X`` is the full design including the intercept. Columns are checked left to right, as R's
    pivoted QR in ``lm()`` (tolerance 1e-7) decides which coefficients are not estimable; metafor
    drops those as "redundant predictors", the engine refuses the model and names them instead.
    metafor's own final check (an eigenvalue of X'X <= 1e-7 means "not of full rank") is applied
    as well.
    """
    k, p = X.shape
    aliased: list[str] = []
    if p > k:
        raise SingularModelError(
            f"the model has {p} coefficients but only {k} studies: the design cannot be of full rank",
            column=",".join(names),
        )
    norms = np.sqrt(np.sum(X * X, axis=0))
    basis: list[np.ndarray] = []
    for j in range(p):
        col = X[:, j].astype(float)
        if norms[j] == 0:
            aliased.append(names[j])
            continue
        r = col.copy()
        for b in basis:
            r -= (b @ r) * b
        for b in basis:  # second Gram-Schmidt pass for numerical safety
            r -= (b @ r) * b
        rn = float(np.sqrt(r @ r))
        if rn <= tol * norms[j]:
            aliased.append(names[j])
        else:
            basis.append(r / rn)
    if aliased:
        raise SingularModelError(
            "the moderators are linearly dependent (not estimable): " + ", ".join(aliased),
            column=",".join(aliased),
        )
    ev = np.linalg.eigvalsh(X.T @ X)
    if ev.min() <= 1e-7:
        raise SingularModelError(
            "the model matrix is not of full rank (smallest eigenvalue of X'X <= 1e-7)",
            column=",".join(names),
        )
