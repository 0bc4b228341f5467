"""Numbers written as text: decimal commas, thousands separators, ambiguity."""

from __future__ import annotations

import pytest

from apps.datasets.ingest.numbers import classify, detect_decimal_mark, resolve


@pytest.mark.parametrize(
    ("text", "value", "evidence"),
    [
        ("12", 12.0, None),
        ("-7", -7.0, None),
        ("+3", 3.0, None),
        ("0.45", 0.45, "."),
        ("0,45", 0.45, ","),
        (",5", 0.5, ","),
        ("-1,2", -1.2, ","),
        ("1234.567", 1234.567, "."),  # four digits before the mark: never a thousands group
        ("0.123", 0.123, "."),  # a group never starts with 0
        ("1.2345", 1.2345, "."),
        ("1.234,5", 1234.5, ","),
        ("1,234.5", 1234.5, "."),
        ("1,234,567", 1234567.0, "."),
        ("1.234.567", 1234567.0, ","),
        ("1.5e-3", 0.0015, "."),
        ("1,5E-3", 0.0015, ","),
        ("2E3", 2000.0, None),
        ("\u22120.15", -0.15, "."),  # the minus sign copied from a PDF
    ],
)
def test_unambiguous_numbers(text: str, value: float, evidence: str | None) -> None:
    number = classify(text)
    assert number.kind == "number"
    assert number.value == pytest.approx(value)
    assert number.evidence == evidence


@pytest.mark.parametrize("text", ["1,234", "1.234", "-12.500", "999,000"])
def test_single_three_digit_group_is_ambiguous(text: str) -> None:
    number = classify(text)
    assert number.kind == "ambiguous"
    assert number.evidence is None


@pytest.mark.parametrize(
    "text",
    [
        "n/a",
        "NA",
        "12a",
        "1 234",
        "1.234.5",
        "1,2,3",
        "inf",
        "nan",
        "1e999",
        "1_000",
        "--1",
        "",
        "45%",
        "0x1F",
        "2020-04-12",
    ],
)
def test_not_numbers(text: str) -> None:
    assert classify(text).kind == "invalid"


def test_resolve_ambiguous_by_decimal_mark() -> None:
    number = classify("1.234")
    assert resolve(number, ".") == pytest.approx(1.234)
    assert resolve(number, ",") == 1234.0
    assert resolve(number, None) is None
    assert resolve(classify("0,5"), None) == 0.5


def test_detect_decimal_mark() -> None:
    assert detect_decimal_mark(["1", "0,45", "1.234"], None) == ","
    assert detect_decimal_mark(["1", "0.45", "1,234"], None) == "."
    assert detect_decimal_mark(["1", "1.234"], None) is None
    assert detect_decimal_mark(["1", "1.234"], ".") == "."
    assert detect_decimal_mark(["0,5", "0.5"], ".") is None  # mixed marks: nothing ambiguous may be guessed
