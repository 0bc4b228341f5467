"""Reading JSON rows: a file holding a list of objects, or the same list posted already decoded.

Each object is a row, numbered by its 1-based position in the list (messages call it an "Item");
its keys are the headers, and a key absent from an object is a blank cell.
"""

from __future__ import annotations

import json

from ..errors import UploadError, UploadRejected
from ..spec import UploadSpec
from .delimited import decode_text
from .raw_table import RawRow, RawTable, is_blank, reject, shortened


def read_rows_object(rows: object, *, spec: UploadSpec) -> RawTable:
    """Read rows posted as JSON (already decoded): a list of objects, one per row.

    Rows are numbered by their 1-based position in the list; an object's keys are its headers,
    and a key absent from an object is a blank cell.
    """
    if not isinstance(rows, list):
        kinds: dict[type, str] = {dict: "an object", str: "a string"}
        kind = kinds.get(type(rows), type(rows).__name__)
        raise reject(
            "invalid_json",
            f'The JSON must be a list of objects, one per row (e.g. [{{"study": "Smith 2020", ...}}]), '
            f"but it is {kind}.",
        )
    if not rows:
        raise reject("no_data_rows", "The list of rows is empty.")
    if len(rows) > spec.max_rows:
        raise reject(
            "too_many_rows",
            f"There are {len(rows):,} rows, more than the limit of {spec.max_rows:,}. Split the upload.",
        )
    errors = [
        UploadError.about(
            "invalid_json",
            f"Item {i} of the list is not an object with column names as keys.",
            row=i,
            value=shortened(json.dumps(item, default=str)),
        )
        for i, item in enumerate(rows, start=1)
        if not isinstance(item, dict)
    ]
    if errors:
        raise UploadRejected(errors)
    header: dict[str, None] = {}
    for i, item in enumerate(rows, start=1):
        for key in item:
            if str(key) not in header:
                header[str(key)] = None
                if len(header) > spec.max_columns:
                    raise reject(
                        "too_many_columns",
                        f"Item {i} brings the number of different field names to more than "
                        f"{spec.max_columns:,}, the limit of columns. Send only the fields the outcome "
                        "uses (the study's identity, the statistics and the moderators).",
                        row=i,
                    )
    names = list(header)
    table_rows = []
    for i, item in enumerate(rows, start=1):
        by_name = {str(k): v for k, v in item.items()}
        cells = [by_name.get(name) for name in names]
        if all(is_blank(c) for c in cells):
            continue
        table_rows.append(RawRow(number=i, cells=cells))
    if not table_rows:
        raise reject("no_data_rows", "Every object in the list is empty.")
    return RawTable(
        header=list(names),
        header_row=None,
        rows=table_rows,
        source_format="json",
        default_decimal=".",
        item="Item",
    )


def read_json_bytes(content: bytes, *, spec: UploadSpec) -> RawTable:
    text, encoding = decode_text(content)
    if not text.strip():
        raise reject("empty_file", "The file is empty.")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise reject(
            "invalid_json", f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except (RecursionError, ValueError) as exc:
        raise reject("invalid_json", f"The file is not valid JSON ({shortened(str(exc), 80)}).") from None
    table = read_rows_object(rows, spec=spec)
    table.encoding = encoding
    return table
