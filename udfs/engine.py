"""The model engine: lines defined by formulas in the model's formula language, evaluated year by
year. It knows nothing of any company or of Excel: a model is a list of `Line`s, a list of `Year`s and
the input values; the workbook layout reads the very same lines to write the template.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from graphlib import CycleError, TopologicalSorter
from typing import Iterable

from . import formula as fx
from .checks import OK, WARN, warn
from .forecast import METHODS
from .constants import ERR_NA
from .errors import DataError
from .functions import GUARDED
from .registry import direct_calls, registry_version

ACTUAL = "actual"
FORECAST = "forecast"
BASE = "base"  # a year before the first reported one, holding only what growth rates need

# How a line behaves in reported years.
INPUT = "input"        # reported figure typed in; the formula applies to forecast years only
ALWAYS = "always"      # formula in every year (ratios, growth rates)
FORECAST_ONLY = "forecast_only"  # drivers: no value in reported years


@dataclass(frozen=True)
class Year:
    label: str   # as shown: "2023", "2025E"
    year: int
    kind: str    # ACTUAL, FORECAST or BASE


@dataclass(frozen=True)
class Line:
    """One line of the model. `formula` is in the formula language; `None` for pure inputs.

    `identity` says the formula is the report's own definition (a subtotal, a roll-forward), so
    it must also hold on the report's printed figures; formulas carrying a reconciling driver
    are not identities. `identity_years` narrows it (per-share lines hold only on the forecast
    share count, the report's reported EPS use each year's weighted average).
    """
    key: str
    table: str
    label_zh: str
    label_en: str
    fmt: str = "money"
    formula: str | None = None
    history: str = INPUT
    scalar: bool = False
    identity: bool = False
    identity_years: str = "all"
    driven: bool = False
    note: str = ""
    implied: str | None = None  # drivers: the value the reported figures imply, shown in reported years

    def formula_in(self, year_kind: str) -> str | None:
        """The formula this line uses in a year of that kind; None where its value is typed."""
        if year_kind == FORECAST:
            return self.formula
        if year_kind == ACTUAL:
            return self.implied or (self.formula if self.history == ALWAYS else None)
        return None


@dataclass(frozen=True)
class Check:
    """An integrity check: `actual` must equal `expected` within `tolerance` in forecast years."""
    key: str
    label_zh: str
    label_en: str
    actual: str
    expected: str
    tolerance: float = 0.001


@dataclass(frozen=True)
class SanityWarning:
    """A sanity warning: `value` (a formula) should lie within [minimum, maximum] in forecast
    years; None leaves that side open. Unlike a check, a breach does not make the model wrong
    (the statements still articulate), it makes it implausible: negative cash, a tax rate of 80%."""
    key: str
    label_zh: str
    label_en: str
    value: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class Driver:
    """A company's forecast driver for one line: the method, the base line, a value per forecast year."""
    line: str
    method: str
    values: list
    base: str | None = None
    note: str = ""
    review: bool = False  # carried forward by a roll: the analyst should look at it
    keep: bool = False    # the analyst's own round values: calibration leaves them as they are


def driver_key(line_key: str) -> str:
    return f"d_{line_key}"


def bind_drivers(lines: list[Line], drivers: dict[str, Driver]) -> list[Line]:
    """The model's lines with each driven line's formula made from its company driver, and a
    driver line added for it (the blue inputs of the assumptions sheet)."""
    by_key = {line.key: line for line in lines}
    bound, driver_lines = [], []
    for line in lines:
        if not line.driven:
            bound.append(line)
            continue
        driver = drivers.get(line.key)
        if driver is None:
            raise DataError(f"line {line.key!r} ({line.label_zh}) needs a driver: add [drivers.{line.key}] with a method")
        method = METHODS.get(driver.method)
        if method is None:
            raise DataError(f"driver {line.key!r}: unknown method {driver.method!r}; known: {', '.join(METHODS)}")
        if method.needs_base and driver.base not in by_key:
            raise DataError(f"driver {line.key!r}: method {driver.method!r} needs `base`, one of the model's line keys")
        missing = [key for key in method.reads if key not in by_key]
        if missing:
            raise DataError(f"driver {line.key!r}: method {driver.method!r} reads the line {missing[0]!r}, which the layout does not have")
        base_label = by_key[driver.base].label_zh if driver.base in by_key else ""
        dkey = driver_key(line.key)
        bound.append(replace(line, formula=method.formula.format(line=line.key, base=driver.base, driver=dkey)))
        driver_lines.append(Line(
            dkey, "drivers", f"{line.label_zh}：{method.label_zh.format(base=base_label)}",
            f"{line.label_en}: {method.label_en.format(base=by_key[driver.base].label_en if driver.base in by_key else '')}",
            fmt=method.driver_format, history=FORECAST_ONLY, note=driver.note,
            implied=method.implied.format(line=line.key, base=driver.base)))
    return bound + driver_lines


def evaluation_order(lines: Iterable[Line], year_kind: str = FORECAST) -> list[Line]:
    """Lines sorted so that every same-year reference comes first, for years of one kind (a
    driver reads its line in reported years and feeds it in forecast years); DataError on a
    cycle, an unknown line name or an unknown function."""
    lines = list(lines)
    formulas = tuple((line.key, line.formula if line.scalar else line.formula_in(year_kind)) for line in lines)
    by_key = {line.key: line for line in lines}
    # The registry's version is part of the key: a function registered since is then known.
    return [by_key[k] for k in _order(formulas, registry_version())]


@lru_cache(maxsize=64)
def _order(formulas: tuple, _registry_version: int) -> tuple:
    """The topological order of (key, formula) pairs; cached, as a model is evaluated many times
    (calibration, sensitivity grids) with the same formulas and only other inputs."""
    keys = {key for key, _ in formulas}
    graph = {}
    for key, text in formulas:
        deps = set()
        if text:
            tree = fx.parse(text)
            for ref in fx.refs(tree):
                if ref.key not in keys:
                    raise DataError(f"line {key!r}: formula {text!r} reads unknown line {ref.key!r}")
                if ref.lag == 0:
                    deps.add(ref.key)
            unknown = fx.functions_used(tree) - set(GUARDED)
            if unknown:
                raise DataError(f"line {key!r}: unknown function {sorted(unknown)[0]!r}")
        graph[key] = deps
    try:
        return tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise DataError(f"the model's formulas form a cycle: {' -> '.join(exc.args[1])}") from None


@dataclass
class Values:
    """Computed values: per (line, year label) for yearly lines, per line for scalars."""
    years: list[Year]
    yearly: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)

    def get(self, key: str, year: str | None = None):
        if key in self.scalars:
            return self.scalars[key]
        return self.yearly.get((key, year))


def evaluate(lines: list[Line], years: list[Year], inputs: dict, scalar_inputs: dict,
             overrides: dict | None = None, functions: dict | None = None,
             unchanged: "Values | None" = None, recompute: set | None = None, through: str | None = None,
             since: str | None = None) -> Values:
    """Evaluate every line for every year.

    `inputs[(key, year_label)]` are typed values (reported figures, driver values);
    `scalar_inputs[key]` single-valued inputs (price, FX). `overrides[(key, year_label)]` are
    values typed where the model has a formula (an analyst's hard-coded number): they win.
    With `unchanged` (an earlier evaluation of the same lines) and `recompute` (line keys), only
    the lines in `recompute` are evaluated and every other line keeps its value from `unchanged`:
    for re-runs that vary a few inputs, with `recompute` every line those inputs reach
    (`downstream`), or of those only the ones a wanted line reads (`& upstream`). With
    `through` (a year label) as well, the years after it and the one-value lines read from whole
    rows keep `unchanged`'s values too: for a re-run that wants a yearly line in that year, which
    no later year and no such line can move. With `since` (a year label) as well, the years
    before it keep `unchanged`'s values: for a re-run whose inputs differ from `unchanged`'s in
    that year and later ones only, when no yearly line in `recompute` reads a later year than
    its own (`reads_ahead`), so nothing before it can move.
    """
    direct = not functions   # the registry's own guards: the formulas may call past them
    functions = functions or _guarded_now()
    overrides = overrides or {}
    plan = _plan(lines, years)
    values = Values(list(years))
    labels = [y.label for y in years]
    yearly, scalars = values.yearly, values.scalars
    get, sget = yearly.get, scalars.get
    if unchanged is not None and recompute is not None:
        # Every line outside `recompute` keeps its value: copied at once, never looked at again.
        yearly.update(unchanged.yearly)
        scalars.update(unchanged.scalars)
        early, late, plans = plan.only(recompute, direct)
        first = labels.index(since) if since is not None and since in labels else 0
    else:
        early, late, plans = plan.code(direct)
        first = 0

    # A formula is `f(get, sget, labels, pos, functions, vectors)` (udfs.formula.line_function).
    vectors = _Vectors(values, years)

    def scalar(key, formula):
        if formula is not None and key not in scalar_inputs:
            scalars[key] = formula(get, sget, labels, 0, functions, vectors)
        else:
            scalars[key] = scalar_inputs.get(key)

    for key, formula in early:
        scalar(key, formula)
    for pos in range(first, len(years)):
        year = years[pos]
        to_date = _Vectors(values, years, pos)
        label = year.label
        for key, formula in plans[year.kind]:
            cell = (key, label)
            if cell in overrides:
                yearly[cell] = overrides[cell]
            elif formula is not None:
                yearly[cell] = formula(get, sget, labels, pos, functions, to_date)
            else:
                yearly[cell] = inputs.get(cell)
        if label == through and unchanged is not None:
            return values
    for key, formula in late:  # they read whole rows: after the years
        scalar(key, formula)
    return values


def reads_ahead(lines: Iterable[Line]) -> frozenset:
    """The yearly lines whose value in a year can depend on a later year's (a form that reads a
    whole row or a named year): a re-run from a year on (`evaluate(since=...)`) must not skip
    the years before it when one of these is recomputed. Made once per list of the same lines."""
    return _per_lines(list(lines), "reads_ahead", lambda lines: frozenset(
        line.key for line in lines if not line.scalar
        and any(text and _reads_across_years(fx.parse(text)) for text in {line.formula, line.implied})))


def _reads_across_years(tree) -> bool:
    """`formula.reads_across_years`, walked without recursion: a yearly line may be a sum of
    hundreds of lines (an imported statement's long subtotal), a tree deeper than Python's
    recursion limit allows to walk recursively here."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, fx.Form):
            if node.name in fx.ACROSS_YEARS:
                return True
        else:
            pending.extend(fx.operands(node))
    return False


class _Formulas:
    """Formula texts made into functions `f(get, sget, labels, pos, functions, vectors)`
    (`formula.line_function`), each text once per kind of call. `scalars_first`: as a check
    reads a one-value line, in any year."""

    def __init__(self, texts, scalar_keys: frozenset, scalars_first: bool = False):
        self.texts = tuple(dict.fromkeys(t for t in texts if t))
        self.scalar_keys, self.scalars_first = scalar_keys, scalars_first
        self.made: dict = {}

    def functions(self, direct: bool) -> dict:
        """{text: function}; `direct`: calling past the registry's guards where they would pass
        the values straight through (only when the functions called are the registry's own)."""
        made = self.made.get(direct)
        if made is None:
            calls = direct_calls() if direct else ()
            made = self.made[direct] = {t: fx.line_function(t, self._scalars_read(t), calls, self.scalars_first)
                                        for t in self.texts}
        return made

    def _scalars_read(self, text: str) -> frozenset:
        return frozenset(ref.key for ref in fx.refs(fx.parse(text)) if ref.key in self.scalar_keys)


class _Plan:
    """What evaluating one list of lines takes besides the inputs, made once for it: the order
    of the lines for each kind of year, each formula made callable (None: an input), the
    one-value lines before and after the years."""

    def __init__(self, lines: list[Line], kinds: frozenset):
        orders = {kind: evaluation_order(lines, kind) for kind in kinds}
        ordered = orders.get(FORECAST) or evaluation_order(lines)
        self.scalar_keys = frozenset(line.key for line in lines if line.scalar)
        late = _late_scalars(lines)
        # (key, formula text or None) per line, in order; made callable by `code`.
        self.early = tuple((l.key, l.formula) for l in ordered if l.scalar and l.key not in late)
        self.late = tuple((l.key, l.formula) for l in ordered if l.scalar and l.key in late)
        self.yearly = {kind: tuple((line.key, line.formula_in(kind)) for line in order if not line.scalar)
                       for kind, order in orders.items()}
        self._whole = self._made(self.early, self.late, self.yearly)
        self._partial: dict = {}

    def _made(self, early: tuple, late: tuple, yearly: dict) -> list:
        texts = [t for _, t in early + late] + [t for plan in yearly.values() for _, t in plan]
        return [(early, late, yearly), _Formulas(texts, self.scalar_keys), {}]

    @staticmethod
    def _code(made: list, direct: bool) -> tuple:
        (early, late, yearly), formulas, shaped = made
        functions = formulas.functions(direct)
        cached = shaped.get(direct)
        if cached is None or cached[0] is not functions:
            def shape(plan):
                return tuple((key, functions[text] if text else None) for key, text in plan)
            cached = shaped[direct] = (functions, (shape(early), shape(late), {k: shape(p) for k, p in yearly.items()}))
        return cached[1]

    def code(self, direct: bool) -> tuple:
        """(early, late, yearly): (line key, its formula as a function or None) in order."""
        return self._code(self._whole, direct)

    def only(self, recompute: set, direct: bool) -> tuple:
        """`code(direct)` of the lines in `recompute` alone, kept for the few sets a caller
        re-runs with again and again (a sensitivity table, calibration's columns)."""
        key = frozenset(recompute)
        made = self._partial.get(key)
        if made is None:
            made = self._made(tuple(p for p in self.early if p[0] in key), tuple(p for p in self.late if p[0] in key),
                              {kind: tuple(p for p in plan if p[0] in key) for kind, plan in self.yearly.items()})
            if len(self._partial) >= _PARTIAL_KEPT:
                self._partial.pop(next(iter(self._partial)))
            self._partial[key] = made
        return self._code(made, direct)


_PLANS: dict = {}      # (registry version, kinds of year, the lines' ids) -> (lines, _Plan)
_PLANS_KEPT = 32
_PARTIAL_KEPT = 256


def _plan(lines: list[Line], years: list[Year]) -> _Plan:
    """The evaluation plan of `lines`, made once per list of the same `Line` objects. A Line is
    frozen, so the same objects are the same lines; the cache holds them, so that their ids
    cannot be reused by others while they key it. The registry's version is part of the key:
    a function registered since is then known."""
    kinds = frozenset(y.kind for y in years)
    key = (registry_version(), kinds, tuple(map(id, lines)))
    cached = _PLANS.get(key)
    if cached is None:
        cached = (tuple(lines), _Plan(lines, kinds))
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = cached
    return cached[1]


_GUARDED_NOW: list = [None, None]   # [registry version, a plain dict of the guarded functions]


def _guarded_now() -> dict:
    """The guarded functions by formula name as a plain dict, remade when the registry changes:
    the live view re-checks its index on every lookup, a few hundred times per run."""
    version = registry_version()
    if _GUARDED_NOW[0] != version:
        _GUARDED_NOW[:] = [version, dict(GUARDED)]
    return _GUARDED_NOW[1]


def _readers(lines: Iterable[Line]) -> dict:
    """{line key: the keys of the lines whose formula or implied value reads it, in any year};
    made once per list of the same lines, and not to be changed by the caller."""
    def make(lines):
        readers: dict = {}
        for line in lines:
            for text in {line.formula, line.implied}:
                if text:
                    for ref in fx.refs(fx.parse(text)):
                        readers.setdefault(ref.key, set()).add(line.key)
        return readers
    return _per_lines(list(lines), "readers", make)


_PER_LINES: dict = {}   # the lines' ids -> (lines, {what: value}), as _PLANS


def _per_lines(lines: list[Line], what: str, make):
    """`make(lines)`, made once per list of the same `Line` objects and kept under `what` (see
    `_plan` for why the objects' ids are a sound key)."""
    key = tuple(map(id, lines))
    cached = _PER_LINES.get(key)
    if cached is None:
        if len(_PER_LINES) >= _PLANS_KEPT:
            _PER_LINES.pop(next(iter(_PER_LINES)))
        cached = _PER_LINES[key] = (tuple(lines), {})
    made = cached[1]
    if what not in made:
        made[what] = make(lines)
    return made[what]


def _closure(edges: dict, keys: set) -> set:
    out, pending = set(keys), list(keys)
    while pending:
        for other in edges.get(pending.pop(), ()):
            if other not in out:
                out.add(other)
                pending.append(other)
    return out


def downstream(lines: Iterable[Line], keys: set) -> set:
    """The lines whose value can change when those in `keys` do: `keys` and every line that reads
    one of them, in any year (a formula, a reported year's implied value), directly or through
    others."""
    return _closure(_readers(lines), keys)


def upstream(lines: Iterable[Line], keys: set) -> set:
    """The lines the values of those in `keys` are computed from: `keys` and every line they
    read, in any year, directly or through others (nothing else can move them)."""
    def make(lines):
        reads: dict = {}
        for key, readers in _readers(lines).items():
            for reader in readers:
                reads.setdefault(reader, set()).add(key)
        return reads
    return _closure(_per_lines(list(lines), "reads", make), keys)


class _Vectors:
    """The forms of the formula language that read other years than the line's own; `pos` is
    the year being computed (None for one-value lines), for the forms that read up to it or
    count from it (a yearly line's history, years_after)."""

    def __init__(self, values: Values, years: list[Year], pos: int | None = None):
        self.values, self.years, self.pos = values, years, pos

    def forecast(self, key: str) -> list:
        return [self.values.yearly.get((key, y.label)) for y in self.years if y.kind == FORECAST]

    def row(self, key: str) -> list:
        """Every year a sheet shows (the base year is a drivers-sheet column only)."""
        return [self.values.yearly.get((key, y.label)) for y in self.years if y.kind != BASE]

    def years_after(self, label) -> object:
        labels = [y.label for y in self.years]
        if self.pos is None or not isinstance(label, str) or label.strip() not in labels:
            return ERR_NA
        return float(self.pos - labels.index(label.strip()))

    def history(self, key: str) -> list:
        """The line from the first reported year (a base year holds only what growth rates
        need) through the year being computed, as the template's row reads it."""
        if self.pos is None:
            raise fx.FormulaError(f"history({key}) is read by a yearly line, in its own year")
        return [self.values.yearly.get((key, y.label)) for y in self.years[:self.pos + 1] if y.kind != BASE]

    def at(self, key: str, label) -> object:
        if not isinstance(label, str) or (key, label.strip()) not in self.values.yearly:
            return ERR_NA
        value = self.values.yearly[(key, label.strip())]
        return ERR_NA if value is None else value


def _late_scalars(lines: list[Line]) -> set[str]:
    """One-value lines that read whole rows of yearly lines (valuation, blends), and the ones
    that read them: computed after every year. A yearly line must not read them."""
    return _late(tuple((l.key, l.scalar, l.formula, l.implied) for l in lines), registry_version())


@lru_cache(maxsize=64)
def _late(lines: tuple, _registry_version: int) -> frozenset:
    """`_late_scalars` of (key, scalar, formula, implied) rows; cached, as `_order` is."""
    scalars = {key: formula for key, scalar, formula, _ in lines if scalar and formula}
    late = {k for k, formula in scalars.items() if fx.reads_across_years(fx.parse(formula))}
    changed = True
    while changed:
        changed = False
        for key, formula in scalars.items():
            if key not in late and any(r.key in late for r in fx.refs(fx.parse(formula))):
                late.add(key)
                changed = True
    for key, scalar, formula, implied in lines:
        if not scalar:
            for text in (formula, implied):
                if text and any(r.key in late for r in fx.refs(fx.parse(text))):
                    raise DataError(f"line {key!r} reads {sorted(r.key for r in fx.refs(fx.parse(text)) if r.key in late)[0]!r}, "
                                     "which is computed from whole rows after every year; a yearly line cannot read it")
    return frozenset(late)


def _each_year(formulas: list[str], lines: list[Line], values: Values, years: list[Year] | None):
    """({text: formula as a function}, [(year, its position)]) for the checks and the warnings,
    which read a one-value line in any year and a yearly line in the year at a position by its lag."""
    years = years or [y for y in values.years if y.kind == FORECAST]
    scalar_keys = _per_lines(lines, "scalar_keys", lambda lines: frozenset(line.key for line in lines if line.scalar))
    positions = {y.label: i for i, y in enumerate(values.years)}
    made = _each_year_formulas(tuple(formulas), scalar_keys, registry_version()).functions(True)
    return made, [(y, positions[y.label]) for y in years]


@lru_cache(maxsize=64)
def _each_year_formulas(formulas: tuple, scalar_keys: frozenset, _registry_version: int) -> _Formulas:
    """`_each_year`'s formulas, kept: a model's checks are run on every build."""
    return _Formulas(formulas, scalar_keys, scalars_first=True)


def run_checks(checks: list[Check], lines: list[Line], values: Values, years: list[Year] | None = None) -> list[dict]:
    """Each check in each forecast year: the two sides, their difference and whether it passes."""
    made, at = _each_year([text for check in checks for text in (check.actual, check.expected)], lines, values, years)
    get, sget, labels = values.yearly.get, values.scalars.get, [y.label for y in values.years]
    functions = _guarded_now()
    results = []
    for check in checks:
        actual_of, expected_of = made[check.actual], made[check.expected]
        for year, pos in at:
            actual = actual_of(get, sget, labels, pos, functions, None)
            expected = expected_of(get, sget, labels, pos, functions, None)
            numeric = isinstance(actual, float) and isinstance(expected, float)
            difference = actual - expected if numeric else None
            results.append({
                "check": check.key, "label_zh": check.label_zh, "label_en": check.label_en, "year": year.label,
                "actual": actual, "expected": expected, "difference": difference,
                "passed": numeric and abs(difference) <= check.tolerance,
            })
    return results


def run_warnings(warnings: list[SanityWarning], lines: list[Line], values: Values,
                 years: list[Year] | None = None) -> list[dict]:
    """Each sanity warning in each forecast year: the value, its bounds and the status ER_WARN
    gives it (OK, WARN, NM for a ratio that cannot be judged, or an error value); `triggered`
    is true for WARN only."""
    made, at = _each_year([warning.value for warning in warnings], lines, values, years)
    get, sget, labels = values.yearly.get, values.scalars.get, [y.label for y in values.years]
    functions = _guarded_now()
    results = []
    for warning in warnings:
        formula = made[warning.value]
        minimum, maximum = warning.minimum, warning.maximum
        # Bounds that are numbers or empty judge a float (not nan) as ER_WARN does, at once.
        plain = all(b is None or (b.__class__ in (int, float) and b == b) for b in (minimum, maximum))
        low, high = (None if b is None or not plain else float(b) for b in (minimum, maximum))
        for year, pos in at:
            value = formula(get, sget, labels, pos, functions, None)
            if plain and value.__class__ is float and value == value:
                status = WARN if (low is not None and value < low) or (high is not None and value > high) else OK
            else:
                status = warn(value, minimum, maximum)
            results.append({
                "warning": warning.key, "label_zh": warning.label_zh, "label_en": warning.label_en, "year": year.label,
                "value": value, "minimum": warning.minimum, "maximum": warning.maximum, "status": status,
                "triggered": status == WARN,
            })
    return results
