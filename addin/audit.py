"""Audit a model file: the integrity checks, the report's self-disagreements, numbers typed over
formulas, edited formulas, functions this version does not provide, and the template version.

The integrity checks are the formulas of the 校验 sheet, evaluated from the file's own cells;
the report findings are the ones the build wrote on that sheet; the expected formulas come from
the file's blueprint. `check` prints this; nothing here writes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from udfs.constants import EXCEL_ERRORS
from udfs.errors import DataError
from udfs.functions import BY_EXCEL_NAME
from udfs.registry import excel_name
from workbook import xlsx
from workbook.layout import (
    CHECKS, CONF, FINDINGS_BEYOND, FINDINGS_FIELDS, FINDINGS_WITHIN, HEADER_ROW, TEMPLATE_VERSION,
    WARNING_PREFIX, WARNINGS_STATUS, WARNINGS_YEARS, cell_name, defined_name, label_cell,
)
from workbook.xlcalc import NATIVE, LAZY, evaluate, parse

from .template import (
    NewerTemplateError, blueprint, per_blueprint, settings_as_values, template_version, verify_structure, version_tuple,
)

MAX_FAILURES_LISTED = 10
TEXT_FORMAT = "text"  # the number format of a line whose cells hold text by design
_FUNCTION = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)\(")


@dataclass(frozen=True)
class FindingRow:
    """One row of the findings table: a printed figure that disagrees with its definition."""
    label: str
    explanation: str
    year: str
    printed: float
    computed: float
    beyond_rounding: bool


class Override(NamedTuple):
    """A number typed where the template has a formula (value None: the cell was emptied)."""
    sheet: str
    cell: str
    key: str
    year: str | None
    value: object
    formula: str          # the formula it replaced


class EditedFormula(NamedTuple):
    """A formula changed from the one the template built (beyond the spelling a re-save gives it)."""
    sheet: str
    cell: str
    key: str
    year: str | None
    now: str
    built: str


@dataclass
class Audit:
    path: Path
    version: str
    version_note: str | None = None
    version_failed: bool = False
    check_failures: list = field(default_factory=list)   # (label, year, status)
    checks_run: int = 0
    findings: list = field(default_factory=list)         # of FindingRow: the findings table the build wrote
    overrides: list = field(default_factory=list)        # of Override
    edited: list = field(default_factory=list)           # of EditedFormula
    unknown_functions: list = field(default_factory=list)  # (sheet, cell, function)
    not_evaluable: str | None = None
    cause: str | None = None                             # the first input behind the failing checks
    warnings: list = field(default_factory=list)         # sanity warnings that fire: (label, year, status)
    warnings_run: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.check_failures or self.unknown_functions or self.not_evaluable or self.version_failed)


_SHEET_QUOTE = re.compile(r"'((?:[^']|'')+)'!")
_STRING = re.compile(r'"(?:[^"]|"")*"')
_NUMBER = re.compile(r"(?<![A-Za-z_$\d.!:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?![\d(:!])")


def _built_formulas(rows) -> tuple:
    """Each formula and mirror row of a blueprint: ((sheet, cell, key, year), its formula, that
    formula's canonical form), worked out once per blueprint content."""
    return tuple(((row["sheet"], row["cell"], row["key"], row["year"]), row["formula"], canonical_formula(row["formula"]))
                 for row in rows if row["kind"] in ("formula", "mirror"))


@lru_cache(maxsize=1 << 14)
def called_functions(formula: str) -> tuple:
    """(name as written, its Excel name) of each function a formula calls, in order. Kept per
    formula text: a model of a template holds the same few thousand formulas as every other."""
    return tuple((name, excel_name(name)) for name in _FUNCTION.findall(formula))


@lru_cache(maxsize=1 << 14)
def canonical_formula(text: str) -> str:
    """A formula as compared for "edited": Excel and LibreOffice re-save the same formula with or
    without quotes around a sheet name that needs none, 1e-06 as 0.000001, with other spacing
    and with lower-case function names; none of that is an edit. Text inside string literals is kept as it is."""
    out, pos = [], 0
    for literal in _STRING.finditer(text):
        out.append(_canonical_code(text[pos:literal.start()]))
        out.append(literal.group(0))
        pos = literal.end()
    out.append(_canonical_code(text[pos:]))
    return "".join(out).lstrip("=")


def _canonical_code(code: str) -> str:
    code = _SHEET_QUOTE.sub(lambda m: m[1].replace("''", "'") + "!", code)
    code = _NUMBER.sub(lambda m: repr(float(m[0])), code)
    return code.replace(" ", "").upper()


def audit(path: str | Path | xlsx.Package, values: dict | None = None) -> Audit:
    """The audit of a model file (or an already read package). `values`, when given, are the
    evaluated formula cells to judge the checks by (refresh passes its freshly computed ones)."""
    package = path if isinstance(path, xlsx.Package) else xlsx.read(path)
    path = package.path
    version = template_version(package)
    try:
        verify_structure(package)
    except NewerTemplateError:
        pass  # reported below as a failed version check, with everything this version can still audit
    result = Audit(Path(path), version)
    if version_tuple(version) < version_tuple(TEMPLATE_VERSION):
        result.version_note = (f"template version {version} is older than this add-in's {TEMPLATE_VERSION}: it still opens "
                               "and refreshes; build a new template and use `diff` to carry your inputs over")
    elif version_tuple(version) > version_tuple(TEMPLATE_VERSION):
        result.version_note = f"template version {version} is newer than this add-in's {TEMPLATE_VERSION}: upgrade the add-in"
        result.version_failed = True

    known = set(BY_EXCEL_NAME) | set(NATIVE) | LAZY   # the registry as it is now (a module may register more)
    for sheet_name, sheet in package.sheets.items():
        if sheet_name == CONF:  # settings, read as values (settings_as_values)
            continue
        for ref, cell in sheet.cells.items():
            if cell.formula:
                for name, excel in called_functions(cell.formula):
                    if excel not in known:
                        result.unknown_functions.append((sheet_name, ref, name))

    no_cells: dict = {}
    for where, formula, built in per_blueprint(package, "audit formulas", _built_formulas):
        sheet = package.sheets.get(where[0])
        cell = (sheet.cells if sheet is not None else no_cells).get(where[1])
        if cell is None:
            result.overrides.append(Override(*where, None, formula))
        elif cell.formula is None:
            result.overrides.append(Override(*where, package.value(where[0], where[1]), formula))
        elif cell.formula != formula and canonical_formula(cell.formula) != built:
            result.edited.append(EditedFormula(*where, cell.formula, formula))

    try:
        values = values if values is not None else evaluate(package, settings_as_values(package))
    except xlsx.WorkbookError as exc:  # UnsupportedFormula among them
        result.not_evaluable = str(exc)
        values = {}
    if CHECKS in package.sheets and values:
        checks = package.sheets[CHECKS]
        failing = []
        for ref, cell in checks.cells.items():
            if cell.formula and cell.formula.startswith("ER_CHECK("):
                status = values.get((CHECKS, ref))
                result.checks_run += 1
                if status != "OK":
                    label = package.value(CHECKS, label_cell(ref))
                    year = package.value(CHECKS, cell_name(HEADER_ROW, xlsx.split_ref(ref)[1] - 1))
                    result.check_failures.append((label, year, status))
                    failing.append((CHECKS, ref))
        if failing:
            result.cause = first_cause(package, values, failing)
        result.findings = _findings_table(package)
        _read_warnings(package, values, result)
    return result


def _read_warnings(package: xlsx.Package, values: dict, result: Audit) -> None:
    """The sanity warnings' ER_WARN cells, found by the names the layout gave them (WRN_<key>,
    WRN_years); a warning does not fail the audit, it is listed."""
    if WARNINGS_YEARS not in package.names:
        return  # a template from before the warnings
    years = [package.value(s, r) for s, r in package.name_cells(WARNINGS_YEARS)]
    for name in package.names:
        if name.startswith(defined_name(WARNING_PREFIX, "")) and name not in (WARNINGS_YEARS, WARNINGS_STATUS):
            for year, (sheet, cell) in zip(years, package.name_cells(name)):
                status = values.get((sheet, cell))
                result.warnings_run += 1
                if status not in ("OK", "NM"):
                    label = package.value(sheet, label_cell(cell))
                    result.warnings.append((label, year, status))


# ------------------------------------------------------------------------------------------------
# Why a check fails: walk its precedents to the first input that cannot be a number.
# ------------------------------------------------------------------------------------------------
_CELL_REF = re.compile(r"^(?:(?:'(?P<q>(?:[^']|'')+)'|(?P<s>[^'!]+))!)?\$?(?P<c1>[A-Z]{1,3})\$?(?P<r1>\d{1,7})"
                       r"(?::\$?(?P<c2>[A-Z]{1,3})\$?(?P<r2>\d{1,7}))?$")
MAX_TRACE_RANGE = 10_000  # cells of one range followed; our templates' ranges are a row of years


def _ref_cells(text: str, sheet: str) -> list[tuple[str, str]]:
    match = _CELL_REF.match(text.strip().lstrip("="))
    if not match:
        return []
    target = (match["q"] or "").replace("''", "'") or match["s"] or sheet
    r1, c1 = int(match["r1"]), xlsx.col_index(match["c1"])
    r2, c2 = int(match["r2"] or r1), xlsx.col_index(match["c2"] or match["c1"])
    if (abs(r2 - r1) + 1) * (abs(c2 - c1) + 1) > MAX_TRACE_RANGE:
        return []
    return [(target, f"{xlsx.col_letters(c)}{r}") for r in range(min(r1, r2), max(r1, r2) + 1)
            for c in range(min(c1, c2), max(c1, c2) + 1)]


def _references(node, package: xlsx.Package, sheet: str, out: list) -> None:
    """Every cell a parsed formula reads, in reading order (any node kind holding children is walked)."""
    if isinstance(node, (list, tuple)):
        if len(node) == 2 and node[0] == "ref" and isinstance(node[1], str):
            out.extend(_ref_cells(node[1], sheet))
            return
        if len(node) == 2 and node[0] == "name" and isinstance(node[1], str):
            out.extend(_ref_cells(package.names.get(node[1], ""), sheet))
            return
        for child in node:
            _references(child, package, sheet, out)


def precedents(package: xlsx.Package, sheet: str, ref: str) -> list[tuple[str, str]]:
    """The cells the formula at sheet!ref reads directly; [] for an input or an unparsable formula."""
    cell = package.sheets.get(sheet, xlsx.Sheet("", "", "")).cells.get(ref)
    if cell is None or not cell.formula:
        return []
    try:
        tree = parse(cell.formula)
    except Exception:  # noqa: BLE001 - a formula we cannot parse is reported by evaluation, not here
        return []
    out: list = []
    _references(tree, package, sheet, out)
    return out


def _describe(value) -> str | None:
    """Why an input value cannot stand where a number belongs, or None if it can."""
    if isinstance(value, bool):
        return f"holds {value!s}"
    if isinstance(value, str):
        if value in EXCEL_ERRORS or value.startswith("#"):
            return f"holds the error {value[:20]}"
        if value.strip():
            return f"holds text {value[:30]!r}"
    return None


def stored_layout(package: xlsx.Package):
    """The statement layout the model was built in, as its _source sheet stores it; the default
    layout for a model built before models carried it (or whose stored copy is damaged)."""
    from workbook import spec
    from workbook.tomlfile import parse_toml

    from .source import read_source
    try:
        name, text = read_source(package)["layout"]
        return spec.parse_layout(parse_toml(text, name), Path(name))
    except DataError:
        return spec.load_layout()


def text_by_design(package: xlsx.Package, rows: list[dict] | None = None) -> set[tuple[str, str]]:
    """The input cells whose content is text (or TRUE/FALSE) by design: the scenario selector, the
    valuation years and switches, the ticker, currencies, rating scheme and ratings. Read from the
    model's stored layout (its _source sheet), whose lines say which are text; a model without one
    has the default layout's."""
    from workbook import spec
    from workbook.model import SCENARIO_KEY
    keys = {line.key for line in spec.model_lines(stored_layout(package)) if line.fmt == TEXT_FORMAT} | {SCENARIO_KEY}
    return {(r["sheet"], r["cell"]) for r in (blueprint(package) if rows is None else rows)
            if r["kind"] == "input" and r["key"] in keys}


def _blank_by_design(row: dict) -> bool:
    """An input the template leaves empty on purpose: a one-value input (a valuation multiple, a
    benchmark) or a bear or bull value, which means "as the base case" when empty."""
    from workbook.company import SCENARIO_CASES
    from workbook.model import scenario_key
    return not row["year"] or row["key"].startswith(tuple(scenario_key(case, "") for case in SCENARIO_CASES))


def _short(formula: str, limit: int = 80) -> str:
    return formula if len(formula) <= limit else formula[:limit - 1] + "…"


def first_cause(package: xlsx.Package, values: dict, failing: list, limit: int = 20_000) -> str | None:
    """The first cell, breadth-first from the failing cells through their precedents, that can
    make a check fail, as one phrase ("预测假设!G9 holds text '20%'"), or None when nothing explains
    the failure. In order of certainty: text, an error or TRUE/FALSE where the template has a
    number; else a number typed over a formula, or a formula edited from the template's; else a
    blank yearly input; else the first formula that gives an error from inputs that are all in
    order (naming the text input it read, e.g. a scenario cell holding a case the model lacks).
    A cell that holds text by design (the scenario selector, a valuation year, a year header the
    build wrote) is never the cause for holding text, nor is an input the template leaves blank
    on purpose for being blank."""
    rows = blueprint(package)
    built = {(r["sheet"], r["cell"]): r for r in rows}
    text_ok = text_by_design(package, rows)

    def current(key):
        return values[key] if key in values else package.value(*key) if key[0] in package.sheets else None

    def wrong(key) -> str | None:
        reason = _describe(current(key))
        if key in text_ok or (key not in built and not (reason or "").startswith("holds the error")):
            return None  # its text is by design: a year header the lookups read is not the analyst's input
        return reason

    seen, queue = set(failing), list(failing)
    changed = blank = error_origin = None
    while queue and len(seen) < limit:
        sheet, ref = queue.pop(0)
        cell = package.sheets.get(sheet, xlsx.Sheet("", "", "")).cells.get(ref)
        row = built.get((sheet, ref))
        if cell is not None and cell.formula:
            reads = [key for key in precedents(package, sheet, ref) if key[0] in package.sheets]
            value = current((sheet, ref))
            if changed is None and row is not None and row["kind"] in ("formula", "mirror") \
                    and canonical_formula(cell.formula) != canonical_formula(row["formula"]):
                changed = f"{sheet}!{ref} holds the edited formula ={_short(cell.formula)} (template: ={_short(row['formula'])})"
            if error_origin is None and isinstance(value, str) and value in EXCEL_ERRORS \
                    and not any(wrong(key) for key in reads):
                texts = [key for key in reads if key in text_ok and _describe(current(key))]
                error_origin = f"{sheet}!{ref} (={_short(cell.formula)}) gives {value}"
                if texts:
                    error_origin = f"{texts[0][0]}!{texts[0][1]} holds {current(texts[0])!r}: " + error_origin
            for key in reads:
                if key not in seen:
                    seen.add(key)
                    queue.append(key)
            continue
        reason = wrong((sheet, ref))
        if reason:
            return f"{sheet}!{ref} {reason}"
        value = current((sheet, ref))
        if row is None:
            continue
        if row["kind"] in ("formula", "mirror"):
            if changed is None:
                shown = "nothing" if value in (None, "") else f"{value!r}"
                changed = f"{sheet}!{ref} holds {shown} typed over its formula ={_short(row['formula'])}"
        elif value in (None, "") and blank is None and not _blank_by_design(row):
            blank = f"{sheet}!{ref} is blank where the template has a number"
    return changed or blank or error_origin


def _findings_table(package: xlsx.Package) -> list[FindingRow]:
    """The findings table the build wrote, read through the names it gave each verdict's rows
    (none: the report agrees with itself, or a template from before the names)."""
    rows = []
    for name, beyond in ((FINDINGS_BEYOND, True), (FINDINGS_WITHIN, False)):
        if name not in package.names:
            continue
        cells = package.name_cells(name)
        width = len({xlsx.split_ref(ref)[1] for _, ref in cells})
        for start in range(0, len(cells), width):
            row = dict(zip(FINDINGS_FIELDS, (package.value(*cell) for cell in cells[start:start + width])))
            rows.append(FindingRow(row["label"], row["explanation"], row["year"], row["printed"], row["computed"], beyond))
    return rows


def _figure(value) -> str:
    """A findings-table figure as `check` prints it: the sheet's cells may have been cleared or typed over."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,g}"
    return "(blank)" if value in (None, "") else repr(value)[:40]


def sheet_lines(result: Audit, when: str, rows: int) -> tuple[str, list[str]]:
    """The audit as the 校验 sheet shows it: one summary line and up to `rows` item lines."""
    summary = (f"{when} 审计：校验 {result.checks_run - len(result.check_failures)}/{result.checks_run} OK；"
               f"公式被覆盖 {len(result.overrides)} 处；公式被修改 {len(result.edited)} 处；"
               f"未知函数 {len(result.unknown_functions)} 个" + ("；FAIL" if result.failed else "；OK"))
    items = [f"校验失败原因 {result.cause}"] if result.cause else []
    items += [f"校验失败 {label} {year}: {status}" for label, year, status in result.check_failures]
    items += [f"覆盖 {s}!{c}（{k} {y}）= {v!r}，原公式 ={f}" for s, c, k, y, v, f in result.overrides]
    items += [f"修改 {s}!{c}（{k} {y}）={now}，模板 ={built}" for s, c, k, y, now, built in result.edited]
    items += [f"未知函数 {s}!{c}: {name}" for s, c, name in result.unknown_functions]
    if result.version_note:
        items.insert(0, result.version_note)
    if len(items) > rows:
        items = items[: rows - 1] + [f"…另有 {len(items) - rows + 1} 项：运行 python -m addin check 查看全部"]
    return summary, items


def render(result: Audit) -> str:
    lines = [f"{result.path.name}: template version {result.version}"]
    if result.version_note:
        lines.append(f"  {'FAIL' if result.version_failed else 'note'}: {result.version_note}")
    if result.not_evaluable:
        lines.append(f"FAIL cannot evaluate headless: {result.not_evaluable}")
    else:
        lines.append(f"Integrity checks: {result.checks_run - len(result.check_failures)}/{result.checks_run} OK")
        if result.cause:
            lines.append(f"  cause: {result.cause}")
        shown = result.check_failures[:MAX_FAILURES_LISTED]
        lines += [f"  FAIL {label} {year}: {status}" for label, year, status in shown]
        if len(result.check_failures) > len(shown):
            lines.append(f"  … and {len(result.check_failures) - len(shown)} more failing checks")
    if result.warnings_run:
        lines.append(f"Sanity warnings: {len(result.warnings)} of {result.warnings_run} fire")
        lines += [f"  WARN {label} {year}: {status}" for label, year, status in result.warnings]
    beyond = [f for f in result.findings if f.beyond_rounding]
    lines.append(f"Report disagrees with itself: {len(beyond)} beyond rounding, {len(result.findings) - len(beyond)} within rounding")
    lines += [f"  ! {f.label} {f.year}: printed {_figure(f.printed)}, computed {_figure(f.computed)} ({f.explanation})"
              for f in beyond]
    lines.append(f"Numbers typed over formulas: {len(result.overrides)}")
    lines += [f"  {s}!{c} ({k} {y}) = {v!r} replaces ={f}" for s, c, k, y, v, f in result.overrides]
    lines.append(f"Edited formulas: {len(result.edited)}")
    lines += [f"  {s}!{c} ({k} {y}) ={now}  (template: ={built})" for s, c, k, y, now, built in result.edited]
    if result.unknown_functions:
        lines.append(f"FAIL functions this version does not provide: {len(result.unknown_functions)}")
        lines += [f"  {s}!{c}: {name}" for s, c, name in result.unknown_functions]
    lines.append("RESULT: " + ("FAIL" if result.failed else "OK"))
    return "\n".join(lines)
