"""The native-formula live edition: the analyst's model with every `ER_` call written as plain Excel.

A colleague without Python (Excel on a Mac or the web, WPS, LibreOffice) gets a macro-free
.xlsx that still calculates: each `ER_` call in each formula cell is replaced by the native
template registered beside its implementation (`@excel_function(..., native=...)`), so the
translation of every function lives in one place. Formulas are tokenised (string literals,
quoted sheet names, error literals, array constants, nested calls), never rewritten by a regular
expression over the whole text. The rating functions look up a table this module writes under
the rating block (the scheme's labels, thresholds, basis and benchmarks), so an edit to a
threshold there moves the rating. A function with no native equivalent (`native=None`: an array
grid, a row of cash flows) leaves its cell as the cached value, and the sheet says so.

Everything else is the values-only export's package surgery (`addin/share.py`): no VBA, no
button, no calculation chain, no machinery sheets, no external links; then `fullCalcOnLoad` so
the opener recalculates, a note on the cover, and a temp file renamed into place.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import udfs
from udfs.constants import (
    ACTION_DOWNGRADE, ACTION_FIRST, ACTION_MAINTAIN, ACTION_UPGRADE, BOUNDARY_INNER, BOUNDARY_OUTER,
    DEFAULT_SCHEME, EXCEL_ERRORS, MARKET_BY_SUFFIX, NOT_MEANINGFUL, NOT_VALUED, RETURN_COMPARISON_PLACES,
)
from udfs.rating import Scheme, schemes
from udfs.registry import NUMBER, OPTIONAL, PREFIX, REGISTRY, TEXT, excel_name
from workbook import xlsx
from workbook.files import check_output, output_file
from workbook.layout import COVER, RATING, rating_name

from .share import (
    MACHINERY_SHEETS, button_captions, clean_shared_strings, note_cells, references_without, strip_buttons, used_strings,
    workbook_without, without_macros,
)
from .template import verify_structure

udfs.excel_functions()  # imports every module that registers functions

SCHEME_NAME = rating_name("rating_scheme")   # the defined name of the model's scheme input
EXTERNAL_LINK = "/externalLink"
MAX_EXPANSION_DEPTH = 8             # templates calling templates (RATING -> RATING_BAND) nest this deep at most


def _text(value: str) -> str:
    """An Excel string literal."""
    return '"' + value.replace('"', '""') + '"'


# Placeholders a template may use besides its arguments: labels of udfs/constants.py (as string
# literals) and, filled per workbook, the cells of the rating lookup table.
CONSTANTS = {
    "NM": _text(NOT_MEANINGFUL), "NOT_VALUED": _text(NOT_VALUED), "OUTER": _text(BOUNDARY_OUTER), "INNER": _text(BOUNDARY_INNER),
    "DEFAULT_SCHEME": _text(DEFAULT_SCHEME), "FIRST": _text(ACTION_FIRST), "MAINTAIN": _text(ACTION_MAINTAIN),
    "UPGRADE": _text(ACTION_UPGRADE), "DOWNGRADE": _text(ACTION_DOWNGRADE),
    "RETURN_PLACES": str(RETURN_COMPARISON_PLACES),
}
TABLE_FIELDS = ("scheme_key", "basis", "unrated", "labels", "thresholds", "benchmarks")
PLACEHOLDERS = tuple(CONSTANTS) + TABLE_FIELDS
_PLACEHOLDER = re.compile(r"\{(\d+|[A-Za-z_]+)\}")


class NotExpressible(Exception):
    """A formula that cannot be written natively; its cell keeps its cached value."""


# ------------------------------------------------------------------------------------------------
# Tokenising and parsing formula text
# ------------------------------------------------------------------------------------------------
_ERRORS = EXCEL_ERRORS + ("#GETTING_DATA",)
_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"]|"")*")
  | (?P<sheetref>'(?:[^']|'')+'![^\s,()+\-*/^&=<>;{}%]*)
  | (?P<error>\#(?:N/A|VALUE!|DIV/0!|NUM!|REF!|NAME\?|NULL!|GETTING_DATA))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[Ee][+\-]?\d+)?%?)
  | (?P<word>[A-Za-z_\\$\[][A-Za-z0-9_.$!:\[\]\\]*)
  | (?P<space>\s+)
  | (?P<punct>[(),{};])
  | (?P<op><=|>=|<>|[+\-*/^&=<>%:@])
""", re.X)


def tokenize(formula: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a formula (without its leading "="); ValueError on text it cannot read."""
    tokens, pos = [], 0
    while pos < len(formula):
        match = _TOKEN.match(formula, pos)
        if match is None:
            raise ValueError(f"cannot read the formula at {formula[pos:pos + 20]!r}")
        tokens.append((match.lastgroup, match.group()))
        pos = match.end()
    return tokens


@dataclass
class Call:
    name: str          # as written
    args: list         # each a list of nodes


def parse(formula: str) -> list:
    """The formula as a list of nodes: token texts and Calls (with their arguments parsed)."""
    tokens = tokenize(formula)
    nodes, pos = _sequence(tokens, 0, closing=None)
    if pos != len(tokens):
        raise ValueError(f"unbalanced parentheses in {formula[:60]!r}")
    return nodes


def _sequence(tokens: list, pos: int, closing):
    """Nodes from `pos` until a `closing` token at this level (")" ends a call's arguments,
    also stopping at "," when inside a call); returns (nodes, position of the stopper)."""
    nodes: list = []
    while pos < len(tokens):
        kind, text = tokens[pos]
        if closing is not None and kind == "punct" and text in closing:
            return nodes, pos
        if kind == "punct" and text == ")":
            raise ValueError("a closing parenthesis without its opening one")
        if kind == "word" and _next_is_open(tokens, pos):
            call, pos = _call(tokens, pos)
            nodes.append(call)
            continue
        if kind == "punct" and text in "({":
            inner, end = _sequence(tokens, pos + 1, closing=(")" if text == "(" else "}",))
            if end >= len(tokens):
                raise ValueError("an opening parenthesis that is never closed")
            nodes.append(text)
            nodes.extend(inner)
            nodes.append(tokens[end][1])
            pos = end + 1
            continue
        nodes.append(text)
        pos += 1
    return nodes, pos


def _next_is_open(tokens: list, pos: int) -> bool:
    return pos + 1 < len(tokens) and tokens[pos + 1] == ("punct", "(")


def _call(tokens: list, pos: int):
    name = tokens[pos][1]
    pos += 2  # the name and "("
    args: list = []
    while True:
        arg, pos = _sequence(tokens, pos, closing=(",", ")"))
        if pos >= len(tokens):
            raise ValueError(f"the call to {name} is never closed")
        args.append(arg)
        if tokens[pos][1] == ")":
            break
        pos += 1  # ","
    if args == [[]]:
        args = []
    return Call(name, args), pos + 1


def render(nodes: list) -> str:
    out = []
    for node in nodes:
        if isinstance(node, Call):
            out.append(f"{node.name}({','.join(render(a) for a in node.args)})")
        else:
            out.append(node)
    return "".join(out)


def calls_in(nodes: list):
    """Every Call in the node list, nested ones included."""
    for node in nodes:
        if isinstance(node, Call):
            yield node
            for arg in node.args:
                yield from calls_in(arg)


# ------------------------------------------------------------------------------------------------
# Translating ER_ calls
# ------------------------------------------------------------------------------------------------
def _atomic(text: str) -> bool:
    """Whether `text` can stand next to an operator without parentheses: one operand, one call
    or one parenthesised group."""
    nodes = [n for n in parse(text) if not (isinstance(n, str) and n.isspace())]
    if len(nodes) == 1:
        return True
    if nodes[0] != "(" or nodes[-1] != ")":
        return False
    depth = 0
    for i, node in enumerate(nodes):
        depth += (node == "(") - (node == ")")
        if depth == 0 and i < len(nodes) - 1:
            return False   # (a)+(b): the first group closes before the end
    return True


_NUMBER_LITERAL = re.compile(r"^\s*[+-]?\s*(?:\d+\.?\d*|\.\d+)(?:[Ee][+-]?\d+)?%?\s*$")
_STRING_LITERAL = re.compile(r'^\s*"(?:[^"]|"")*"\s*$')
EXCEL_FORMULA_LIMIT = 8192   # characters Excel allows in one formula


def _default_text(default) -> str:
    if default is None:
        return '""'
    if isinstance(default, str):
        return _text(default)
    return xlsx.number_text(default) if isinstance(default, (int, float)) else str(default)


def _unwrapped(text: str) -> str:
    """`text` without parentheses around the whole of it: (Z99) is Z99, ((0.1)) is 0.1."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _atomic(text):
        nodes = [n for n in parse(text) if not (isinstance(n, str) and n.isspace())]
        if len(nodes) < 3 or nodes[0] != "(" or nodes[-1] != ")":
            break
        text = text[1:-1].strip()
    return text


def _guarded(arg, given: str, from_call: bool = False) -> tuple[str, str | None, str | None]:
    """(what the template reads for the argument, the condition it must meet, the error value
    when it does not), written so that Excel gives what the Python guard (`udfs.registry`)
    gives for ANY argument expression, not only a bare cell: an empty value (an empty cell,
    "") is #N/A where a number is required and the default where one is optional; an error
    value is that error (the condition itself is the error, and IF passes it on); text (even
    "12" or " 5") and booleans are #VALUE! where a number belongs; numbers are #VALUE! where
    text belongs. A number literal needs no guard, nor a text literal where text belongs."""
    given = _unwrapped(given)
    e = given if _atomic(given) else f"({given})"
    if from_call and arg.kind in (NUMBER, OPTIONAL):
        # Another ER_ function's result: a number, an error value or one of the model's labels
        # (NM, 未估值), never empty. Coercing it (--) gives the number, the error, or #VALUE! for
        # a label, as the guard would, without writing the whole call three times over.
        return f"--{e}", None, None
    # NOT(ISLOGICAL()): LibreOffice counts TRUE as a number, Excel does not; both refuse it then.
    if arg.kind == NUMBER:
        if _NUMBER_LITERAL.match(given):
            return given, None, None
        return given, f"AND(ISNUMBER({e}),NOT(ISLOGICAL({e})))", f'IF({e}="",#N/A,#VALUE!)'
    if arg.kind == OPTIONAL:
        if _NUMBER_LITERAL.match(given):
            return given, None, None
        return (f'IF({e}="",{_default_text(arg.default)},{e})', f'OR(AND(ISNUMBER({e}),NOT(ISLOGICAL({e}))),{e}="")',
                "#VALUE!")
    if arg.kind == TEXT:
        if _STRING_LITERAL.match(given):
            literal = given.strip()
            return (_default_text(arg.default) if literal == '""' else _text(literal[1:-1].replace('""', '"').strip())), None, None
        read = f"TRIM({e})" if _default_text(arg.default) == '""' else f'IF({e}="",{_default_text(arg.default)},TRIM({e}))'
        return read, f'OR(ISTEXT({e}),{e}="")', "#VALUE!"
    return given, None, None  # a row of numbers or a value the function judges itself


_ARITHMETIC = {"+", "-", "*", "/", "^", "%"}
_NOT_A_NUMBER = {"&", "=", "<>", "<", ">", "<=", ">="}   # text or TRUE/FALSE at the top level


def _computed_number(text: str) -> bool:
    """Whether Excel computes `text` to a number or an error before any function sees it: a
    number literal, or arithmetic at the top level (text operands are coerced or #VALUE!, an
    empty cell is 0, in the .xlsm and the native edition alike), so no guard can differ."""
    if _NUMBER_LITERAL.match(text):
        return True
    depth, operators = 0, set()
    for kind, token in tokenize(text):
        if kind == "punct" and token in "({":
            depth += 1
        elif kind == "punct" and token in ")}":
            depth -= 1
        elif kind == "op" and depth == 0:
            operators.add(token)
    return bool(operators & _ARITHMETIC) and not operators & _NOT_A_NUMBER


def _one_er_call(nodes: list) -> bool:
    """Whether an argument, as written, is one call of an ER_ function and nothing else."""
    meaningful = [n for n in nodes if not (isinstance(n, str) and n.isspace())]
    return len(meaningful) == 1 and isinstance(meaningful[0], Call) and excel_name(meaningful[0].name).startswith(PREFIX)


class Translator:
    """Rewrites formula text: `ER_` calls into native formulas, with `table` giving the cells of
    the rating lookup table (or None when the workbook has none)."""

    def __init__(self, table: dict | None):
        self.table = table or {}

    def formula(self, text: str) -> str:
        native = self._rewrite(text, 0)
        if len(native) > EXCEL_FORMULA_LIMIT:
            raise NotExpressible(f"its native form is longer than the {EXCEL_FORMULA_LIMIT:,} characters Excel allows")
        return native

    def _rewrite(self, text: str, depth: int, judged: frozenset = frozenset()) -> str:
        if depth > MAX_EXPANSION_DEPTH:
            raise NotExpressible("native templates nest too deeply")
        return render(self._nodes(parse(text), depth, judged))

    def _nodes(self, nodes: list, depth: int, judged: frozenset = frozenset()) -> list:
        """`judged`: argument texts an outer call's guards have already judged (inside a native
        template, its ER_ calls get them again): they need no second guard."""
        out = []
        for node in nodes:
            if isinstance(node, Call):
                args = [render(self._nodes(arg, depth, judged)) for arg in node.args]
                name = excel_name(node.name)   # _xlfn.ER_GROWTH: how Excel saves a function it did not know
                if name.startswith(PREFIX):
                    calls = [_one_er_call(arg) for arg in node.args]
                    out.append(self._expand(name, args, depth, whole=len(nodes) == 1, calls=calls, judged=judged))
                else:
                    out.append(Call(node.name, [[a] for a in args]))
            else:
                out.append(node)
        return out

    def _expand(self, name: str, args: list, depth: int, whole: bool, calls: list = (), judged: frozenset = frozenset()) -> str:
        spec = REGISTRY.get(name)
        if spec is None:
            raise NotExpressible(f"{name} is not a function this version provides")
        if spec.native is None:
            raise NotExpressible(f"{name} has no native Excel equivalent")
        if len(args) > len(spec.args):
            raise NotExpressible(f"{name} is given {len(args)} arguments; it takes {len(spec.args)}")
        filled, guards, passed = [], [], set()   # passed: what the guards below have judged
        for i, arg in enumerate(spec.args):
            given = args[i].strip() if i < len(args) else ""
            if not given:
                if not arg.optional:
                    raise NotExpressible(f"{name} lacks its required argument {arg.name}")
                filled.append(_default_text(arg.default))
                continue
            if given in judged or (arg.kind in (NUMBER, OPTIONAL) and _computed_number(given)):
                filled.append(given)
                passed.add(given)
                continue
            read, condition, failure = _guarded(arg, given, from_call=i < len(calls) and calls[i])
            filled.append(read)
            if condition or arg.kind in (NUMBER, OPTIONAL, TEXT):
                passed.add(read)
            if condition:
                guards.append((condition, failure))

        def fill(match):
            key = match.group(1)
            if key.isdigit():
                text = filled[int(key)]
                template = match.string
                delimited = template[match.start() - 1:match.start()] in ("(", ",") and \
                    template[match.end():match.end() + 1] in (")", ",")
                return text if delimited or _atomic(text) else f"({text})"
            if key in CONSTANTS:
                return CONSTANTS[key]
            if key in self.table:
                return self.table[key]
            raise NotExpressible(f"{name} needs the rating lookup table, which this workbook cannot have")
        native = self._rewrite(_PLACEHOLDER.sub(fill, spec.native), depth + 1, frozenset(passed))
        for condition, failure in reversed(guards):  # the first argument that fails decides, as in the guard
            native = f"IF({condition},{native},{failure})"
        if len(native) > EXCEL_FORMULA_LIMIT:
            raise NotExpressible(f"its native form is longer than the {EXCEL_FORMULA_LIMIT:,} characters Excel allows")
        return native if whole or _atomic(native) else f"({native})"


# ------------------------------------------------------------------------------------------------
# The rating lookup table
# ------------------------------------------------------------------------------------------------
def contiguous(scheme: Scheme) -> bool:
    """Whether each band starts where the next one (worse) ends: then a band is found by counting
    the thresholds a return falls below, which is what the native lookup does."""
    bands = scheme.bands
    if not bands or bands[0].max_pct is not None or bands[-1].min_pct is not None:
        return False
    return all(a.min_pct is not None and a.min_pct == b.max_pct for a, b in zip(bands, bands[1:]))


def _abs(sheet: str, ref: str) -> str:
    row, col = xlsx.split_ref(ref)
    quoted = "'" + sheet.replace("'", "''") + "'"
    return f"{quoted}!${xlsx.col_letters(col)}${row}"


def _range(sheet: str, first: str, last: str) -> str:
    return _abs(sheet, first) + ":" + _abs(sheet, last).split("!", 1)[1]


def rating_table(scheme: Scheme, sheet: str, first_row: int) -> tuple[dict, dict]:
    """({ref: value} cells of the lookup table written from `first_row` on `sheet`, {placeholder:
    reference}). Thresholds are decimals, best band's lower bound first."""
    cells, r = {}, first_row
    cells[f"A{r}"] = "原生公式版评级查找表（评级公式据此判定；改动阈值即改动评级） Rating lookup of the native edition"
    rows = [("评级体系 Scheme", scheme.key), ("口径 Basis", scheme.basis), ("无评级 Unrated", scheme.unrated)]
    refs = {}
    for (label, value), field in zip(rows, ("scheme_key", "basis", "unrated")):
        r += 1
        cells[f"A{r}"], cells[f"B{r}"] = label, value
        refs[field] = _abs(sheet, f"B{r}")
    r += 1
    cells[f"A{r}"], cells[f"B{r}"] = "评级（由高到低） Rating, best first", "下限（小数，恰在阈值上按边界口径） Lower bound"
    first_band = r + 1
    for band in scheme.bands:
        r += 1
        cells[f"A{r}"] = band.label
        if band.min_pct is not None:
            cells[f"B{r}"] = float(band.min_pct / Decimal(100))
    refs["labels"] = _range(sheet, f"A{first_band}", f"A{r}")
    refs["thresholds"] = _range(sheet, f"B{first_band}", f"B{r - 1}")
    r += 1
    cells[f"A{r}"], cells[f"B{r}"] = "市场或代码后缀 Market or suffix", "基准指数 Benchmark"
    first_key = r + 1
    keys = [(market, name) for market, name in scheme.benchmarks.items()]
    keys += [("." + suffix, scheme.benchmarks[market]) for suffix, market in MARKET_BY_SUFFIX.items()
             if market in scheme.benchmarks]
    for key, name in keys:
        r += 1
        cells[f"A{r}"], cells[f"B{r}"] = key, name
    refs["benchmarks"] = _range(sheet, f"A{first_key}", f"B{r}")
    return cells, refs


# ------------------------------------------------------------------------------------------------
# The edition
# ------------------------------------------------------------------------------------------------
def _formula_element(cell: xlsx.CellXml, text: str) -> bytes:
    p = f"{cell.prefix}:" if cell.prefix else ""
    return f"<{p}f>{xlsx.escape_data(text)}</{p}f>".encode("utf-8")


def _with_formulas(sheet: xlsx.Sheet, formulas: dict) -> bytes:
    """The sheet with the <f> element of each cell in `formulas` replaced by a plain one holding
    the new text (a shared formula's cells each get their own); every other byte kept."""
    data = sheet.data()
    edits = sorted((sheet.cells[ref].formula_span, _formula_element(sheet.cells[ref], text))
                   for ref, text in formulas.items())
    out, pos = [], 0
    for (start, end), replacement in edits:
        out += [data[pos:start], replacement]
        pos = end
    out.append(data[pos:])
    return b"".join(out)


def _is_shared(sheet: xlsx.Sheet, cell: xlsx.CellXml) -> bool:
    if cell.formula_span is None:
        return False
    start, end = cell.formula_span
    tag = sheet.data()[start:sheet.data().index(b">", start)]
    return b'"shared"' in tag or b"'shared'" in tag


def _external(text: str) -> bool:
    """Whether a formula refers to another workbook ([1]Sheet!A1): the edition has no links."""
    return any(kind in ("word", "sheetref") and "[" in token for kind, token in tokenize(text))


def _rating_scheme(package: xlsx.Package) -> Scheme | None:
    if SCHEME_NAME not in package.names:
        return None
    try:
        (sheet, ref), = package.name_cells(SCHEME_NAME)
    except (ValueError, xlsx.WorkbookError):
        return None
    key = package.value(sheet, ref)
    key = key.strip() if isinstance(key, str) and key.strip() else DEFAULT_SCHEME
    return schemes().get(key)


def _set_full_calc_on_load(data: bytes) -> bytes:
    """workbook.xml whose calcPr asks the opener to recalculate every formula on load."""
    found = []

    def edit(attrs, element):
        found.append(True)
        end = element.index(b">")
        end = end - 1 if element[end - 1:end] == b"/" else end
        head = re.sub(rb"""\sfullCalcOnLoad\s*=\s*("[^"]*"|'[^']*')""", b"", element[:end]).rstrip()
        return head + b' fullCalcOnLoad="1"' + element[end:]
    data = xlsx.edit_elements(data, "calcPr", edit)
    if found:
        return data
    text = data.decode("utf-8")
    prefix = re.match(r"<(?:\?[^>]*\?>\s*)?<([A-Za-z_][\w.-]*:)?workbook\b", text.strip())
    p = prefix.group(1) or "" if prefix else ""
    for anchor in (f"</{p}definedNames>", f"</{p}sheets>"):
        if anchor in text:
            return text.replace(anchor, anchor + f'<{p}calcPr fullCalcOnLoad="1"/>', 1).encode("utf-8")
    raise xlsx.WorkbookError("xl/workbook.xml has no sheets; the file is damaged")


def export_native(model: str | Path, output: str | Path, now: dt.datetime | None = None, force: bool = False) -> Path:
    """Write the native-formula live edition of `model` to `output` (.xlsx); return its path. The
    output is refused as `addin.share.export` refuses it (the model itself, open elsewhere, or
    existing without `force`)."""
    model, output = Path(model), Path(output)
    if output.suffix.lower() != ".xlsx":
        raise xlsx.WorkbookError(f"{output}: the native edition has no macros, so its name must end in .xlsx")
    check_output(output, force, sources=(model,))
    package = xlsx.read(model)
    verify_structure(package)
    now = now or dt.datetime.now().replace(microsecond=0)

    scheme = _rating_scheme(package)
    table_sheet = RATING if RATING in package.sheets else None
    table_cells, table_refs = {}, None
    if scheme is not None and table_sheet is not None and contiguous(scheme):
        table_cells, table_refs = rating_table(scheme, table_sheet, package.sheets[table_sheet].max_row + 3)
    translator = Translator(table_refs)

    replaced, dropped = without_macros(package)
    workbook_rels = xlsx.parse_rels(package.members[xlsx.rels_name("xl/workbook.xml")])
    for target, kind, mode in workbook_rels.values():
        if kind.endswith(EXTERNAL_LINK) and mode != "External":
            part = xlsx.part_target("xl/workbook.xml", target)
            dropped.update({part, xlsx.rels_name(part)})
    removed = [name for name in MACHINERY_SHEETS if name in package.sheets]
    for name in removed:
        dropped.update({package.sheets[name].path, xlsx.rels_name(package.sheets[name].path)})
    kept = [sheet for name, sheet in package.sheets.items() if name not in removed]

    button_parts: set = set()
    stripped = {s.name: strip_buttons(package, s, s.data(), button_parts) for s in kept}
    captions = button_captions(package, {p for p in button_parts if p.lower().endswith(".vml")})
    dropped |= button_parts

    as_values: list = []      # (sheet, ref, reason) of formulas kept as their cached value
    for sheet in sorted(kept, key=lambda s: s.name == COVER):   # the cover last: its note names the others
        source = sheet if stripped[sheet.name] == sheet.data() else xlsx.parse_sheet(sheet.name, sheet.path, stripped[sheet.name])
        formulas, values = {}, {}
        for ref, cell in source.cells.items():
            if cell.formula is None:
                if captions and isinstance(package.value(sheet.name, ref), str) \
                        and any(c in package.value(sheet.name, ref) for c in captions):
                    values[ref] = None   # the line telling the reader to click a button this edition has not
                continue
            try:
                if _external(cell.formula):
                    raise NotExpressible("it refers to another workbook")
                text = translator.formula(cell.formula)
            except (NotExpressible, ValueError) as exc:
                as_values.append((sheet.name, ref, str(exc)))
                values[ref] = package.value(sheet.name, ref)
                continue
            if text != cell.formula or _is_shared(source, cell):
                formulas[ref] = text
        if formulas:
            source = xlsx.parse_sheet(sheet.name, sheet.path, _with_formulas(source, formulas))
        if sheet.name == table_sheet:
            values.update(table_cells)
        if sheet.name == COVER:
            values.update(note_cells(source, _cover_note(model, now, as_values)))
        if values:
            typed = frozenset(ref for ref in values if ref in source.cells)
            replaced[sheet.path] = xlsx.rewrite_sheet(source, values, typed=typed).encode("utf-8")
        else:
            replaced[sheet.path] = source.data()

    strings = clean_shared_strings(package, used_strings(
        [xlsx.parse_sheet(s.name, s.path, replaced[s.path]) for s in kept]))
    if strings is not None:
        replaced[strings[0]] = strings[1]
    replaced["xl/workbook.xml"] = _set_full_calc_on_load(workbook_without(package, removed))
    replaced.update(references_without(package, dropped, replaced))
    _write(package, replaced, dropped, output, model, force)
    return output


def _cover_note(model: Path, now: dt.datetime, as_values: list) -> str:
    note = (f"原生公式版（无宏、无需 Python，打开即重算）导出自 {model.name}，{now:%Y-%m-%d %H:%M}。"
            f" Native-formula live edition of {model.name}, exported {now:%Y-%m-%d %H:%M}: every formula is plain"
            " Excel, so drivers can be changed without Python or macros.")
    if as_values:
        cells = "; ".join(f"{sheet}!{ref} ({reason})" for sheet, ref, reason in as_values[:20])
        more = f"; and {len(as_values) - 20} more" if len(as_values) > 20 else ""
        note += f" 以下单元格为数值（无原生公式） Kept as values, no native formula: {cells}{more}."
    return note


def _write(package: xlsx.Package, replaced: dict, dropped: set, output: Path, model: Path, force: bool) -> None:
    with output_file(output, force, sources=(model,)) as temp:
        xlsx.write(package, replaced, temp, dropped)
