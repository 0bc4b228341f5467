"""How column headers are compared and how columns are named in messages."""

from __future__ import annotations

from workers.metaanalysis.tables import header_key

__all__ = ["column_letter", "header_key"]


def column_letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
