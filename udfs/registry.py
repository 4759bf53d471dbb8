"""The registry of Excel functions, and the one guard that does the Excel chores for all of them.

Each function is registered where it is implemented, with a decorator carrying its Excel name,
its description, its arguments with their help text and a sample call for the benchmark:

    @excel_function("GROWTH", "Prior-year value grown by a rate: prior x (1 + rate).",
                    Arg("prior", NUMBER, "Prior-year value"), Arg("rate", NUMBER, "Growth rate"),
                    sample=(191759.0, 0.0409))
    def grow(prior, rate): ...

The registry is what every consumer reads: `udfs.excel_functions()`, the xlwings layer, the
VBA wrappers and wizard help written into the template, the engine's formula language, the
headless evaluator, the benchmark and the hostile-input suite. A new function is therefore one
decorated function in one file.

`native=` is the same function as a native Excel formula, for the macro-free live edition
(`addin/native.py`): `{0}`, `{1}`… stand for the arguments (an omitted optional argument becomes
its default), `NM` cases are `IF` guards and error cases Excel's own error literals (`#NUM!`).
A template may call other `ER_` functions (they are translated in turn) and use the named
placeholders the translator fills: `{NM}` and the other labels of `udfs/constants.py`, and
the cells of the edition's rating table (`{labels}`, `{thresholds}`, …; see
`addin.native.PLACEHOLDERS`). `native=None` declares the function not expressible natively (an
array grid, a row of cash flows); every function must say one or the other.

The guard is what both callers reach: Excel (through the thin xlwings layer in `udfs/xl.py`)
and the engine evaluating the model's formulas. It turns 1x1 ranges into scalars and single
rows or columns into lists, empty cells into None, text where a number belongs into #VALUE!, an
error value in an argument into that same error, undefined maths into #DIV/0! or #NUM!, and
an argument the function deliberately refuses (`udfs.errors.InputError`: an unknown rating
scheme, segment method or scenario) into #VALUE!. Those are the expected outcomes. Any other
exception is a bug, not bad input, a `ValueError` Python raises itself included (a failed
unpacking, `float("x")`): in a worksheet it also becomes #VALUE!, so that a traceback never
reaches a cell, but with `strict(True)` (the test suite) it is raised, so a bug fails a test
rather than hiding behind an error value.

The guard's cell conversions are public (`cell_scalar`, `cell_number`, `cell_row`,
`is_blank`, `is_error`): a function taking a row whose gaps matter (a DCF's years, a blend's
weights) converts cell by cell with the same rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Callable

from .constants import ERR_DIV0, ERR_NA, ERR_NUM, ERR_VALUE, EXCEL_ERRORS
from .errors import InputError

NUMBER = "number"       # a required number
OPTIONAL = "optional"   # a number that may be left empty (its default is used)
TEXT = "text"           # text, may be empty
SERIES = "series"       # a single row or column of numbers (empty cells skipped)
ANY = "any"             # passed through; the function itself judges validity

CATEGORY = "Equity research"
PREFIX = "ER_"


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str
    help: str
    default: object = None
    required: bool | None = None  # None: OPTIONAL and TEXT arguments may be omitted, others not
    # The name of another argument: the function reads this one only when that one is a positive
    # number (the treasury-stock method reads the price only when an exercise price is given).
    # The sensitivity table's dependency analysis relies on it (workbook.model.sensitivity_inputs);
    # tests/test_valuation.py holds every declaration to the function's behaviour.
    read_only_if_positive: str | None = None

    @property
    def optional(self) -> bool:
        return self.kind in (OPTIONAL, TEXT) if self.required is None else not self.required


@dataclass(frozen=True)
class ExcelFunction:
    excel_name: str       # ER_GROWTH
    formula_name: str     # grow: the name model formulas use
    impl: Callable
    args: tuple
    description: str
    sample: tuple = ()    # a representative call, for the benchmark
    native: str | None = None      # the native Excel formula template; None: not expressible
    native_declared: bool = False  # whether `native=` was given at all (a test requires it)


_UNDECLARED = object()   # `native=` not given: a test requires every function to declare it


REGISTRY: dict[str, ExcelFunction] = {}   # by Excel name, in registration order
_version = [0]                             # bumped on every change, so live views know to re-index


def excel_function(name: str, description: str, *args: Arg, sample: tuple = (), formula_name: str | None = None,
                   native=_UNDECLARED):
    """Register the decorated function as Excel function PREFIX + name; returns it unchanged."""
    def register(impl: Callable) -> Callable:
        declared = native is not _UNDECLARED
        spec = ExcelFunction(PREFIX + name, formula_name or impl.__name__.lstrip("_"), impl, tuple(args),
                             description, tuple(sample), native if declared else None, declared)
        clash = REGISTRY.get(spec.excel_name)
        if clash is not None and clash.impl is not impl:
            raise ValueError(f"Excel function {spec.excel_name} is registered twice")
        if any(f.formula_name == spec.formula_name and f.excel_name != spec.excel_name for f in REGISTRY.values()):
            raise ValueError(f"formula name {spec.formula_name!r} is registered twice")
        seen_optional = False
        for arg in spec.args:
            if seen_optional and not arg.optional:
                raise ValueError(f"{spec.excel_name}: required argument {arg.name!r} follows an optional one")
            seen_optional = seen_optional or arg.optional
        REGISTRY[spec.excel_name] = spec
        _version[0] += 1
        return impl
    return register


def registry_version() -> int:
    """A number that changes whenever a function is registered or removed."""
    return _version[0]


def unregister(excel_name: str) -> None:
    """Remove a function (tests that register one at run time clean up with this)."""
    REGISTRY.pop(excel_name, None)
    _GUARDS.pop(excel_name, None)
    _version[0] += 1


_SAVED_PREFIXES = ("_XLFN.", "_XLUDF.", "_XLWS.")


def excel_name(written: str) -> str:
    """A function name as a formula means it: upper case, without the prefixes Excel writes in
    a saved file before a function it did not know when saving (`_xlfn.ER_GROWTH` is ER_GROWTH)."""
    name = written.upper()
    while name.startswith(_SAVED_PREFIXES):
        name = name.split(".", 1)[1]
    return name


class Reject(Exception):
    """An argument Excel passed that the function cannot take; carries the error value to show."""
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


_strict = False


def strict(on: bool = True) -> None:
    """In strict mode an unexpected exception inside a function (a bug: anything but the
    expected outcomes the guard maps, see the module's docstring) is raised, not shown as #VALUE!."""
    global _strict
    _strict = on


def is_error(value) -> bool:
    return isinstance(value, str) and value.strip().upper() in EXCEL_ERRORS


def is_blank(value) -> bool:
    """An empty cell, as Excel passes it: None or the empty text."""
    return value is None or value == ""


def cell_scalar(value):
    """A 1x1 range arrives as a scalar or a nested list; anything larger is the wrong shape."""
    while isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise Reject(ERR_VALUE)
        value = value[0]
    return value


def cell_number(value, optional: bool = False, default=None) -> float:
    """A cell where a number belongs: a finite number as a float; an empty cell is `default` if
    `optional`, else #N/A; an error value is that error; text, dates, booleans are #VALUE!."""
    if value.__class__ is float and value - value == 0.0:   # the common case, decided at once
        return value
    value = cell_scalar(value)
    if is_blank(value):
        if optional:
            return default
        raise Reject(ERR_NA)  # a blank where a number is needed: the input is not available
    if is_error(value):
        raise Reject(value.strip().upper())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Reject(ERR_VALUE)  # text (even "12"), dates, booleans: not a number the model accepts
    if not math.isfinite(value):
        raise Reject(ERR_NUM)
    return float(value)


def _text(value, default):
    value = cell_scalar(value)
    if is_blank(value):
        return default
    if is_error(value):
        raise Reject(value.strip().upper())
    if not isinstance(value, str):
        raise Reject(ERR_VALUE)
    return value.strip()


def cell_row(value) -> list:
    """A row or a column of cells as a flat list (a single cell is a row of one); a block is
    #VALUE!, as everywhere else a row or column belongs."""
    if not isinstance(value, (list, tuple)):
        return [value]
    if value and all(isinstance(row, (list, tuple)) for row in value):
        if len(value) == 1:
            return list(value[0])
        if all(len(row) == 1 for row in value):
            return [row[0] for row in value]
        raise Reject(ERR_VALUE)
    if any(isinstance(v, (list, tuple)) for v in value):
        raise Reject(ERR_VALUE)  # a ragged mixture of cells and rows
    return list(value)


def _series(value):
    """A row or column of numbers; its empty cells are skipped."""
    return [cell_number(v) for v in cell_row(value) if not is_blank(v)]


def _result(value):
    if value.__class__ is float:
        return value if value - value == 0.0 else ERR_NUM
    if isinstance(value, bool):
        return ERR_VALUE
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else ERR_NUM
    if isinstance(value, str):  # an error passed through as text (" #n/a ", "#VALUE!\n") is that error value
        return value.strip().upper() if is_error(value) else value
    if value is None:
        return ERR_NA
    if isinstance(value, (list, tuple)):  # an array function's grid: each cell guarded alike
        return [_result(v) for v in value]
    return ERR_VALUE


def _converter(arg: Arg) -> Callable:
    """How one argument's cell becomes the value the function takes, by the argument's kind;
    decided once per registration rather than on every call."""
    if arg.kind == NUMBER:
        return cell_number
    if arg.kind == OPTIONAL:
        default = arg.default
        return lambda value: cell_number(value, True, default)
    if arg.kind == TEXT:
        default = arg.default
        return lambda value: _text(value, default)
    if arg.kind == SERIES:
        return _series
    return lambda value: value


def _finite_floats(values: tuple) -> bool:
    """Whether every value is a finite float (not a subclass: a bool is an int, never a float)."""
    for value in values:
        if value.__class__ is not float or value - value != 0.0:
            return False
    return True


def _numbers_only(spec: ExcelFunction) -> bool:
    return all(arg.kind in (NUMBER, OPTIONAL) for arg in spec.args)


_DIRECT: list = [None, None]   # [registry version, direct_calls()]


def _direct_args(spec: ExcelFunction) -> tuple | None:
    """Per argument (a number?, may be omitted?, the value the function then gets), when the
    guard gives `impl` each argument unchanged that is a finite float where a number belongs and
    anything where any value does; None for a function with an argument the guard converts
    otherwise (text, a series)."""
    out = []
    for arg in spec.args:
        if arg.kind == NUMBER:
            out.append((True, False, None))      # omitted: #N/A, the guard's answer
        elif arg.kind == OPTIONAL:
            out.append((True, True, arg.default))
        elif arg.kind == ANY:
            out.append((False, True, None))      # omitted: the guard pads it with an empty cell
        else:
            return None
    return tuple(out)


def direct_calls() -> tuple:
    """`(result, ((formula name, impl, arguments), ...))` for the functions the guard calls
    with their arguments unchanged when each is a finite float where a number belongs
    (`_direct_args` describes `arguments`): there it returns `result(impl(*args))` and maps what
    `impl` raises. The engine's line functions call these `impl`s themselves in that case
    (udfs.formula.line_function), and the guard in every other. The same tuple until the registry
    changes."""
    if _DIRECT[0] != _version[0]:
        _DIRECT[:] = [_version[0], (_result, tuple((spec.formula_name, spec.impl, args) for spec in REGISTRY.values()
                                                   if (args := _direct_args(spec)) is not None))]
    return _DIRECT[1]


def guard(spec: ExcelFunction) -> Callable:
    """The callable Excel's call reaches for `spec`: positional arguments as Excel passes them."""
    converters = tuple(_converter(arg) for arg in spec.args)
    count, impl = len(converters), spec.impl
    # Every argument a number: a call whose values are all finite floats (nearly every call the
    # engine makes) is what the converters would return unchanged, so it goes straight to `impl`.
    numbers_only = _numbers_only(spec)

    def guarded(*values):
        if len(values) > count:
            return ERR_VALUE
        try:
            if numbers_only and len(values) == count and _finite_floats(values):
                return _result(impl(*values))
            if len(values) < count:
                values = values + (None,) * (count - len(values))
            converted = [convert(value) for convert, value in zip(converters, values)]
            return _result(impl(*converted))
        except Reject as rejected:
            return rejected.error
        except ZeroDivisionError:
            return ERR_DIV0
        except OverflowError:
            return ERR_NUM
        except InputError:
            return ERR_VALUE
        except Exception:  # noqa: BLE001 - a bug: a cell must show an error value, never a traceback
            if _strict:
                raise
            return ERR_VALUE
    guarded.__name__ = spec.excel_name
    guarded.__doc__ = spec.description
    return guarded


_GUARDS: dict[str, tuple[ExcelFunction, Callable]] = {}


def guarded(excel_name: str) -> Callable:
    """The guarded callable of a registered function (made once per registration)."""
    spec = REGISTRY[excel_name]
    cached = _GUARDS.get(excel_name)
    if cached is None or cached[0] is not spec:
        cached = _GUARDS[excel_name] = (spec, guard(spec))
    return cached[1]


class LiveView(Mapping):
    """A read-only mapping over the registry, re-indexed whenever a function is (un)registered:
    `LiveView(lambda f: f.formula_name, guarded_spec)` maps formula names to guarded callables."""

    def __init__(self, key: Callable[[ExcelFunction], str], value: Callable[[ExcelFunction], object]):
        self._key, self._value = key, value
        self._seen, self._index = -1, {}

    def _current(self) -> dict:
        if self._seen != _version[0]:
            self._index = {self._key(f): self._value(f) for f in REGISTRY.values()}
            self._seen = _version[0]
        return self._index

    def __getitem__(self, key):
        return self._current()[key]

    def __iter__(self):
        return iter(self._current())

    def __len__(self):
        return len(self._current())


def guarded_spec(spec: ExcelFunction) -> Callable:
    return guarded(spec.excel_name)
