"""The malformed and valid corpora (tests/datasets/malformed.py) against parse_upload."""

from __future__ import annotations

import pytest

from apps.datasets.ingest import ERROR_CODES, UploadRejected, parse_upload

from .malformed import MalformedCase, ValidCase, malformed_cases, valid_cases


def test_corpus_names_are_unique() -> None:
    assert len({c.name for c in malformed_cases}) == len(malformed_cases)
    assert len({c.name for c in valid_cases}) == len(valid_cases)


def test_corpus_covers_every_error_code() -> None:
    covered = set().union(*(c.expected_codes for c in malformed_cases))
    # a sheet too large for the default limits needs megabytes of XML: see test_ingest_sheet_limits;
    # the request-level codes come from the API, not from a file: see tests/security/test_request_limits
    # and tests/api/test_upload_rejections
    assert covered == set(ERROR_CODES) - {"sheet_too_large", "invalid_request", "request_too_large"}


@pytest.mark.parametrize("case", malformed_cases, ids=lambda c: c.name)
def test_malformed_case_is_rejected_with_exactly_its_codes(case: MalformedCase) -> None:
    with pytest.raises(UploadRejected) as info:
        parse_upload(case.content, filename=case.filename, spec=case.spec(), content_type=case.content_type)
    errors = info.value.errors
    assert {e.code for e in errors} == case.expected_codes, [e.message for e in errors]
    found = {(e.row, e.column, e.code) for e in errors}
    for location in case.locations:
        assert location in found, (location, sorted(found, key=str))
    if case.expected_count is not None:
        assert len(errors) == case.expected_count, [e.message for e in errors]
    for error in errors:
        assert error.code in ERROR_CODES
        assert error.message.endswith((".", "?")), error.message
        if error.row is not None and case.filename.endswith(".json"):
            assert error.message.startswith(f"Item {error.row}"), error.message
        elif error.row is not None and error.code not in (
            "malformed_csv",
            "extra_values",
            "formula_cell",
            "too_many_columns",  # a row as a whole, like the two above
        ):
            assert error.message.startswith(f"Row {error.row}, column '{error.column}'"), error.message


@pytest.mark.parametrize("case", valid_cases, ids=lambda c: c.name)
def test_valid_messy_case_parses_to_expected_rows(case: ValidCase) -> None:
    parsed = parse_upload(
        case.content, filename=case.filename, spec=case.spec(), content_type=case.content_type
    )
    assert parsed.rows == case.expected_rows
    assert parsed.source_format == case.source_format
    assert parsed.encoding == case.encoding
    assert parsed.delimiter == case.delimiter
    assert {w.code for w in parsed.warnings} == case.expected_warnings, [w.message for w in parsed.warnings]
    mapping = {m.source: m.target for m in parsed.mapping}
    for source, target in case.expected_mapping.items():
        assert mapping.get(source) == target, (source, mapping)
    for r in parsed.rows:
        assert tuple(r) == parsed.columns
