"""Read and surgically rewrite an .xlsm/.xlsx at the level of its zip members and cell XML.

Nothing here round-trips the file through a library that drops what it does not understand:
cells are found in the sheet XML and only the `<c>` elements being changed are rewritten; every
other byte of every member stays as it was.

XML is read with expat (linear time, namespace-aware, attribute order and prefixes as any writer
chooses) with the dangerous features off: a part that declares a DOCTYPE is refused outright, so
no entity is ever expanded, no external resource is ever loaded and no DOCTYPE reaches a file this
module writes. Excel never writes a DOCTYPE. Every text this module writes into XML goes through
`escape_data`, once.
"""
from __future__ import annotations

import datetime as dt
import math
import posixpath
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from udfs.constants import EXCEL_ERRORS
from udfs.errors import FileError

from .files import open_regular

MAX_FILE_BYTES = 128 * 1024 * 1024        # the package on disk
MAX_MEMBER_BYTES = 64 * 1024 * 1024       # one uncompressed part
MAX_TOTAL_BYTES = 256 * 1024 * 1024       # the whole package, uncompressed
MAX_MEMBERS = 10_000
MAX_RATIO = 100                           # expansion over the compressed size
MAX_CELLS = 200_000
MAX_ROW, MAX_COL = 1_048_576, 16_384      # Excel's grid: $XFD$1048576
EXCEL_EPOCH = dt.datetime(1899, 12, 30)

# SpreadsheetML in its transitional (what Excel writes) and strict namespaces.
MAIN_NS = {"http://schemas.openxmlformats.org/spreadsheetml/2006/main", "http://purl.oclc.org/ooxml/spreadsheetml/main"}
REL_NS = {"http://schemas.openxmlformats.org/officeDocument/2006/relationships",
          "http://purl.oclc.org/ooxml/officeDocument/relationships"}
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "[Content_Types].xml"
CALC_CHAIN_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml"
COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


class WorkbookError(FileError):
    """A file that is not a usable workbook; the message is one readable sentence."""


# ------------------------------------------------------------------------------------------------
# Escaping: the one way text goes into XML
# ------------------------------------------------------------------------------------------------
# Characters XML 1.0 cannot hold (and CR, which a parser would turn into LF), plus any literal
# `_xHHHH_` in the text, whose underscore must itself be escaped so it reads back unchanged.
_NEEDS_OOXML_ESCAPE = re.compile("_x[0-9A-Fa-f]{4}_|[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_OOXML_ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")


def escape_data(text: str) -> str:
    """Text as SpreadsheetML character data: characters XML cannot hold become `_xHHHH_` (as
    Excel and XlsxWriter write them), a literal `_xHHHH_` keeps its meaning, `&<>` are escaped."""
    def ooxml(match):
        found = match.group(0)
        return "_x005F" + found if len(found) > 1 else f"_x{ord(found):04X}_"
    text = _NEEDS_OOXML_ESCAPE.sub(ooxml, str(text))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(text: str) -> str:
    """Text as an XML attribute value in double quotes (characters XML cannot hold escaped as in
    `escape_data`, since an attribute has no other way to carry them)."""
    return escape_data(text).replace('"', "&quot;")


def unescape_data(text: str) -> str:
    """The text an `_xHHHH_`-escaped string stands for (the inverse of `escape_data` after the
    XML parser has undone `&amp;` and friends)."""
    return _OOXML_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


# ------------------------------------------------------------------------------------------------
# Cell references
# ------------------------------------------------------------------------------------------------
_REF = re.compile(r"^([A-Z]{1,3})([0-9]{1,7})$")
_RELATIVE_REF = re.compile(r"(?<![A-Za-z_\d.])(\$?)([A-Z]{1,3})(\$?)(\d+)(?![\d(])")
_QUOTED = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'')
_AREA = re.compile(r"^(?:'(?P<q>(?:[^']|'')+)'|(?P<s>[^'!]+))!(?P<a>\$?[A-Z]{0,3}\$?\d*)(?::(?P<b>\$?[A-Z]{0,3}\$?\d*))?$")


def col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def col_letters(index: int) -> str:
    out = ""
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def split_ref(ref: str) -> tuple[int, int]:
    """(row, column) of an A1 reference; WorkbookError for anything else or beyond Excel's grid."""
    match = _REF.match(ref)
    if not match:
        raise WorkbookError(f"{ref!r} is not a cell reference")
    row, col = int(match[2]), col_index(match[1])
    if not (1 <= row <= MAX_ROW and 1 <= col <= MAX_COL):
        raise WorkbookError(f"{ref} lies outside Excel's grid (A1:XFD1048576)")
    return row, col


# ------------------------------------------------------------------------------------------------
# The package
# ------------------------------------------------------------------------------------------------
@dataclass
class CellXml:
    ref: str
    attrs: dict                  # unprefixed attributes of <c> (r, s, t, cm, vm, ...)
    formula: str | None          # formula text (shared formulas expanded), without "="
    raw_value: str | None        # text of <v>, as the parser returned it (entities undone)
    inline: str | None           # text of <is>, runs joined, phonetic runs left out
    span: tuple[int, int]        # byte offsets of the <c> element in the sheet part
    start_tag_end: int = 0       # byte offset just past the start tag
    formula_span: tuple | None = None  # byte offsets of the <f> element, kept verbatim on rewrite
    prefix: str = ""             # namespace prefix the writer used ("x" for <x:c>), "" for none


@dataclass
class RowXml:
    number: int
    span: tuple[int, int]
    start_tag_end: int           # == span[1] for an empty <row/>
    prefix: str = ""


@dataclass
class Sheet:
    name: str
    path: str
    xml: str
    cells: dict = field(default_factory=dict)  # ref -> CellXml
    rows: dict = field(default_factory=dict)   # row number -> RowXml
    sheet_data: tuple | None = None            # (start tag end, end tag start) of <sheetData>, or its empty tag span
    dimension: tuple | None = None             # byte span of the <dimension> element
    max_row: int = 0                           # the used range, from the cells actually present
    max_col: int = 0
    raw: bytes | None = None

    def data(self) -> bytes:
        if self.raw is None:
            self.raw = self.xml.encode("utf-8")
        return self.raw


@dataclass
class Package:
    path: Path
    members: dict                 # name -> bytes, in archive order
    infos: list                   # zipfile.ZipInfo, in archive order
    sheets: dict                  # sheet name -> Sheet
    names: dict                   # workbook-level defined name -> formula text
    shared: list
    custom: dict
    local_names: dict = field(default_factory=dict)   # (sheet, name) -> formula text
    sheet_states: dict = field(default_factory=dict)  # sheet name -> "visible" / "hidden" / "veryHidden"

    def _sheet(self, sheet: str) -> Sheet:
        try:
            return self.sheets[sheet]
        except KeyError:
            raise WorkbookError(f"{self.path.name}: there is no sheet {sheet!r}") from None

    def value(self, sheet: str, ref: str):
        """A cell's value as Excel would show it: number, text, bool, error text, or None."""
        cell = self._sheet(sheet).cells.get(ref)
        if cell is None:
            return None
        return decode_value(cell, self.shared, f"{self.path.name}: {sheet}!{ref}")

    def used_range(self, sheet: str) -> tuple[int, int]:
        """(last row, last column) holding a cell: what any range on the sheet is bounded by."""
        s = self._sheet(sheet)
        return s.max_row, s.max_col

    def range_cells(self, sheet: str, first: str, last: str) -> list[list[str]]:
        """The rows of references of first:last, bounded by the sheet's used range (the top-left
        cell always kept), so `$B$26:$XFD$1048576` costs what the sheet holds, not 17 billion."""
        (r1, c1), (r2, c2) = split_ref(first), split_ref(last)
        r1, r2 = min(r1, r2), max(r1, r2)
        c1, c2 = min(c1, c2), max(c1, c2)
        max_row, max_col = self.used_range(sheet)
        r2, c2 = min(r2, max(r1, max_row)), min(c2, max(c1, max_col))
        return [[f"{col_letters(c)}{r}" for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]

    def _name_reference(self, name: str) -> tuple[str, str, str]:
        """(sheet, first corner, last corner) as a defined name writes them ("B26", "XFD1048576",
        or a whole row or column); WorkbookError if it is missing or does not point at cells."""
        text = self.names.get(name)
        if text is None:
            raise WorkbookError(f"{self.path.name}: the defined name {name} is missing; is this one of our templates?")
        match = _AREA.match(text.strip().lstrip("="))
        if not match:
            raise WorkbookError(f"{self.path.name}: the defined name {name} does not point at cells ({text[:80]})")
        sheet = match["q"].replace("''", "'") if match["q"] is not None else match["s"]
        return sheet, match["a"].replace("$", ""), (match["b"] or match["a"]).replace("$", "")

    def name_area(self, name: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
        """(sheet, (first row, first column), (last row, last column)) a defined name spans, whole
        rows and columns reaching the grid's edge: its extent as written, not the used cells."""
        sheet, first, last = self._name_reference(name)
        text = self.names[name]
        try:
            (r1, c1), (r2, c2) = (split_ref(ref) for ref in _complete(first, last, (MAX_ROW, MAX_COL)))
        except (WorkbookError, ValueError):
            raise WorkbookError(f"{self.path.name}: the defined name {name} points outside the sheet ({text[:80]})") from None
        return sheet, (min(r1, r2), min(c1, c2)), (max(r1, r2), max(c1, c2))

    def name_cells(self, name: str) -> list[tuple[str, str]]:
        """(sheet, ref) for each cell a defined name covers, row by row, bounded by the used range."""
        sheet, first, last = self._name_reference(name)
        text = self.names[name]
        if sheet not in self.sheets:
            raise WorkbookError(f"{self.path.name}: the defined name {name} points at a missing sheet {sheet!r}")
        try:
            first, last = _complete(first, last, self.used_range(sheet))
            rows = self.range_cells(sheet, first, last)
        except WorkbookError:
            raise WorkbookError(f"{self.path.name}: the defined name {name} points outside the sheet ({text[:80]})") from None
        return [(sheet, ref) for row in rows for ref in row]


def _complete(first: str, last: str, used: tuple[int, int]) -> tuple[str, str]:
    """Whole rows (`4:4`) and whole columns (`A:C`) as A1 corners."""
    if first.isdigit() and last.isdigit():
        return f"A{first}", f"{col_letters(max(used[1], 1))}{last}"
    if first.isalpha() and last.isalpha():
        return f"{first}1", f"{last}{max(used[0], 1)}"
    return first, last


def decode_value(cell: CellXml, shared: list, where: str = "cell"):
    kind = cell.attrs.get("t", "n")
    if kind == "inlineStr":
        return cell.inline
    raw = cell.raw_value
    if raw is None:
        return None
    if raw == "" and kind == "n":
        # An empty cached value: XlsxWriter writes <v></v> for a formula whose value is blank
        # ("recalculate me"), and Excel reads it as blank.
        return None
    if kind == "s":
        try:
            return shared[int(raw)]
        except (ValueError, IndexError):
            raise WorkbookError(f"{where} refers to shared string {raw[:20]!r}, which the file does not have; "
                                "the file is damaged") from None
    if kind in ("str", "e"):
        return unescape_data(raw)
    if kind == "b":
        if raw.strip() not in ("0", "1"):
            raise WorkbookError(f"{where} is a boolean holding {raw[:20]!r}; the file is damaged")
        return raw.strip() == "1"
    if kind == "d":
        try:
            moment = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            raise WorkbookError(f"{where} is a date holding {raw[:20]!r}; the file is damaged") from None
        return (moment - EXCEL_EPOCH).total_seconds() / 86400
    try:
        number = float(raw)
    except ValueError:
        raise WorkbookError(f"{where} is a number holding {raw[:20]!r}; the file is damaged") from None
    if not math.isfinite(number):
        raise WorkbookError(f"{where} holds {raw[:20]!r}, which no spreadsheet can store; the file is damaged")
    return number


# ------------------------------------------------------------------------------------------------
# Hardened XML parsing
# ------------------------------------------------------------------------------------------------
def _split_name(name: str) -> tuple[str, str, str]:
    """(namespace, local name, prefix) of an expat name in "uri local prefix" form."""
    parts = name.split(" ")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], parts[2]


def _parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.namespace_prefixes = True
    parser.buffer_text = True

    def refuse(*_):
        raise _Refused("declares a DOCTYPE (refused: it could expand entities or load external files)")
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser


class _Refused(Exception):
    pass


def _parse(parser, data: bytes, where: str) -> None:
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise WorkbookError(f"{where} {exc}") from None
    except expat.ExpatError as exc:
        raise WorkbookError(f"{where} is not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno}): "
                            "a damaged workbook") from None
    except RecursionError:
        raise WorkbookError(f"{where} nests too deeply; refused") from None


def _local_attrs(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items() if " " not in k}


def _attr(attrs: dict, local: str, namespaces: set) -> str | None:
    for key, value in attrs.items():
        ns, name, _ = _split_name(key)
        if name == local and ns in namespaces:
            return value
    return None


class _TextCollector:
    """Collects the text of <t> elements inside an <si> or <is>, skipping phonetic runs (<rPh>)."""

    def __init__(self):
        self.parts: list = []
        self.in_t = 0
        self.in_phonetic = 0

    def start(self, local: str):
        if local == "rPh":
            self.in_phonetic += 1
        elif local == "t" and not self.in_phonetic:
            self.in_t += 1

    def end(self, local: str):
        if local == "rPh":
            self.in_phonetic -= 1
        elif local == "t" and not self.in_phonetic:
            self.in_t -= 1

    def text(self, data: str):
        if self.in_t:
            self.parts.append(data)

    def value(self) -> str:
        return unescape_data("".join(self.parts))


def _element_end(data: bytes, start: int, index: int) -> int:
    """Offset just past the element that starts at `start`, expat having reported its end event at
    `index` (the start of its end tag; for an empty-element tag expat reports where it ended)."""
    tag_end = _start_tag_end(data, start)
    if data[tag_end - 2:tag_end] == b"/>":
        return tag_end
    return data.index(b">", index) + 1


def _start_tag_end(data: bytes, start: int) -> int:
    """Offset just past the start tag beginning at `start`, quoted attribute values skipped."""
    i, quote = start, None
    while True:
        ch = data[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in (0x22, 0x27):
            quote = ch
        elif ch == 0x3E:
            return i + 1
        i += 1


def parse_sheet(name: str, path: str, xml: str | bytes) -> Sheet:
    """The cells, rows and used range of a worksheet part, with byte offsets for surgical rewrites."""
    data = xml if isinstance(xml, bytes) else xml.encode("utf-8")
    text = xml if isinstance(xml, str) else data.decode("utf-8")
    sheet = Sheet(name, path, text, raw=data)
    parser = _parser()
    stack: list = []            # local names of open main-namespace elements
    masters: dict = {}
    state: dict = {}
    row_state = {"number": 0, "col": 0}

    def start(qname, attrs):
        ns, local, prefix = _split_name(qname)
        if ns not in MAIN_NS:
            stack.append(None)
            return
        parent = stack[-1] if stack else None
        stack.append(local)
        at = parser.CurrentByteIndex
        if local == "c" and parent == "row":
            plain = _local_attrs(attrs)
            ref = plain.get("r")
            if ref is None:   # writers may leave out r: the next column of the row
                ref = f"{col_letters(row_state['col'] + 1)}{row_state['number']}"
            ref = ref.upper()
            row, col = split_ref(ref)
            row_state["col"] = col
            plain["r"] = ref
            state.clear()
            state.update(ref=ref, attrs=plain, start=at, tag_end=None, f=None, fattrs=None, f_span=None, v=None,
                         inline=None, prefix=prefix, row=row, col=col)
        elif local == "row" and parent == "sheetData":
            plain = _local_attrs(attrs)
            number = int(plain["r"]) if plain.get("r", "").isdigit() else row_state["number"] + 1
            if not 1 <= number <= MAX_ROW:
                raise WorkbookError(f"sheet {name!r}: row {number} lies outside Excel's grid")
            row_state.update(number=number, col=0, start=at, prefix=prefix)
        elif local == "sheetData":
            row_state["data_start"] = at
        elif local == "dimension":
            row_state["dimension"] = at
        elif parent == "c" and state:
            if local == "f":
                state["fattrs"] = _local_attrs(attrs)
                state["f"] = []
                state["f_start"] = at
            elif local == "v":
                state["v"] = []
            elif local == "is":
                state["inline"] = _TextCollector()
        elif state.get("inline") is not None and "is" in stack:
            state["inline"].start(local)

    def end(qname):
        local = stack.pop()
        if local is None:
            return
        at = parser.CurrentByteIndex
        if local == "c" and stack and stack[-1] == "row" and state:
            end_at = _element_end(data, state["start"], at)
            _finish_cell(sheet, state, masters, (state["start"], end_at), _start_tag_end(data, state["start"]))
            state.clear()
        elif local == "row" and stack and stack[-1] == "sheetData":
            start_at = row_state["start"]
            end_at = _element_end(data, start_at, at)
            sheet.rows[row_state["number"]] = RowXml(row_state["number"], (start_at, end_at),
                                                     _start_tag_end(data, start_at), row_state["prefix"])
        elif local == "sheetData":
            start_at = row_state["data_start"]
            end_at = _element_end(data, start_at, at)
            tag_end = _start_tag_end(data, start_at)
            sheet.sheet_data = (tag_end, at if tag_end < end_at else end_at, start_at, end_at)
        elif local == "dimension":
            sheet.dimension = (row_state["dimension"], _element_end(data, row_state["dimension"], at))
        elif state and stack and stack[-1] == "c":
            if local == "f":
                f_start = state.pop("f_start")
                state["f_span"] = (f_start, _element_end(data, f_start, at))
        elif state.get("inline") is not None and "is" in stack:
            state["inline"].end(local)

    def chars(text):
        if not state or not stack:
            return
        local = stack[-1]
        if local == "f" and state.get("f") is not None:
            state["f"].append(text)
        elif local == "v" and state.get("v") is not None:
            state["v"].append(text)
        elif state.get("inline") is not None:
            state["inline"].text(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    _parse(parser, data, f"sheet {name!r} ({path})")
    return sheet


def _finish_cell(sheet: Sheet, state: dict, masters: dict, span: tuple, tag_end: int) -> None:
    ref = state["ref"]
    if ref in sheet.cells:
        raise WorkbookError(f"sheet {sheet.name!r}: cell {ref} appears twice; the file is damaged")
    formula = None
    if state["f"] is not None:
        fattrs = state["fattrs"]
        text = "".join(state["f"])
        if fattrs.get("t") == "shared":
            si = fattrs.get("si")
            if text:
                masters[si] = (text, ref)
                formula = text
            elif si in masters:
                formula = _expand_shared(masters[si][0], masters[si][1], ref)
            else:
                raise WorkbookError(f"sheet {sheet.name!r}: cell {ref} shares formula {si!r}, which no cell before it "
                                    "defines; the file is damaged")
        else:
            formula = text if text or fattrs.get("t") != "array" else None
    inline = state["inline"].value() if state["inline"] is not None else None
    raw = "".join(state["v"]) if state["v"] is not None else None
    sheet.cells[ref] = CellXml(ref, state["attrs"], formula, raw, inline, span, tag_end,
                               state["f_span"], state["prefix"])
    sheet.max_row = max(sheet.max_row, state["row"])
    sheet.max_col = max(sheet.max_col, state["col"])
    if len(sheet.cells) > MAX_CELLS:
        raise WorkbookError(f"sheet {sheet.name!r} has more than {MAX_CELLS:,} cells; refused")


def _expand_shared(master: str, master_ref: str, ref: str) -> str:
    """A shared formula at `ref`: the master's relative references moved by the offset."""
    (r0, c0), (r1, c1) = split_ref(master_ref), split_ref(ref)
    dr, dc = r1 - r0, c1 - c0

    def move(match):
        col_abs, col, row_abs, row = match.group(1), match.group(2), match.group(3), match.group(4)
        new_col = col if col_abs else col_letters(col_index(col) + dc)
        new_row = row if row_abs else str(int(row) + dr)
        return f"{col_abs}{new_col}{row_abs}{new_row}"

    out, pos = [], 0
    for literal in _QUOTED.finditer(master):  # references inside text or sheet names stay as they are
        out.append(_RELATIVE_REF.sub(move, master[pos:literal.start()]))
        out.append(literal.group(0))
        pos = literal.end()
    out.append(_RELATIVE_REF.sub(move, master[pos:]))
    return "".join(out)


def _parse_rels(data: bytes, where: str) -> dict:
    """{Id: (Target, Type, TargetMode)} of a relationships part."""
    out = {}
    parser = _parser()

    def start(qname, attrs):
        if _split_name(qname)[1] == "Relationship":
            out[attrs.get("Id", "")] = (attrs.get("Target", ""), attrs.get("Type", ""), attrs.get("TargetMode", ""))
    parser.StartElementHandler = start
    _parse(parser, data, where)
    return out


def _parse_workbook(data: bytes, where: str):
    """([(name, r:id, state)], {name: text}, {(localSheetId, name): text})."""
    sheets, names, local = [], {}, {}
    parser = _parser()
    current: dict = {}

    def start(qname, attrs):
        ns, tag, _ = _split_name(qname)
        if ns not in MAIN_NS:
            return
        if tag == "sheet":
            sheets.append((attrs.get("name", ""), _attr(attrs, "id", REL_NS) or "", attrs.get("state", "visible")))
        elif tag == "definedName":
            current.update(name=attrs.get("name", ""), local=attrs.get("localSheetId"), text=[])

    def end(qname):
        ns, tag, _ = _split_name(qname)
        if ns in MAIN_NS and tag == "definedName" and current:
            text = "".join(current["text"])
            if current["local"] is None:
                names[current["name"]] = text
            else:
                local[(current["local"], current["name"])] = text
            current.clear()

    def chars(text):
        if current:
            current["text"].append(text)
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    _parse(parser, data, where)
    return sheets, names, local


def _parse_shared_strings(data: bytes, where: str) -> list:
    strings: list = []
    parser = _parser()
    current: list = []

    def start(qname, attrs):
        ns, tag, _ = _split_name(qname)
        if ns not in MAIN_NS:
            return
        if tag == "si":
            current.append(_TextCollector())
        elif current:
            current[-1].start(tag)

    def end(qname):
        ns, tag, _ = _split_name(qname)
        if ns not in MAIN_NS or not current:
            return
        if tag == "si":
            strings.append(current.pop().value())
        else:
            current[-1].end(tag)

    def chars(text):
        if current:
            current[-1].text(text)
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    _parse(parser, data, where)
    return strings


def _parse_custom(data: bytes, where: str) -> dict:
    out: dict = {}
    parser = _parser()
    current: dict = {}

    def start(qname, attrs):
        tag = _split_name(qname)[1]
        if tag == "property":
            current.clear()
            current.update(name=attrs.get("name", ""), text=[], depth=0)
        elif current:
            current["depth"] += 1

    def end(qname):
        tag = _split_name(qname)[1]
        if tag == "property" and current:
            out[current["name"]] = "".join(current["text"])
            current.clear()

    def chars(text):
        if current and current.get("depth"):
            current["text"].append(text)
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    _parse(parser, data, where)
    return out


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def _open_regular(path: Path):
    """The workbook opened for reading if it is a regular file of a sane size; WorkbookError otherwise."""
    return open_regular(path, MAX_FILE_BYTES, WorkbookError, "file")


def _check_zip(path: Path, archive: zipfile.ZipFile) -> None:
    total, seen = 0, set()
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise WorkbookError(f"{path.name}: {len(infos):,} parts is more than a workbook has; refused")
    for info in infos:
        if info.filename in seen:
            raise WorkbookError(f"{path.name}: part {info.filename} appears twice; the file is damaged")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise WorkbookError(f"{path.name}: part {info.filename} is encrypted; save the workbook without a password")
        if info.compress_type not in COMPRESSIONS:
            raise WorkbookError(f"{path.name}: part {info.filename} uses zip compression method {info.compress_type} "
                                "(not stored or deflate, as Excel writes); re-save the workbook in Excel")
        if info.file_size > MAX_MEMBER_BYTES:
            raise WorkbookError(f"{path.name}: part {info.filename} would expand to {info.file_size:,} bytes; refused")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1_000_000:
            raise WorkbookError(f"{path.name}: part {info.filename} expands {info.file_size // info.compress_size}x; "
                                "refused as a likely zip bomb")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise WorkbookError(f"{path.name}: expands to {total:,} bytes; refused")


_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)


def _is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels", ".vml")) or name == CONTENT_TYPES


def part_target(source: str, target: str) -> str:
    """The package part a relationship of `source` (a part name) points at."""
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def rels_name(part: str) -> str:
    """The relationships part of `part` (xl/worksheets/sheet1.xml -> xl/worksheets/_rels/sheet1.xml.rels)."""
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def read(path: str | Path, data: bytes | None = None) -> Package:
    """Every member of the package and the parsed sheets; WorkbookError if it is not a workbook.
    `data`: the file's bytes, already read (one reading of a file another process may replace
    meanwhile); `path` then only names it."""
    path = Path(path)
    with (io.BytesIO(data) if data is not None else _open_regular(path)) as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise WorkbookError(f"{path.name}: not an Excel workbook (not a zip package)") from None
        with archive:
            _check_zip(path, archive)
            infos = archive.infolist()
            try:
                members = {info.filename: archive.read(info) for info in infos}
            # zipfile signals an encrypted member with RuntimeError and a compression method it
            # does not support with NotImplementedError: both are a file we cannot read, not a bug.
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
                raise WorkbookError(f"{path.name}: damaged workbook ({str(exc)[:120]})") from None
    if "xl/workbook.xml" not in members:
        raise WorkbookError(f"{path.name}: not an Excel workbook (no xl/workbook.xml)")
    if CONTENT_TYPES not in members:
        raise WorkbookError(f"{path.name}: damaged workbook (no {CONTENT_TYPES}, which every Office file has)")
    for name, data in members.items():
        if _is_xml(name) and _DOCTYPE.search(data):
            raise WorkbookError(f"{path.name}: part {name} declares a DOCTYPE or entities; refused (Excel never writes one)")
    where = path.name
    _parse(_parser(), members[CONTENT_TYPES], f"{where}: {CONTENT_TYPES}")   # well-formed, or refused
    sheet_list, names, local = _parse_workbook(members["xl/workbook.xml"], f"{where}: xl/workbook.xml")
    rels_part = rels_name("xl/workbook.xml")
    if rels_part not in members:
        raise WorkbookError(f"{where}: damaged workbook (no {rels_part}, so its sheets cannot be found)")
    targets = _parse_rels(members[rels_part], f"{where}: {rels_part}")
    sheets, states, by_index = {}, {}, {}
    for index, (name, rid, state) in enumerate(sheet_list):
        target = targets.get(rid)
        member = part_target("xl/workbook.xml", target[0]) if target else ""
        if member not in members:
            raise WorkbookError(f"{where}: sheet {name!r} has no part {member or rid}; the file is damaged")
        try:
            sheets[name] = parse_sheet(name, member, members[member])
        except UnicodeDecodeError:
            raise WorkbookError(f"{where}: sheet {name!r} is not UTF-8 XML; the file is damaged") from None
        except WorkbookError as exc:
            raise WorkbookError(f"{where}: {exc}") from None
        states[name] = state
        by_index[str(index)] = name
    local_names = {(by_index.get(i, i), n): t for (i, n), t in local.items()}
    shared = []
    strings_part = next((part_target("xl/workbook.xml", t) for t, kind, _ in targets.values()
                         if kind.endswith("/sharedStrings")), "xl/sharedStrings.xml")
    if strings_part in members:
        shared = _parse_shared_strings(members[strings_part], f"{where}: {strings_part}")
    custom = {}
    if "docProps/custom.xml" in members:
        custom = _parse_custom(members["docProps/custom.xml"], f"{where}: docProps/custom.xml")
    return Package(path, members, infos, sheets, names, shared, custom, local_names, states)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
_ATTRIBUTE = re.compile(rb"""\s+([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")


def number_text(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _cell_bytes(cell: CellXml, value, data: bytes, keep_formula: bool) -> bytes:
    """The `<c>` element for `cell` holding `value`: its attributes (style and any extension
    attributes, in the writer's order) kept, its formula element kept verbatim unless the cell
    is typed over, its cached value (or, for an input, its value) replaced."""
    p = f"{cell.prefix}:" if cell.prefix else ""
    if cell.span[1] > cell.span[0]:
        tag = data[cell.span[0]:cell.start_tag_end]
        dropped = {b"t", b"vm"} | (set() if keep_formula else {b"cm"})
        attrs = b"".join(m.group(0) for m in _ATTRIBUTE.finditer(tag) if m.group(1) not in dropped)
    else:   # a cell being created
        attrs = f' r="{cell.ref}"'.encode()
    body = ""
    formula = b""
    if keep_formula and cell.formula is not None:
        if cell.formula_span:
            formula = data[cell.formula_span[0]:cell.formula_span[1]]
        else:
            formula = f"<{p}f>{escape_data(cell.formula)}</{p}f>".encode("utf-8")
    kind = None
    if value is None:
        pass
    elif isinstance(value, bool):
        kind, body = "b", f"<{p}v>{int(value)}</{p}v>"
    elif isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            body = f"<{p}v>{number_text(value)}</{p}v>"
        else:     # a spreadsheet cannot store nan or inf: Excel shows #NUM! for them
            kind, body = "e", f"<{p}v>#NUM!</{p}v>"
    elif isinstance(value, str) and value in EXCEL_ERRORS:
        kind, body = "e", f"<{p}v>{value}</{p}v>"
    elif keep_formula and cell.formula is not None:
        kind, body = "str", f"<{p}v>{escape_data(value)}</{p}v>"
    else:
        text = str(value)
        space = ' xml:space="preserve"' if text != text.strip() else ""
        kind, body = "inlineStr", f"<{p}is><{p}t{space}>{escape_data(text)}</{p}t></{p}is>"
    if kind:
        attrs += f' t="{kind}"'.encode()
    content = formula + body.encode("utf-8")
    if not content:
        return b"<" + p.encode() + b"c" + attrs + b"/>"
    return b"<" + p.encode() + b"c" + attrs + b">" + content + b"</" + p.encode() + b"c>"


def rewrite_sheet(sheet: Sheet, changes: dict, typed: frozenset = frozenset()) -> str:
    """The sheet XML with the cells in `changes` (ref -> value) rewritten, everything else as it
    was. Cells in `typed` become plain values, as when an analyst types over a formula. A cell
    the sheet does not have yet is inserted in its row (the row created if need be) and the
    sheet's <dimension> grows to cover it."""
    data = sheet.data()
    edits: list = []           # (start, end, bytes), applied in order of position
    new_cells: dict = {}       # row -> [(col, ref, value)]
    for ref, value in changes.items():
        cell = sheet.cells.get(ref)
        if cell is None:
            row, col = split_ref(ref)
            new_cells.setdefault(row, []).append((col, ref, value))
            continue
        edits.append((cell.span[0], cell.span[1], _cell_bytes(cell, value, data, ref not in typed)))
    max_row, max_col = sheet.max_row, sheet.max_col
    if new_cells:
        if sheet.sheet_data is None:
            raise WorkbookError(f"sheet {sheet.name!r} has no sheetData; the file is damaged")
        for row, cells in new_cells.items():
            edits.extend(_insert_cells(sheet, data, row, sorted(cells)))
            max_row = max(max_row, row)
            max_col = max(max_col, max(c for c, _, _ in cells))
        if sheet.dimension and (max_row, max_col) != (sheet.max_row, sheet.max_col):
            start, end = sheet.dimension
            tag = data[start:end]
            grown = re.sub(rb'(\sref\s*=\s*)("[^"]*"|\'[^\']*\')',
                           lambda m: m.group(1) + f'"A1:{col_letters(max_col)}{max_row}"'.encode(), tag, count=1)
            edits.append((start, end, grown))
    edits.sort(key=lambda e: (e[0], e[1]))
    out, pos = [], 0
    for start, end, replacement in edits:
        if start < pos:
            raise WorkbookError(f"sheet {sheet.name!r}: overlapping cell edits; the file is damaged")
        out.append(data[pos:start])
        out.append(replacement)
        pos = end
    out.append(data[pos:])
    return b"".join(out).decode("utf-8")


def _insert_cells(sheet: Sheet, data: bytes, row: int, cells: list) -> list:
    """Edits that add new cells (col, ref, value) to `row`, in column order."""
    existing = sheet.rows.get(row)
    prefix = existing.prefix if existing else next((r.prefix for r in sheet.rows.values()), "")
    p = f"{prefix}:" if prefix else ""
    edits = []

    def fresh(ref):
        return CellXml(ref, {"r": ref}, None, None, None, (0, 0), 0, None, prefix)

    if existing is None:
        body = b"".join(_cell_bytes(fresh(ref), value, data, False) for _, ref, value in cells)
        element = f'<{p}row r="{row}">'.encode() + body + f"</{p}row>".encode()
        later = [r for n, r in sheet.rows.items() if n > row]
        if later:
            at = min(r.span[0] for r in later)
        else:
            content_end = sheet.sheet_data[1]
            if sheet.sheet_data[0] >= sheet.sheet_data[3]:   # <sheetData/>: open it
                start, end = sheet.sheet_data[2], sheet.sheet_data[3]
                tag = data[start:end].rstrip(b"/>").rstrip()
                return [(start, end, tag + b">" + element + f"</{p}sheetData>".encode())]
            at = content_end
        return [(at, at, element)]
    in_row = sorted((split_ref(c.ref)[1], c) for c in sheet.cells.values() if split_ref(c.ref)[0] == row)
    if existing.start_tag_end >= existing.span[1]:      # <row/>: give it a body
        start, end = existing.span
        tag = data[start:end].rstrip(b"/>").rstrip()
        body = b"".join(_cell_bytes(fresh(ref), value, data, False) for _, ref, value in cells)
        return [(start, end, tag + b">" + body + f"</{p}row>".encode())]
    for col, ref, value in cells:
        after = [c for n, c in in_row if n > col]
        at = after[0].span[0] if after else data.rindex(b"</", existing.start_tag_end, existing.span[1])
        edits.append((at, at, _cell_bytes(fresh(ref), value, data, False)))
    return edits


def type_values(package: Package, values: dict, target: Path) -> None:
    """A copy of the package with values typed into cells ({(sheet, ref): value}), formulas there
    replaced, as an analyst would in Excel (cached values elsewhere are not recomputed). Excel
    rebuilds a calculation chain that is missing, so the copy has none rather than a stale one."""
    by_sheet: dict = {}
    for (sheet, ref), value in values.items():
        by_sheet.setdefault(sheet, {})[ref] = value
    replaced = {package.sheets[s].path: rewrite_sheet(package.sheets[s], cells, frozenset(cells)).encode("utf-8")
                for s, cells in by_sheet.items()}
    extra, dropped = without_calc_chain(package)
    replaced.update(extra)
    write(package, replaced, target, dropped)


def without_calc_chain(package: Package) -> tuple[dict, set]:
    """(replaced parts, dropped parts) that take the calculation chain out of the package: the
    part, its content-type override and the workbook's relationship to it."""
    rels_part = rels_name("xl/workbook.xml")
    rels = _parse_rels(package.members.get(rels_part, b"<Relationships/>"), rels_part)
    chains = {rid: part_target("xl/workbook.xml", target) for rid, (target, kind, _) in rels.items()
              if kind.endswith("/calcChain")}
    if not chains and "xl/calcChain.xml" not in package.members:
        return {}, set()
    dropped = set(chains.values()) | {"xl/calcChain.xml"}
    replaced = {rels_part: remove_elements(package.members[rels_part], "Relationship",
                                           lambda a: a.get("Id") in chains)}
    replaced[CONTENT_TYPES] = remove_elements(package.members[CONTENT_TYPES], "Override",
                                              lambda a: a.get("PartName", "").lstrip("/") in dropped)
    return replaced, dropped


def remove_elements(data: bytes, local: str, condition) -> bytes:
    """`data` without the elements named `local` whose attributes satisfy `condition`."""
    return edit_elements(data, local, lambda attrs, element: b"" if condition(attrs) else None)


def edit_elements(data: bytes, local: str, edit) -> bytes:
    """`data` with each outermost element named `local` (any namespace) passed to
    `edit(attributes by local name, element bytes)`, which returns its replacement (b"" removes
    it) or None to keep it; every other byte kept. Parsed by the same hardened parser."""
    found: list = []
    parser = _parser()
    open_at: list = []

    def start(qname, attrs):
        if _split_name(qname)[1] == local:
            if not open_at:
                plain = {_split_name(k)[1]: v for k, v in attrs.items()}
                open_at.append((parser.CurrentByteIndex, plain))
            else:
                open_at.append(None)

    def end(qname):
        if _split_name(qname)[1] == local and open_at:
            opened = open_at.pop()
            if opened is not None:
                start_at, attrs = opened
                found.append((start_at, _element_end(data, start_at, parser.CurrentByteIndex), attrs))
    parser.StartElementHandler, parser.EndElementHandler = start, end
    _parse(parser, data, "a package part")
    out, pos = [], 0
    for start_at, end_at, attrs in found:
        replacement = edit(attrs, data[start_at:end_at])
        if replacement is None:
            continue
        out.append(data[pos:start_at])
        out.append(replacement)
        pos = end_at
    out.append(data[pos:])
    return b"".join(out)


def parse_rels(data: bytes, where: str = "a relationships part") -> dict:
    """{Id: (Target, Type, TargetMode)} of a relationships part."""
    return _parse_rels(data, where)


def content_types(package: Package) -> tuple[dict, dict]:
    """({extension: content type}, {part name: content type}) from [Content_Types].xml."""
    defaults, overrides = {}, {}
    parser = _parser()

    def start(qname, attrs):
        tag = _split_name(qname)[1]
        if tag == "Default":
            defaults[attrs.get("Extension", "").lower()] = attrs.get("ContentType", "")
        elif tag == "Override":
            overrides[attrs.get("PartName", "").lstrip("/")] = attrs.get("ContentType", "")
    parser.StartElementHandler = start
    _parse(parser, package.members[CONTENT_TYPES], CONTENT_TYPES)
    return defaults, overrides


def content_type(package: Package, part: str) -> str:
    defaults, overrides = content_types(package)
    return overrides.get(part) or defaults.get(posixpath.splitext(part)[1].lstrip(".").lower(), "")


def write(package: Package, replaced: dict, target: Path, dropped: set | frozenset = frozenset()) -> None:
    """A copy of the package with the members in `replaced` (name -> bytes) swapped and those in
    `dropped` left out, every other member byte-identical and in the same order, written to `target`."""
    with zipfile.ZipFile(target, "w") as out:
        for info in package.infos:
            if info.filename in dropped:
                continue
            data = replaced.get(info.filename, package.members[info.filename])
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type = info.compress_type
            copy.external_attr = info.external_attr
            out.writestr(copy, data)


def excel_date(day: dt.date) -> float:
    return float((dt.datetime(day.year, day.month, day.day) - EXCEL_EPOCH).days)


def from_excel_date(serial: float) -> dt.date:
    return (EXCEL_EPOCH + dt.timedelta(days=float(serial))).date()
