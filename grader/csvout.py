"""CSV for spreadsheets: one writer that keeps text cells from being read as formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

#: A cell starting with one of these may run as a formula in Excel, LibreOffice or
#: Google Sheets (CSV injection); such text gets a leading apostrophe.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``None`` -> ``""``; text that could be a formula -> ``'`` + text; anything else as is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(handle: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``header`` and ``rows`` to ``handle`` (opened with ``newline=""``), every
    cell through :func:`safe_cell`."""
    writer = csv.writer(handle)
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """:func:`write_csv` into a string."""
    out = io.StringIO(newline="")
    write_csv(out, header, rows)
    return out.getvalue()
