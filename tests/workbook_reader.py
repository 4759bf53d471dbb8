"""Find cells in a built workbook by meaning: defined names, the header row's years and the
report's row labels, read with openpyxl (which only reads here; it never saves a template)."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter

HEADER_ROW = 4  # 1-based: the year header row of every yearly sheet


class Template:
    def __init__(self, path: Path):
        self.path = path
        self.book = openpyxl.load_workbook(path, keep_vba=True)
        self.values = openpyxl.load_workbook(path, data_only=True, keep_vba=True)

    def name_range(self, name: str) -> tuple[str, list[str]]:
        """(sheet, [cells]) a defined name refers to."""
        text = self.book.defined_names[name].attr_text
        match = re.match(r"^'?(?P<sheet>.+?)'?!\$(?P<c1>[A-Z]+)\$(?P<r1>\d+)(?::\$(?P<c2>[A-Z]+)\$(?P<r2>\d+))?$", text)
        sheet = match["sheet"].replace("''", "'")
        first = openpyxl.utils.column_index_from_string(match["c1"])
        last = openpyxl.utils.column_index_from_string(match["c2"] or match["c1"])
        return sheet, [f"{get_column_letter(c)}{match['r1']}" for c in range(first, last + 1)]

    @lru_cache(maxsize=None)
    def year_columns(self, sheet: str) -> dict:
        ws = self.book[sheet]
        return {str(c.value).split("（")[0]: c.column_letter for c in ws[HEADER_ROW] if c.value}

    @lru_cache(maxsize=None)
    def label_rows(self, sheet: str) -> dict:
        ws = self.book[sheet]
        rows = {}
        for cell in ws["A"]:
            if isinstance(cell.value, str):
                rows.setdefault(cell.value, cell.row)
        return rows

    def cell_by_label(self, sheet: str, label: str, year: str) -> str:
        return f"{self.year_columns(sheet)[year]}{self.label_rows(sheet)[label]}"

    def cell_by_name(self, name: str, year: str | None = None) -> tuple[str, str] | None:
        """(sheet, cell) of a named line in a year; None when the line has no cell that year."""
        sheet, cells = self.name_range(name)
        if year is None:
            return sheet, cells[0]
        column = self.year_columns(sheet).get(year)
        found = [c for c in cells if column and re.match(rf"^{column}\d+$", c)]
        return (sheet, found[0]) if found else None
