"""The security benchmark's in-process part runs, and measures what it says it measures."""

from __future__ import annotations

from bench.security_bench import _multipart, _table, workbook_rows


def test_every_inflating_workbook_is_refused_in_the_benchmark() -> None:
    rows = workbook_rows()
    assert [r[0] for r in rows] == ["declared dimension A1:IP10001", "no dimension", "dimension lies (A1:I4)"]
    assert {r[2] for r in rows} == {"too_many_columns"}


def test_the_streamed_multipart_body_has_the_declared_length() -> None:
    chunks, length, boundary = _multipart(3 * 1024 * 1024 + 17, "big.csv")
    body = b"".join(chunks)
    assert len(body) == length
    assert body.startswith(f"--{boundary}".encode()) and body.endswith(f"--{boundary}--\r\n".encode())


def test_tables_are_markdown() -> None:
    assert _table(["a", "b"], [["1", "2"]]).splitlines() == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
