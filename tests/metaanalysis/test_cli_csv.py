"""The command line reads a CSV file as pandas' read_csv did (the tool no longer imports pandas)."""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd
import pytest

from workers.metaanalysis import cli
from workers.metaanalysis.cli_csv import CliInputError, detect_delimiter, numeric_columns, read_table

TRICKY_FILES = [
    "study,yi,vi,year,grp\nA,0.1,0.01,1990,x\nB,0.2,0.02,1991,y\n",
    "study,yi,vi,year\n 1, 0.1 ,0.01, 1990\n2,0.2,0.02,\n",  # blanks around numbers; an int with a gap
    "study,yi,vi,dose\nA,0.1,0.01,1e3\nB,0.2,0.02,.5\nC,0.3,0.01,-inf\nD,0.1,0.1,Infinity\n",
    "study,yi,vi,blinded,open\nA,0.1,0.01,True,TRUE\nB,0.2,0.02,false,\nC,0.3,0.03,TRUE,yes\n",
    "study,yi,vi,note\nA,NA,0.01,NA \nB,null,0.02,  NA\nC,#N/A,0.03,n/a\nD,,0.04,-\n",
    'study,yi,vi,site\n"A, B",0.1,0.01,"NA"\nC,"0.2",0.02," 3"\n',
    "study,yi,vi\n\nA,0.1,0.01\n   \nB,0.2,0.02\n,,\n",  # blank lines skipped, a row of delimiters kept
    "study,yi,vi,a,a,\nA,0.1,0.01,1,2,3\n",  # a repeated and an empty header name
    "study,yi,vi,code\nA,0.1,0.01,0x10\nB,0.2,0.02,1_0\nC,0.3,0.03,٣\n",  # not numbers to pandas
    "study,yi,vi\nA,0.1,0.01\nB\n",  # a short row
    "study;yi;vi;year\nA;0,1;0,01;1990\nB;0,2;0,02;1991\n",
    "study\tyi\tvi\tn\nA\t0.1\t0.01\t12\nB\t0.2\t0.02\t12.5\n",  # tabs; integers beside a decimal
]


def pandas_cells(text: str, measure: str, sep: str) -> dict[str, list[Any]]:
    as_text = dict.fromkeys(numeric_columns(measure), str)
    frame = pd.read_csv(io.StringIO(text), sep=sep, engine="python", skipinitialspace=True, dtype=as_text)

    def plain(value: Any) -> Any:
        value = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
        return None if isinstance(value, float) and math.isnan(value) else value

    return {str(c).strip(): [plain(v) for v in frame[c].tolist()] for c in frame.columns}


@pytest.mark.parametrize("text", TRICKY_FILES)
def test_cells_are_typed_as_pandas_typed_them(text: str) -> None:
    table = read_table("-", stdin=io.StringIO(text), measure="GEN")
    sep = detect_delimiter(text, "GEN")
    expected = pandas_cells(text, "GEN", sep)
    assert table.columns == list(expected)
    for name, cells in expected.items():
        assert table.cells[name] == cells, name
        assert [type(v) for v in table.cells[name]] == [type(v) for v in cells], name


def test_rows_carry_the_typed_cells_and_the_measure_as_numbers() -> None:
    text = "study,yi,vi,year,grp\nA,0.1,0.01,1990,x\nB,0.2,0.02,,y\n"
    rows = cli.rows_from_frame(read_table("-", stdin=io.StringIO(text), measure="GEN"), "GEN", mods=["year"])
    assert rows == [
        {"study": "A", "yi": 0.1, "vi": 0.01, "year": 1990.0, "grp": "x"},
        {"study": "B", "yi": 0.2, "vi": 0.02, "year": None, "grp": "y"},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "study,yi,vi\nA,0.1,0.01\nB,0.2,0.02,9\n",
            "cannot parse standard input as CSV: Expected 3 fields in line 3, saw 4",
        ),
        ("study,yi,vi\n", "standard input has a header but no rows"),
    ],
)
def test_a_file_that_is_not_a_table_is_refused(text: str, message: str) -> None:
    with pytest.raises(CliInputError, match=message):
        read_table("-", stdin=io.StringIO(text), measure="GEN")


def test_trailing_empty_fields_are_not_a_row_too_long() -> None:
    table = read_table("-", stdin=io.StringIO("study,yi,vi\nA,0.1,0.01,,\n"), measure="GEN")
    assert table.cells == {"study": ["A"], "yi": ["0.1"], "vi": ["0.01"]}


def test_a_separator_must_be_one_character() -> None:
    with pytest.raises(CliInputError, match="--sep must be one character"):
        read_table("-", stdin=io.StringIO("study,yi,vi\nA,0.1,0.01\n"), sep="::", measure="GEN")
