"""Two-way sensitivity grids: one value per pair of inputs, laid out as the sheet shows them.

The grid is the only shape knowledge here: row i holds the answers for the i-th row input, column
j those for the j-th column input. What is evaluated is the caller's business, so the same helper
serves the closed-form valuation grids (udfs/valuation.py) and grids that re-run the model
engine per point (the caller passes a closure over the engine and the workbook's drivers).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

X = TypeVar("X")
Y = TypeVar("Y")
V = TypeVar("V")


def two_way(evaluate: Callable[[X, Y], V], xs: Sequence[X], ys: Sequence[Y]) -> list[list[V]]:
    """`[[evaluate(x, y) for y in ys] for x in xs]`: xs down the rows, ys across the columns.

    A point without an answer should come back as an error value or label (as the registered
    functions return them), so that one bad point marks one cell; an exception from `evaluate`
    aborts the whole grid, which is right for a bug, not for a point outside a formula's domain.
    """
    columns = list(ys)
    return [[evaluate(x, y) for y in columns] for x in xs]


# The name the valuation grids use: a grid of `function` over row values x column values.
grid = two_way
