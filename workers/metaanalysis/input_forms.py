"""Which input form each row uses, and the words that say how its effect size was derived.

The forms and their order of precedence are the registry's (:attr:`Measure.forms
<workers.metaanalysis.measures.Measure.forms>`): a row is computed from the first form it has
complete, as metafor 3.8-1 ``escalc()`` does (a given ``yi``/``vi`` is kept, ``di`` replaces the
means, ``ti`` fills a missing ``di``). The numbers themselves come from
:mod:`workers.metaanalysis.kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from .measures import InputForm, Measure


def offered_forms(measure: Measure, present: Collection[str]) -> tuple[InputForm, ...]:
    """The measure's forms the data can give: each requirement group has a column in ``present``."""
    return tuple(f for f in measure.forms if all(any(c in present for c in g) for g in f.groups))


def missing_groups(
    groups: Sequence[tuple[str, ...]], given: Mapping[str, np.ndarray], n_rows: int
) -> list[tuple[str, np.ndarray]]:
    """For each requirement group, its first column and the rows where none of its columns has a value.

    ``given`` maps the columns the data hold to boolean arrays (``True`` where a value is given);
    a column the data do not hold has no value in any row.
    """
    out = []
    for group in groups:
        has = np.zeros(n_rows, dtype=bool)
        for name in group:
            if name in given:
                has |= given[name]
        out.append((group[0], ~has))
    return out


def select_forms(
    offered: Sequence[InputForm], given: Mapping[str, np.ndarray], n_rows: int
) -> tuple[str | None, ...]:
    """The input form of each row: the first of ``offered`` it has complete.

    Parameters
    ----------
    offered : sequence of InputForm
        The forms whose columns the data hold, in order of precedence (:func:`offered_forms`).
    given : mapping of str to ndarray of bool
        Per column the data hold, ``True`` where a row gives a value (before any column is
        derived: ``bi`` from ``n1i - ai`` counts as given through ``n1i``).
    n_rows : int
        Number of rows.

    Returns
    -------
    tuple of str or None
        The form's code per row; ``None`` where no offered form is complete.

    Notes
    -----
    The order is metafor 3.8-1 ``escalc()``'s: a given ``yi``/``vi`` is kept (``replace =
    FALSE``), a given ``di`` replaces the means, and ``ti`` fills a missing ``di``
    (``replmiss(di, ti * sqrt(1/n1i + 1/n2i))``).
    """
    chosen = np.full(n_rows, -1)
    for index, form in enumerate(offered):
        complete = ~np.logical_or.reduce(
            [gap for _, gap in missing_groups(form.groups, given, n_rows)], axis=0
        )
        chosen[(chosen < 0) & complete] = index
    return tuple(offered[i].code if i >= 0 else None for i in chosen.tolist())


def describe_forms(forms: Sequence[InputForm]) -> str:
    """The forms as the words of a request: "yi with vi or sei, di with n1i and n2i, or m1i, ...".

    Forms that share their leading column and differ in one other ("yi with vi", "yi with sei")
    are said once; a raw form lists its columns, an alternative in brackets ("bi (or n1i)").
    """
    phrases: list[str] = []
    merged: dict[str, int] = {}
    for form in forms:
        if form.code == "raw":
            phrases.append(", ".join(g[0] + "".join(f" (or {a})" for a in g[1:]) for g in form.groups))
            continue
        lead, rest = form.groups[0][0], [" or ".join(g) for g in form.groups[1:]]
        if lead in merged and len(rest) == 1:
            phrases[merged[lead]] += f" or {rest[0]}"
            continue
        merged[lead] = len(phrases)
        phrases.append(f"{lead} with {' and '.join(rest)}")
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + ", or " + phrases[-1]


def incomplete_reasons(
    measure: Measure,
    offered: Sequence[InputForm],
    given: Mapping[str, np.ndarray],
    forms: Sequence[str | None],
) -> dict[int, str]:
    """Why each row with no complete form has no effect size, naming what to give.

    When the data hold the columns of one form only, the row's missing columns are named, as
    metafor's missing values are ("missing value in sd1i"); otherwise every form of the measure
    is listed ("no complete input: give yi with vi or sei, ...").
    """
    rows = [row for row, form in enumerate(forms) if form is None]
    if not rows:
        return {}
    if len(offered) != 1:
        listed = "no complete input: give " + describe_forms(measure.forms)
        return dict.fromkeys(rows, listed)
    return {
        row: "missing value in " + ", ".join(names)
        for row, names in missing_columns(offered[0].groups, given, len(forms), rows)
    }


def missing_columns(
    groups: Sequence[tuple[str, ...]],
    given: Mapping[str, np.ndarray],
    n_rows: int,
    rows: Sequence[int] | None = None,
) -> list[tuple[int, tuple[str, ...]]]:
    """The rows (all, or those in ``rows``) lacking a value of some group, with those groups' first columns."""
    gaps = missing_groups(groups, given, n_rows)
    # each row's gaps as one integer (bit j: group j missing), worded once per pattern: a table
    # of reported statistics lacks the raw inputs in every row
    pattern = np.zeros(n_rows, dtype=np.int64)
    for j, (_, gap) in enumerate(gaps):
        pattern |= gap.astype(np.int64) << j
    picked = np.flatnonzero(pattern) if rows is None else np.asarray(rows, dtype=int)
    codes = pattern[picked].tolist()
    words = {code: tuple(name for j, (name, _) in enumerate(gaps) if code >> j & 1) for code in set(codes)}
    return [(row, words[code]) for row, code in zip(picked.tolist(), codes, strict=True)]


def format_number(value: float) -> str:
    """A number for a sentence: up to 4 significant digits, no trailing zeros; whole numbers whole.

    ``2.10`` is "2.1", ``0.123456`` "0.1235", ``1500`` "1500" and a sample size of ``12345``
    "12345" (not "1.234e+04").
    """
    if value == 0:
        return "0"  # not "-0"
    text = f"{value:.4g}"
    if "e" in text and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return text


def derivations(
    measure: Measure,
    forms: Sequence[str | None],
    columns: Mapping[str, np.ndarray],
    reasons: Mapping[int, str],
) -> tuple[str, ...]:
    """One sentence per row saying how its effect size was derived.

    Parameters
    ----------
    measure : Measure
        The measure computed.
    forms : sequence of str or None
        Each row's form (:func:`select_forms`).
    columns : mapping of str to ndarray
        The study table's columns (every column of every form present, ``NaN`` where missing).
    reasons : mapping of int to str
        For each row with no complete form, why (:func:`incomplete_reasons`).

    Returns
    -------
    tuple of str
        "SMD from t = 2.1, n = 20/22", "SMD from Cohen's d = 0.45, n = 20/22", "given yi = 0.31
        with SE 0.12", "given yi = 0.31 with variance 0.0144", "SMD from means and SDs"; for a row
        with no complete form, its reason. Numbers by :func:`format_number`.
    """
    raw = next((f for f in measure.forms if f.code == "raw"), None)
    by_raw = f"{measure.code} from {raw.label if raw is not None else 'its inputs'}"
    n = format_number
    present = set(forms)
    used = {c for f in measure.forms if f.code in present and f.code != "raw" for c in f.columns}
    # plain Python floats: indexing a numpy array once per value would dominate at large k
    v = {name: columns[name].tolist() for name in used if name in columns}

    def sentence(row: int, form: str | None) -> str:
        if form == "raw":
            return by_raw
        if form is None:
            return reasons.get(row, "no complete input")
        if form == "yi_vi":
            return f"given yi = {n(v['yi'][row])} with variance {n(v['vi'][row])}"
        if form == "yi_sei":
            return f"given yi = {n(v['yi'][row])} with SE {n(v['sei'][row])}"
        what = "Cohen's d" if form == "di" else "t"
        return f"{measure.code} from {what} = {n(v[form][row])}, n = {n(v['n1i'][row])}/{n(v['n2i'][row])}"

    return tuple(sentence(row, form) for row, form in enumerate(forms))
