"""The thin xlwings layer: one Excel function per entry of the registry (udfs/registry.py).

xlwings finds a UDF by the Python name of a module attribute carrying `__xlfunc__`, and calls
it with positional arguments (`XLPy.CallUDF("udfs.xl", "ER_GROWTH", Array(prior, rate), ...)`).
Each attribute here is therefore a function named exactly as in Excel, with the argument names
and order of the registry, doing nothing but call the shared guard. Off Windows the xlwings
decorators are no-ops, which is why the tests check the registry, not the decorators.
"""
from __future__ import annotations

import inspect

import xlwings as xw

from .functions import CATEGORY, REGISTRY, SERIES, ExcelFunction
from .registry import guarded

_EXPOSED: dict[str, tuple[ExcelFunction, object]] = {}


def _expose(spec: ExcelFunction):
    call = guarded(spec.excel_name)

    def udf(*args):
        return call(*args)

    params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=None if a.optional else inspect.Parameter.empty)
              for a in spec.args]
    # Optional arguments may only follow required ones in a signature; the registry enforces it.
    udf.__signature__ = inspect.Signature(params)
    udf.__name__ = udf.__qualname__ = spec.excel_name
    udf.__doc__ = spec.description
    udf.__module__ = __name__
    udf = xw.func(category=CATEGORY)(udf)
    for arg in spec.args:
        options = {"doc": arg.help, "err_to_str": True, "empty": None}
        if arg.kind == SERIES:
            options["ndim"] = 2
        udf = xw.arg(arg.name, **options)(udf)
    return udf


def exposed() -> dict:
    """Every registered function's xlwings wrapper, by Excel name; also set as module
    attributes, which is where xlwings' UDF server looks them up."""
    for name, spec in REGISTRY.items():
        cached = _EXPOSED.get(name)
        if cached is None or cached[0] is not spec:
            _EXPOSED[name] = (spec, _expose(spec))
            globals()[name] = _EXPOSED[name][1]
    for name in set(_EXPOSED) - set(REGISTRY):
        del _EXPOSED[name]
        globals().pop(name, None)
    return {name: _EXPOSED[name][1] for name in REGISTRY}


exposed()  # the functions registered by now become attributes at import, where xlwings looks first


# A function registered after this import (a test, an analyst's own module) is an attribute
# from its first lookup on: xlwings' UDF server finds functions with dir(module) and
# getattr(module, name), and `from udfs.xl import *` reads __all__, so all three ask the live
# registry (PEP 562) rather than a list taken once at import.
def __getattr__(name: str):
    if name == "__all__":
        return sorted(exposed())
    functions = exposed()
    if name in functions:
        return functions[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    exposed()  # first: it also drops the attributes of functions unregistered since
    return sorted(globals())
