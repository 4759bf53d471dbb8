"""A stand-in for the part of xlwings' Book that the Refresh button uses, backed by a real model
file: cells start as the file holds them, writes land in memory, `app.calculate()` recomputes
every formula with the headless evaluator (as Excel would with our UDFs), and `fullname` is the
file, as it is for a saved workbook in Excel. No Excel here, so this is how the button path is run."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from workbook import xlsx
from workbook.xlcalc import evaluate


class Range:
    def __init__(self, book: "Book", sheet: str, first: str, last: str | None = None):
        self.book, self.sheet, self.first, self.last = book, sheet, first, last

    def _refs(self):
        (r1, c1), (r2, c2) = xlsx.split_ref(self.first), xlsx.split_ref(self.last or self.first)
        return [[f"{xlsx.col_letters(c)}{r}" for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]

    def options(self, **_kwargs):
        return self

    def expand(self):
        r, c = xlsx.split_ref(self.first)
        rows = r
        while self.book.cells.get((self.sheet, f"{xlsx.col_letters(c)}{rows + 1}")) not in (None, ""):
            rows += 1
        cols = c
        while self.book.cells.get((self.sheet, f"{xlsx.col_letters(cols + 1)}{r}")) not in (None, ""):
            cols += 1
        return Range(self.book, self.sheet, self.first, f"{xlsx.col_letters(cols)}{rows}")

    @property
    def value(self):
        grid = [[self.book.cells.get((self.sheet, ref)) for ref in row] for row in self._refs()]
        if self.last is None:
            return grid[0][0]
        return grid[0] if len(grid) == 1 else grid

    @value.setter
    def value(self, value):
        assert self.last is None, "the refresh writes single cells"
        if isinstance(value, dt.datetime):
            value = xlsx.excel_date(value.date())
        self.book.cells[(self.sheet, self.first)] = value
        self.book.typed[(self.sheet, self.first)] = value
        self.book.writes.append((self.sheet, self.first, value))


class Sheet:
    def __init__(self, book, name):
        self.book, self.name = book, name

    def range(self, address: str):
        first, _, last = address.replace("$", "").partition(":")
        return Range(self.book, self.name, first, last or None)


class Name:
    def __init__(self, book, name):
        (sheet, ref), = book.package.name_cells(name)[:1]
        self.refers_to_range = Range(book, sheet, ref)


class Book:
    def __init__(self, path: Path):
        self.fullname = str(path)
        self.package = xlsx.read(path)
        self.cells = {(s, ref): self.package.value(s, ref) for s, sheet in self.package.sheets.items() for ref in sheet.cells}
        self.typed: dict = {}
        self.writes: list = []
        self.calculated = 0
        book = self

        class App:
            def calculate(self):
                book.calculated += 1
                book.cells.update(evaluate(book.package, book.typed))

        self.app = App()
        self.names = _Lookup(lambda n: Name(self, n), self.package.names)
        self.sheets = _Lookup(lambda n: Sheet(self, n), self.package.sheets)


class _Lookup:
    def __init__(self, make, known):
        self.make, self.known = make, known

    def __getitem__(self, key):
        if key not in self.known:
            raise KeyError(key)
        return self.make(key)

    def __contains__(self, key):
        return key in self.known
