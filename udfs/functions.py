"""Every Excel function the model exposes, as live views of the registry (udfs/registry.py).

Importing this module imports every module that registers functions, so the registry is
complete; the views below re-index themselves when a function is registered later (a test, or
an analyst's own module), so every consumer sees the same set.
"""
from __future__ import annotations

from . import checks, dcf, forecast, rating, ratios, selection, valuation  # noqa: F401 - importing them registers their functions
from .registry import (  # noqa: F401 - re-exported for the consumers of the registry
    ANY, CATEGORY, NUMBER, OPTIONAL, PREFIX, REGISTRY, SERIES, TEXT, Arg, ExcelFunction, LiveView, guard,
    guarded_spec,
)


def all_functions() -> list[ExcelFunction]:
    """Every registered function, in registration order."""
    return list(REGISTRY.values())


BY_EXCEL_NAME = LiveView(lambda f: f.excel_name, lambda f: f)
BY_FORMULA_NAME = LiveView(lambda f: f.formula_name, lambda f: f)
# The guarded callables, by formula name (what the engine calls) and by worksheet name (what
# headless evaluation calls without importing xlwings; udfs.xl's wrappers only forward to these).
GUARDED = LiveView(lambda f: f.formula_name, guarded_spec)
GUARDED_BY_EXCEL_NAME = LiveView(lambda f: f.excel_name, guarded_spec)
