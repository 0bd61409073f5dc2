"""The one CSV writer: text that a spreadsheet would run as a formula is neutralised,
everything else comes back from a CSV reader exactly as written."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.csvout import FORMULA_START, csv_text, safe_cell

cells = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.sampled_from(FORMULA_START).flatmap(lambda c: st.text().map(lambda t: c + t)),
)


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_formula_cells_get_a_leading_apostrophe() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [safe_cell(c + "1") for c in FORMULA_START] == ["'" + c + "1" for c in FORMULA_START]
    assert safe_cell(None) == "" and safe_cell(-3) == -3 and safe_cell("alice") == "alice"
    assert safe_cell("a=1") == "a=1" and safe_cell("") == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=5), max_size=5))
def test_rows_round_trip_and_no_text_cell_starts_a_formula(rows: list[list[object]]) -> None:
    header = ["a", "b"]
    parsed = read_back(csv_text(header, rows))
    assert parsed[0] == header and len(parsed) == len(rows) + 1
    for written, back in zip(rows, parsed[1:], strict=True):
        for value, cell in zip(written, back, strict=True):
            if isinstance(value, str):
                assert not cell.startswith(FORMULA_START)
                assert cell == ("'" + value if value.startswith(FORMULA_START) else value)
            else:
                assert cell == ("" if value is None else str(value))
