"""The Refresh button's entry point.

`main()` is what the workbook's button runs through xlwings (RunPython with the UDF server):
it recalculates the open workbook, whose ER_ functions run in this same Python process, and
stamps the time and the source of the market inputs on the cover. The quote source and the
headless refresh of a file are the refresh workflow's next step.
"""
from __future__ import annotations

import datetime as dt

STAMP_NAME = "MKT_refresh_stamp"
SOURCE_NAME = "MKT_refresh_source"


def refresh_book(book, now: dt.datetime | None = None, source: str = "Excel recalculation") -> None:
    """Recalculate an open xlwings Book and stamp it. `book` only needs xlwings' Book surface
    (`app.calculate()`, `names[NAME].refers_to_range.value`), so tests can pass a stand-in."""
    now = now or dt.datetime.now().replace(microsecond=0)
    book.app.calculate()
    book.names[STAMP_NAME].refers_to_range.value = now.isoformat(sep=" ")
    book.names[SOURCE_NAME].refers_to_range.value = source


def main() -> None:
    import xlwings as xw

    refresh_book(xw.Book.caller())
