"""One identity per label: NFC storage, invisible characters refused, lookalikes reported as duplicates."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from apps.datasets.ingest import UploadRejected, UploadSpec, labels, parse_json_rows, parse_upload

from .malformed import SMD_HEADER, SMD_ROWS, csv_bytes

SPEC = UploadSpec(outcome_code="dep", measure="SMD")
STATS = SMD_ROWS[0][1:]  # instrument, time point and the six statistics of a valid row

NFC = "Müller 2019"
NFD = unicodedata.normalize("NFD", NFC)


def upload(*studies: str, spec: UploadSpec = SPEC) -> Any:
    return parse_upload(csv_bytes(SMD_HEADER, [[s, *STATS] for s in studies]), filename="x.csv", spec=spec)


def refusal(*studies: str) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        upload(*studies)
    return info.value


# --------------------------------------------------------------------------------------------
# Lookalikes are duplicates


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        pytest.param(NFC, NFD, None, id="nfc-vs-nfd"),
        pytest.param(
            "Smith 2019",
            "Smith 2019".replace("e", "\u0435").replace("i", "\u0456"),
            "U+0456",
            id="cyrillic-i",
        ),
        pytest.param("Lee 2019", "L\u0435e 2019", "U+0435 CYRILLIC SMALL LETTER IE", id="cyrillic-e"),
        pytest.param(
            "Smith 2019", "\u0405mith 2019", "U+0405 CYRILLIC CAPITAL LETTER DZE", id="cyrillic-dze"
        ),
        pytest.param(
            "Smith 2019", "Ｓｍｉｔｈ 2019", "U+FF33 FULLWIDTH LATIN CAPITAL LETTER S", id="fullwidth"
        ),
        pytest.param("Smith 2019", "Smith ２０１９", "U+FF12 FULLWIDTH DIGIT TWO", id="fullwidth-digits"),
        pytest.param("Smith 2010", "Smith 2O1O", "U+004F LATIN CAPITAL LETTER O", id="letter-o-for-zero"),
        pytest.param("Smith 2019", "Smith\u00a02019", None, id="nbsp"),
        pytest.param("Smith 2019", "SMITH 2019", None, id="case"),
    ],
)
def test_lookalike_labels_are_one_study_reported_as_a_duplicate_naming_both_rows(
    first: str, second: str, shown: str | None
) -> None:
    (error,) = refusal(first, second).errors
    assert (error.code, error.row, error.column) == ("duplicate_row", 3, "study")
    assert error.message.startswith("Row 3, column 'study': the row repeats row 2 (study ")
    differs = (
        unicodedata.normalize("NFC", second).casefold() != first.casefold()
        and second.split() != first.split()
    )
    if differs:
        assert "the labels look alike" in error.message
        assert f"'{unicodedata.normalize('NFC', second)}' here, '{first}' in row 2" in error.message
    if shown is not None:
        assert shown in error.message


def test_lookalike_comparisons_are_duplicates_too() -> None:
    header = [*SMD_HEADER, "comparison"]
    rows = [["Smith 2019", *STATS, "Drug A vs placebo"], ["Smith 2019", *STATS, "Drug \u0410 vs placebo"]]
    with pytest.raises(UploadRejected) as info:
        parse_upload(csv_bytes(header, rows), filename="x.csv", spec=SPEC)
    (error,) = info.value.errors
    assert (error.code, error.row) == ("duplicate_row", 3)
    assert "comparison 'Drug А vs placebo' here, 'Drug A vs placebo' in row 2" in error.message
    assert "U+0410 CYRILLIC CAPITAL LETTER A" in error.message


@pytest.mark.parametrize(
    ("first", "second"),
    [("Smith 2019", "Smith 2020"), ("Lee", "Li"), ("Lee 2019", "Lea 2019"), ("Müller 2019", "Muller 2019")],
)
def test_genuinely_different_labels_are_not_flagged(first: str, second: str) -> None:
    assert [r["study"] for r in upload(first, second).rows] == [first, second]


def test_json_rows_are_compared_the_same_way() -> None:
    rows = [
        dict(zip(SMD_HEADER, [s, *STATS], strict=True))
        for s in ("Smith 2019", "Smith 2019".replace("S", "\u0405"))
    ]
    with pytest.raises(UploadRejected) as info:
        parse_json_rows(rows, spec=SPEC)
    (error,) = info.value.errors
    assert (error.code, error.row) == ("duplicate_row", 2)
    assert error.message.startswith("Item 2, field 'study': the row repeats item 1")


# --------------------------------------------------------------------------------------------
# Invisible characters are refused


@pytest.mark.parametrize(
    ("label", "code_point", "position"),
    [
        ("Smi\u200bth 2019", "U+200B ZERO WIDTH SPACE", 4),
        ("\u202eSmith 2019", "U+202E RIGHT-TO-LEFT OVERRIDE", 1),
        ("Smith 2019\u200f", "U+200F RIGHT-TO-LEFT MARK", 11),
        ("\ufeffSmith 2019", "U+FEFF ZERO WIDTH NO-BREAK SPACE", 1),
        ("Smi\u00adth 2019", "U+00AD SOFT HYPHEN", 4),
    ],
)
def test_invisible_characters_are_refused_naming_the_code_point(
    label: str, code_point: str, position: int
) -> None:
    (error,) = refusal("Lee 2015", label).errors
    assert (error.code, error.row, error.column) == ("invisible_character", 3, "study")
    assert code_point in error.message and f"at character {position}" in error.message
    assert "Delete it (retype the text)" in error.message
    assert f"<{code_point.split()[0]}>" in (error.value or "")  # the value shows where it hides


@pytest.mark.parametrize(
    "ch",
    [chr(c) for c in (*range(0x200B, 0x200E), 0x2060, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]
    + ["\u200e", "\u200f", "\u061c"],
)
def test_every_zero_width_and_bidirectional_control_is_invisible(ch: str) -> None:
    assert labels.is_invisible(ch)
    assert labels.invisible_characters(f"a{ch}b") == [(2, ch)]


def test_visible_text_is_not_invisible() -> None:
    assert labels.invisible_characters("Müller–Łukasz (2019) · 東京 · עברית · العربية") == []


def test_invisible_characters_in_other_labels_are_refused_too() -> None:
    header = [*SMD_HEADER, "comparison"]
    rows = [["Smith 2019", *STATS, "Drug A\u2066 vs placebo"]]
    with pytest.raises(UploadRejected) as info:
        parse_upload(csv_bytes(header, rows), filename="x.csv", spec=SPEC)
    (error,) = info.value.errors
    assert (error.code, error.row, error.column) == ("invisible_character", 2, "comparison")
    assert "U+2066 LEFT-TO-RIGHT ISOLATE" in error.message


# --------------------------------------------------------------------------------------------
# Labels are stored NFC


def test_decomposed_labels_are_stored_composed() -> None:
    header = [*SMD_HEADER, "comparison"]
    rows = [[NFD, STATS[0], unicodedata.normalize("NFD", "6 mois après"), *STATS[2:], "Thérapie vs contrôle"]]
    rows[0][-1] = unicodedata.normalize("NFD", rows[0][-1])
    (row,) = parse_upload(csv_bytes(header, rows), filename="x.csv", spec=SPEC).rows
    assert row["study"] == NFC and unicodedata.is_normalized("NFC", row["study"])
    assert row["timepoint"] == "6 mois après" and unicodedata.is_normalized("NFC", row["timepoint"])
    assert row["comparison"] == "Thérapie vs contrôle"


@pytest.mark.django_db
def test_the_study_register_sees_the_composed_label(cast: dict[str, Any]) -> None:
    from apps.datasets.models import Study
    from tests.conftest import SMD_ROWS as API_ROWS
    from tests.conftest import store_rows

    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=[dict(API_ROWS[0], study=NFD)])
    assert list(Study.objects.filter(centre=cast["centre_a"]).values_list("label", flat=True)) == [NFC]


# --------------------------------------------------------------------------------------------
# The comparison key


def test_the_skeleton_map_is_idempotent_and_derived_from_the_library() -> None:
    prototypes = labels._prototypes()
    assert len(prototypes) > 5_000  # Unicode's table, not a hand-written one
    assert not [ch for ch, target in prototypes.items() if any(c in prototypes for c in target)]
    assert prototypes["\u0435"] == "e" and prototypes["m"] == "rn" and prototypes["0"] == "O"


def test_comparison_keys() -> None:
    key = labels.comparison_key
    assert key("Ｓｍｉｔｈ 2019") == key("smith 2019") == key("\u0405mith 2019") == key("SMITH 2019")
    assert key(NFC) == key(NFD)
    assert key("Smith 2019") != key("Smith 2020")
    assert key("Lee") != key("Li")
