"""Evaluate a workbook with the `formulas` package, our functions bound as Excel would call them.

`formulas` passes each argument as a Ranges object (a numpy array behind `.value`), empty cells
as schedula's EMPTY and errors as XlError; Excel, through xlwings, passes scalars, nested lists,
None and error text. This adapter makes the first look like the second, then calls exactly the
callables of `udfs.excel_functions()`.
"""
from __future__ import annotations

import re
from functools import lru_cache

import formulas
import numpy as np
import schedula as sh
from formulas.ranges import Ranges
from formulas.tokens.operand import XlError

import udfs


def to_excel_value(value):
    if isinstance(value, Ranges):
        value = value.value
    if isinstance(value, np.ndarray):
        if value.size == 1:
            return to_excel_value(value.ravel()[0])
        return [[to_excel_value(v) for v in row] for row in np.atleast_2d(value)]
    if isinstance(value, XlError):
        return str(value)
    if value is sh.EMPTY:
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer, np.floating)):
        return float(value)
    return value


@lru_cache(maxsize=1)
def register() -> None:
    functions = formulas.get_functions()
    for name, function in udfs.excel_functions().items():
        def call(*args, _function=function):
            return _function(*[to_excel_value(a) for a in args])
        functions[name] = call


_KEY = re.compile(r"^'\[(?P<book>[^\]]+)\](?P<sheet>.*)'!(?P<cell>[A-Z]+[0-9]+)$")


def normalise(solution) -> dict:
    """{(sheet, "E5"): python value} for every single cell of a formulas solution."""
    out = {}
    for key, value in solution.items():
        match = _KEY.match(key)
        if match:
            out[(match["sheet"], match["cell"])] = to_excel_value(value.value if hasattr(value, "value") else value)
    return out


class Evaluated:
    """A built workbook loaded into `formulas`; `calculate(changes)` re-evaluates with inputs changed."""

    def __init__(self, path):
        register()
        self.path = path
        self.model = formulas.ExcelModel().loads(str(path)).finish()
        self.book = path.name

    def key(self, sheet: str, cell: str) -> str:
        return f"'[{self.book}]{sheet.upper()}'!{cell}"

    def calculate(self, changes: dict | None = None) -> dict:
        inputs = {self.key(s, c): v for (s, c), v in (changes or {}).items()}
        return normalise(self.model.calculate(inputs=inputs) if inputs else self.model.calculate())
