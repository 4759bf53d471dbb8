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
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.parsers import expat

from udfs.constants import EXCEL_ERRORS
from udfs.errors import FileError

from . import zipparts
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


class ErrorLikeText(str):
    """Text that reads like an error value ("#N/A") but is text: a "#N/A" typed in quotes, joined
    with &, or returned by an ER_ function (xlwings cannot return a true error, so Excel holds
    it as text). ISERROR is FALSE, IFERROR keeps it, arithmetic on it gives #VALUE!, and another
    ER_ function reads it as the error it names, as it does in Excel. A formula's cached value
    of this kind is written as text (t="str"), so it reads back as text, not as an error."""


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


_COLUMNS: dict = {}  # column letters -> index, filled as met (at most Excel's 16,384 columns)


def col_index(letters: str) -> int:
    index = _COLUMNS.get(letters)
    if index is None:
        index = 0
        for ch in letters:
            index = index * 26 + ord(ch) - 64
        if len(letters) <= 3:
            _COLUMNS[letters] = index
    return index


def col_letters(index: int) -> str:
    out = ""
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


_SPLIT: dict = {}       # A1 reference -> (row, column), for the references met (every read meets thousands)
_SPLIT_KEPT = 65536


def split_ref(ref: str) -> tuple[int, int]:
    """(row, column) of an A1 reference; WorkbookError for anything else or beyond Excel's grid."""
    known = _SPLIT.get(ref)
    if known is not None:
        return known
    match = _REF.match(ref)
    if not match:
        raise WorkbookError(f"{ref!r} is not a cell reference")
    row, col = int(match[2]), col_index(match[1])
    if not (1 <= row <= MAX_ROW and 1 <= col <= MAX_COL):
        raise WorkbookError(f"{ref} lies outside Excel's grid (A1:XFD1048576)")
    if len(_SPLIT) < _SPLIT_KEPT:
        _SPLIT[ref] = (row, col)
    return row, col


# ------------------------------------------------------------------------------------------------
# The package
# ------------------------------------------------------------------------------------------------
class _Offsets:
    """The byte offsets of an element (a cell or a row) in its sheet part, worked out from the
    parser's (start, end event) positions only when a rewrite asks for them."""
    __slots__ = ()

    @property
    def span(self) -> tuple[int, int]:
        """Byte offsets of the element in the sheet part."""
        if self._span is None:
            start, event = self._at
            self._span = (start, _element_end(self._data, start, event))
        return self._span

    @property
    def start_tag_end(self) -> int:
        """Byte offset just past the start tag (== span[1] for an empty element)."""
        if not self._tag_end and self._at is not None:
            self._tag_end = _start_tag_end(self._data, self._at[0])
        return self._tag_end


class CellXml(_Offsets):
    """One `<c>` element: what it holds, and where it lies in its sheet part. The byte offsets a
    rewrite needs are worked out from the parser's positions only for the cells rewritten."""
    __slots__ = ("ref", "attrs", "formula", "raw_value", "inline", "prefix", "row", "col", "_data", "_at", "_f_at",
                 "_span", "_tag_end", "_f_span")

    def __init__(self, ref: str, attrs: dict, formula: str | None, raw_value: str | None, inline: str | None,
                 span: tuple | None = None, start_tag_end: int = 0, formula_span: tuple | None = None,
                 prefix: str = "", data: bytes | None = None, at: tuple | None = None, f_at: tuple | None = None,
                 row: int = 0, col: int = 0):
        self.ref = ref
        self.row, self.col = (row, col) if row else split_ref(ref)   # where it is: row and column from 1
        self.attrs = attrs            # attributes of <c> by local name (r, s, t, cm, vm, ...); an extension
        #                               attribute keeps its "namespace name" key, which nothing asks for
        self.formula = formula        # formula text (shared formulas expanded), without "="
        self.raw_value = raw_value    # text of <v>, as the parser returned it (entities undone)
        self.inline = inline          # text of <is>, runs joined, phonetic runs left out
        self.prefix = prefix          # namespace prefix the writer used ("x" for <x:c>), "" for none
        self._span, self._tag_end, self._f_span = span, start_tag_end, formula_span
        self._data, self._at, self._f_at = data, at, f_at  # the part, and expat's (start, end event) positions

    @property
    def formula_span(self) -> tuple | None:
        """Byte offsets of the <f> element, kept verbatim on rewrite; None without one."""
        if self._f_span is None and self._f_at is not None:
            start, event = self._f_at
            self._f_span = (start, _element_end(self._data, start, event))
        return self._f_span

    def __repr__(self) -> str:
        return f"CellXml({self.ref!r}, formula={self.formula!r}, value={self.raw_value!r}, inline={self.inline!r})"


class RowXml(_Offsets):
    """One `<row>` element of sheetData, with its offsets worked out when a cell is inserted."""
    __slots__ = ("number", "prefix", "_data", "_at", "_span", "_tag_end")

    def __init__(self, number: int, span: tuple | None = None, start_tag_end: int = 0, prefix: str = "",
                 data: bytes | None = None, at: tuple | None = None):
        self.number, self.prefix = number, prefix
        self._span, self._tag_end, self._data, self._at = span, start_tag_end, data, at


class Sheet:
    """A worksheet part parsed: its cells and rows by position, the used range, and its bytes."""

    def __init__(self, name: str, path: str, xml: str | None = "", cells: dict | None = None, rows: dict | None = None,
                 sheet_data: tuple | None = None, dimension: tuple | None = None, max_row: int = 0, max_col: int = 0,
                 raw: bytes | None = None):
        self.name, self.path = name, path
        self._xml = xml if xml or raw is None else None
        self.cells = {} if cells is None else cells   # ref -> CellXml
        self.rows = {} if rows is None else rows       # row number -> RowXml
        self.sheet_data = sheet_data                   # (start tag end, end tag start, start, end) of <sheetData>
        self.dimension = dimension                     # byte span of the <dimension> element
        self.max_row, self.max_col = max_row, max_col  # the used range, from the cells actually present
        self.raw = raw
        self.rewritable = True                         # its cells' offsets are those of its bytes

    @property
    def xml(self) -> str:
        if self._xml is None:
            self._xml = self.raw.decode("utf-8")
        return self._xml

    def data(self) -> bytes:
        if self.raw is None:
            self.raw = self._xml.encode("utf-8")
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
    stored: dict = field(default_factory=dict)        # name -> zipparts.Stored: the member as the archive holds it
    # What readers derive from the package once and share (the blueprint rows, a verified
    # structure); a package is never changed after it is read, so nothing here goes stale.
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    def _sheet(self, sheet: str) -> Sheet:
        try:
            return self.sheets[sheet]
        except KeyError:
            raise WorkbookError(f"{self.path.name}: there is no sheet {sheet!r}") from None

    def value(self, sheet: str, ref: str):
        """A cell's value as Excel would show it: number, text, bool, error text, or None."""
        sheets = self.sheets
        cell = (sheets[sheet] if sheet in sheets else self._sheet(sheet)).cells.get(ref)
        if cell is None:
            return None
        return decode_value(cell, self.shared, (self.path, sheet, ref))

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
        cells = _covered(sheet, first, last, self.used_range(sheet))
        if cells is None:
            raise WorkbookError(f"{self.path.name}: the defined name {name} points outside the sheet ({text[:80]})")
        return list(cells)


@lru_cache(maxsize=4096)
def _covered(sheet: str, first: str, last: str, used: tuple[int, int]) -> tuple | None:
    """(sheet, ref) of each cell of first:last on a sheet whose used range is `used`, row by row
    (None when the area lies outside the grid): worked out once per area and used range, which
    every model of a template shares, instead of once per name per read."""
    try:
        first, last = _complete(first, last, used)
        (r1, c1), (r2, c2) = split_ref(first), split_ref(last)
    except WorkbookError:
        return None
    r1, r2 = min(r1, r2), max(r1, r2)
    c1, c2 = min(c1, c2), max(c1, c2)
    r2, c2 = min(r2, max(r1, used[0])), min(c2, max(c1, used[1]))
    return tuple((sheet, f"{col_letters(c)}{r}") for r in range(r1, r2 + 1) for c in range(c1, c2 + 1))


def _complete(first: str, last: str, used: tuple[int, int]) -> tuple[str, str]:
    """Whole rows (`4:4`) and whole columns (`A:C`) as A1 corners."""
    if first.isdigit() and last.isdigit():
        return f"A{first}", f"{col_letters(max(used[1], 1))}{last}"
    if first.isalpha() and last.isalpha():
        return f"{first}1", f"{last}{max(used[0], 1)}"
    return first, last


def decode_value(cell: CellXml, shared: list, where="cell"):
    """A cell's value from its XML; `where` (text, a function giving it, called only on a
    damaged cell, or (path, sheet, ref)) names the cell in the error."""
    kind = cell.attrs.get("t", "n")
    raw = cell.raw_value
    if kind == "s" and raw is not None:
        try:
            index = int(raw)
            if index >= 0:
                return shared[index]
        except (ValueError, IndexError):
            pass
        raise WorkbookError(f"{_named(where)} refers to shared string {raw[:20]!r}, which the file does not have; "
                            "the file is damaged") from None
    if kind == "inlineStr":
        return cell.inline
    if raw is None:
        return None
    if raw == "" and kind == "n":
        # An empty cached value: XlsxWriter writes <v></v> for a formula whose value is blank
        # ("recalculate me"), and Excel reads it as blank.
        return None
    if kind in ("str", "e"):
        return unescape_data(raw)
    if kind == "b":
        if raw.strip() not in ("0", "1"):
            raise WorkbookError(f"{_named(where)} is a boolean holding {raw[:20]!r}; the file is damaged")
        return raw.strip() == "1"
    if kind == "d":
        try:
            moment = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            raise WorkbookError(f"{_named(where)} is a date holding {raw[:20]!r}; the file is damaged") from None
        return (moment - EXCEL_EPOCH).total_seconds() / 86400
    try:
        number = float(raw)
    except ValueError:
        raise WorkbookError(f"{_named(where)} is a number holding {raw[:20]!r}; the file is damaged") from None
    if not math.isfinite(number):
        raise WorkbookError(f"{_named(where)} holds {raw[:20]!r}, which no spreadsheet can store; the file is damaged")
    return number


def _named(where) -> str:
    """`where` as text: given as text, as a function giving it, or as (path, sheet, ref)."""
    if isinstance(where, tuple):
        path, sheet, ref = where
        return f"{path.name}: {sheet}!{ref}"
    return where() if callable(where) else where


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


def hardened_parser() -> expat.XMLParserType:
    """A namespace-aware expat parser that refuses any DOCTYPE (names come as "uri local prefix")."""
    return _parser()


def split_name(name: str) -> tuple[str, str, str]:
    """(namespace, local name, prefix) of a name from `hardened_parser`."""
    return _split_name(name)


def parse_xml(parser, data: bytes, where: str) -> None:
    """Run `parser` over `data`; WorkbookError naming `where` if it is not well-formed or refused."""
    _parse(parser, data, where)


def crc32(data: bytes) -> int:
    return zlib.crc32(data)


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


def _qname_info(qname: str) -> tuple[str | None, str]:
    """(local name if the element is SpreadsheetML's, else None; the prefix the writer used)."""
    ns, local, prefix = _split_name(qname)
    return (local if ns in MAIN_NS else None), prefix


def parse_sheet(name: str, path: str, xml: str | bytes) -> Sheet:
    """The cells, rows and used range of a worksheet part, with the parser's positions kept for
    surgical rewrites (the exact byte spans are worked out only for the cells rewritten).

    Every workbook read goes through here for every cell, so the handlers do the least they can:
    element names are split once per distinct name, spans are not computed, values stay text."""
    data = xml if isinstance(xml, bytes) else xml.encode("utf-8")
    text = xml if isinstance(xml, str) else data.decode("utf-8")  # byte offsets are rewritten as UTF-8
    sheet = Sheet(name, path, text, raw=data)
    cells, rows = sheet.cells, sheet.rows
    parser = _parser()
    qnames: dict = {}
    stack: list = []            # local names of open elements; None for another namespace's
    masters: dict = {}          # shared formula index -> (text, ref of the cell that defines it)
    # The open <c>, <row> and the parts of the cell being read.
    ref = None
    attrs_c: dict = {}
    c_start = c_row = c_col = 0
    c_prefix = ""
    f_parts = f_attrs = f_at = v_parts = inline = None
    f_start = 0
    inline_depth = 0            # open elements inside <is>
    row_number = last_col = row_start = 0
    row_prefix = ""
    max_row = max_col = 0
    bounds: dict = {}

    def start(qname, attrs):
        nonlocal ref, attrs_c, c_start, c_row, c_col, c_prefix, f_parts, f_attrs, f_at, v_parts, inline, f_start
        nonlocal inline_depth, row_number, last_col, row_start, row_prefix
        info = qnames.get(qname)
        if info is None:
            info = qnames[qname] = _qname_info(qname)
        local = info[0]
        parent = stack[-1] if stack else None
        stack.append(local)
        if local is None:
            return
        if inline_depth:
            inline_depth += 1
            inline.start(local)
        elif local == "c":
            if parent != "row":
                return
            # (an extension attribute keeps its "namespace name" key, which no lookup here asks for)
            r = attrs.get("r")
            if r is None:   # writers may leave out r: the next column of the row
                r = f"{col_letters(last_col + 1)}{row_number}"
            r = r.upper()
            c_row, c_col = split_ref(r)
            last_col = c_col
            attrs["r"] = r
            ref, attrs_c, c_start, c_prefix = r, attrs, parser.CurrentByteIndex, info[1]
            f_parts = f_attrs = f_at = v_parts = inline = None
        elif parent == "c" and ref is not None:
            if local == "v":
                v_parts = []
            elif local == "f":
                f_attrs = attrs
                f_parts = []
                f_start = parser.CurrentByteIndex
            elif local == "is":
                inline = _TextCollector()
                inline_depth = 1
        elif local == "row" and parent == "sheetData":
            r = attrs.get("r", "")
            number = int(r) if r.isdigit() else row_number + 1
            if not 1 <= number <= MAX_ROW:
                raise WorkbookError(f"sheet {name!r}: row {number} lies outside Excel's grid")
            row_number, last_col, row_start, row_prefix = number, 0, parser.CurrentByteIndex, info[1]
        elif local == "sheetData" or local == "dimension":
            bounds[local] = parser.CurrentByteIndex

    def end(qname):
        nonlocal ref, f_at, inline_depth, max_row, max_col
        local = stack.pop()
        if local is None:
            return
        if inline_depth:
            inline_depth -= 1
            if inline_depth:
                inline.end(local)
            return
        if local == "c":
            if ref is None or not stack or stack[-1] != "row":
                return
            if ref in cells:
                raise WorkbookError(f"sheet {name!r}: cell {ref} appears twice; the file is damaged")
            formula = None
            if f_parts is not None:
                text = "".join(f_parts)
                if f_attrs.get("t") == "shared":
                    si = f_attrs.get("si")
                    if text:
                        masters[si] = (text, ref)
                        formula = text
                    elif si in masters:
                        formula = _expand_shared(masters[si][0], masters[si][1], ref)
                    else:
                        raise WorkbookError(f"sheet {name!r}: cell {ref} shares formula {si!r}, which no cell before it "
                                            "defines; the file is damaged")
                else:
                    formula = text if text or f_attrs.get("t") != "array" else None
            cells[ref] = CellXml(ref, attrs_c, formula, "".join(v_parts) if v_parts is not None else None,
                                 inline.value() if inline is not None else None, prefix=c_prefix, data=data,
                                 at=(c_start, parser.CurrentByteIndex), f_at=f_at, row=c_row, col=c_col)
            if c_row > max_row:
                max_row = c_row
            if c_col > max_col:
                max_col = c_col
            if len(cells) > MAX_CELLS:
                raise WorkbookError(f"sheet {name!r} has more than {MAX_CELLS:,} cells; refused")
            ref = None
        elif local == "f" and ref is not None and stack and stack[-1] == "c":
            f_at = (f_start, parser.CurrentByteIndex)
        elif local == "row" and stack and stack[-1] == "sheetData":
            rows[row_number] = RowXml(row_number, prefix=row_prefix, data=data, at=(row_start, parser.CurrentByteIndex))
        elif local == "sheetData" and "sheetData" in bounds:
            start_at = bounds["sheetData"]
            at = parser.CurrentByteIndex
            end_at = _element_end(data, start_at, at)
            tag_end = _start_tag_end(data, start_at)
            sheet.sheet_data = (tag_end, at if tag_end < end_at else end_at, start_at, end_at)
        elif local == "dimension" and "dimension" in bounds:
            sheet.dimension = (bounds["dimension"], _element_end(data, bounds["dimension"], parser.CurrentByteIndex))

    def chars(text):
        if ref is None or not stack:
            return
        top = stack[-1]
        if top == "v" and v_parts is not None:
            v_parts.append(text)
        elif top == "f" and f_parts is not None:
            f_parts.append(text)
        elif inline_depth:
            inline.text(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    _parse(parser, data, f"sheet {name!r} ({path})")
    sheet.max_row, sheet.max_col = max_row, max_col
    return sheet


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
    qnames: dict = {}

    def local_of(qname):
        local = qnames.get(qname)
        if local is None:
            local = qnames[qname] = _qname_info(qname)[0] or ""   # "": another namespace's element
        return local

    def start(qname, attrs):
        tag = local_of(qname)
        if tag == "si":
            current.append(_TextCollector())
        elif tag and current:
            current[-1].start(tag)

    def end(qname):
        tag = local_of(qname)
        if not tag or not current:
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


def _check_zip(path: Path, infos: list) -> None:
    total, seen = 0, set()
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


def read_stored(path: str | Path, data: bytes | None = None) -> list[zipparts.Stored]:
    """The members of the package at `path` as the archive stores them (compressed), after the
    checks every read makes (a regular file of sane size, a zip, no encrypted or exotic member,
    no zip bomb); WorkbookError otherwise. `data`: the file's bytes, already read; `path` then
    only names it."""
    path = Path(path)
    if data is None:
        with _open_regular(path) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    elif len(data) > MAX_FILE_BYTES:
        raise WorkbookError(f"{path.name}: {len(data):,} bytes, more than any model ({MAX_FILE_BYTES // (1024 * 1024)} MB); refused")
    try:
        stored = zipparts.read_archive(data)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
        raise WorkbookError(f"{path.name}: not an Excel workbook (not a zip package)") from None
    except zipparts.ZipError as exc:
        raise WorkbookError(f"{path.name}: damaged workbook ({str(exc)[:120]})") from None
    _check_zip(path, [m.info for m in stored])
    return stored


class SharedSheets:
    """Parsed sheets shared by content between the packages of a batch: the sheets named here
    (template content every model of a template carries unchanged, such as the blueprint, the
    largest part of a model) are parsed once per content and the parse reused for the next
    package holding the same bytes; equal bytes give an equal parse, so a reused sheet is what a
    parse would give. Shared sheets are read-only (no reader changes a parsed sheet). Holds the
    last `kept` contents, to bound a worker's memory."""

    def __init__(self, names, kept: int = 2):
        self.names, self.kept = frozenset(names), kept
        self._sheets: dict = {}    # (sheet name, part, bytes) -> Sheet

    def parse(self, name: str, path: str, data: bytes) -> Sheet:
        if name not in self.names:
            return parse_sheet(name, path, data)
        key = (name, path, data)
        sheet = self._sheets.get(key)
        if sheet is None:
            sheet = parse_sheet(name, path, data)
            if len(self._sheets) >= self.kept:
                self._sheets.pop(next(iter(self._sheets)))
            self._sheets[key] = sheet
        return sheet


def read(path: str | Path, data: bytes | None = None, shared: SharedSheets | None = None) -> Package:
    """Every member of the package and the parsed sheets; WorkbookError if it is not a workbook.
    `data`: the file's bytes, already read (one reading of a file another process may replace
    meanwhile); `path` then only names it. `shared`: sheets parsed once per content for a batch."""
    path = Path(path)
    stored = read_stored(path, data)
    try:  # every member inflated and CRC-checked, also those a rewrite copies as stored
        members = {m.name: zipparts.inflate(m) for m in stored}
    except zipparts.ZipError as exc:
        raise WorkbookError(f"{path.name}: damaged workbook ({str(exc)[:120]})") from None
    infos = [m.info for m in stored]
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
            sheets[name] = (shared.parse if shared is not None else parse_sheet)(name, member, members[member])
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
    return Package(path, members, infos, sheets, names, shared, custom, local_names, states,
                   {m.name: m for m in stored})


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
    elif isinstance(value, str) and value in EXCEL_ERRORS and not isinstance(value, ErrorLikeText):
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
    return rewrite_sheet_bytes(sheet, changes, typed).decode("utf-8")


def rewrite_sheet_bytes(sheet: Sheet, changes: dict, typed: frozenset = frozenset()) -> bytes:
    """`rewrite_sheet`, as the bytes of the part."""
    return _rewrite(sheet, changes, typed)[0]


def _rewrite(sheet: Sheet, changes: dict, typed: frozenset) -> tuple[bytes, dict | None]:
    """The rewritten part, and where each rewritten cell's new `<c>` element lies in it ({ref:
    (start, end)}; None when cells were inserted, which moves rows and the dimension)."""
    if not sheet.rewritable:
        raise WorkbookError(f"sheet {sheet.name!r} was rewritten without a parse of the result; parse it before "
                            "rewriting it again")
    data = sheet.data()
    edits: list = []           # (start, end, bytes, ref of the cell rewritten or None), in order of position
    new_cells: dict = {}       # row -> [(col, ref, value)]
    for ref, value in changes.items():
        cell = sheet.cells.get(ref)
        if cell is None:
            row, col = split_ref(ref)
            new_cells.setdefault(row, []).append((col, ref, value))
            continue
        edits.append((cell.span[0], cell.span[1], _cell_bytes(cell, value, data, ref not in typed), ref))
    max_row, max_col = sheet.max_row, sheet.max_col
    if new_cells:
        if sheet.sheet_data is None:
            raise WorkbookError(f"sheet {sheet.name!r} has no sheetData; the file is damaged")
        for row, cells in new_cells.items():
            edits.extend((*edit, None) for edit in _insert_cells(sheet, data, row, sorted(cells)))
            max_row = max(max_row, row)
            max_col = max(max_col, max(c for c, _, _ in cells))
        if sheet.dimension and (max_row, max_col) != (sheet.max_row, sheet.max_col):
            start, end = sheet.dimension
            tag = data[start:end]
            grown = re.sub(rb'(\sref\s*=\s*)("[^"]*"|\'[^\']*\')',
                           lambda m: m.group(1) + f'"A1:{col_letters(max_col)}{max_row}"'.encode(), tag, count=1)
            edits.append((start, end, grown, None))
    edits.sort(key=lambda e: (e[0], e[1]))
    out, pos, at = [], 0, 0
    placed: dict | None = {} if not new_cells else None
    for start, end, replacement, ref in edits:
        if start < pos:
            raise WorkbookError(f"sheet {sheet.name!r}: overlapping cell edits; the file is damaged")
        out.append(data[pos:start])
        at += start - pos
        if placed is not None:
            placed[ref] = (at, at + len(replacement))
        out.append(replacement)
        at += len(replacement)
        pos = end
    out.append(data[pos:])
    return b"".join(out), placed


def rewritten_sheet(sheet: Sheet, changes: dict) -> Sheet:
    """The sheet with the cells in `changes` (ref -> value) rewritten, verified from the bytes
    produced, and its cells as a reader of those bytes finds them.

    Each rewritten `<c>` element is parsed back from the new part in its own context: the part's
    bytes up to the start of sheetData's content (which declare the namespaces), the new elements
    each in its row, and the end tags of sheetData and of the root. Each element
    replaces exactly the span of a complete `<c>` element of a part that parsed well-formed, so
    the new part is well-formed when every new element is, and the cells read back are those a
    parse of the whole part would give, at a fraction of its cost (the other cells are the ones
    already read). A sheet that gains cells (rows and the dimension move), or whose rewritten
    cells do not parse alone (a follower of a shared formula), is parsed whole instead.

    The sheet returned reads like any other, but its unchanged cells keep the byte offsets of the
    part they were read from: it is not to be rewritten again (`_rewrite` refuses)."""
    data, placed = _rewrite(sheet, changes, frozenset())
    if placed is None or sheet.sheet_data is None or sheet.sheet_data[0] >= sheet.sheet_data[3]:
        return parse_sheet(sheet.name, sheet.path, data)
    content_start, content_end = sheet.sheet_data[0], sheet.sheet_data[1]
    grown = len(data) - len(sheet.data())
    parts = [data[:content_start]]
    for ref, (start, end) in placed.items():
        old = sheet.cells[ref]
        p = f"{old.prefix}:" if old.prefix else ""
        parts.append(f'<{p}row r="{old.row}">'.encode() + data[start:end] + f"</{p}row>".encode())
    # sheetData's end tag and the root's: what follows sheetData (validations, formatting, up to
    # ~70 KB) is the part's own unchanged bytes, already parsed, and declares no namespace for it
    parts.append(data[content_end + grown:sheet.sheet_data[3] + grown] + data[data.rindex(b"</"):])
    try:
        alone = parse_sheet(sheet.name, sheet.path, b"".join(parts))
    except WorkbookError:
        return parse_sheet(sheet.name, sheet.path, data)   # the whole part decides: it raises if it is damaged
    if set(alone.cells) != set(placed):
        raise WorkbookError(f"sheet {sheet.name!r}: a rewritten cell does not read back as itself; the file would be damaged")
    cells = dict(sheet.cells)
    cells.update(alone.cells)
    new = Sheet(sheet.name, sheet.path, None, cells, sheet.rows, sheet.sheet_data, sheet.dimension,
                sheet.max_row, sheet.max_col, raw=data)
    new.rewritable = False
    return new


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


def append_to_root(data: bytes, local: str, attributes: dict) -> bytes:
    """`data` with an empty element `local` (in the root element's namespace and prefix, with
    `attributes`) added as the root's last child; every other byte kept."""
    parser = _parser()
    depth = [0]
    found: list = []

    def start(qname, attrs):
        if depth[0] == 0:
            found.append(_split_name(qname)[2])
        depth[0] += 1

    def end(qname):
        depth[0] -= 1
        if depth[0] == 0:
            found.append(parser.CurrentByteIndex)
    parser.StartElementHandler, parser.EndElementHandler = start, end
    _parse(parser, data, "a package part")
    prefix, at = found[0], found[1]
    tag = f"{prefix}:{local}" if prefix else local
    element = f"<{tag}" + "".join(f' {k}="{escape_attribute(v)}"' for k, v in attributes.items()) + "/>"
    if data[at:at + 2] != b"</":     # an empty root (<Types/>): no workbook has one
        raise WorkbookError("a package part that lists nothing; the file is damaged")
    return data[:at] + element.encode("utf-8") + data[at:]


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


def write(package: Package, replaced: dict, target: Path, dropped: set | frozenset = frozenset(),
          added: dict | None = None) -> list[zipparts.Stored]:
    """A copy of the package with the members in `replaced` (name -> bytes) swapped, those in
    `dropped` left out and those in `added` appended, written to `target`. Every other member
    keeps its place and its stored bytes: it is copied as the archive holds it, never inflated
    and compressed again. Returns the members as written, for `verify_written`."""
    members = []
    for info in package.infos:
        name = info.filename
        if name in dropped:
            continue
        stored = package.stored.get(name)
        if name in replaced and (stored is None or replaced[name] != package.members[name]):
            members.append(zipparts.pack(name, replaced[name], like=info))
        elif stored is not None:
            members.append(stored)
        else:
            members.append(zipparts.pack(name, package.members[name], like=info))
    for name, data in (added or {}).items():
        if name in package.members and name not in dropped:
            raise WorkbookError(f"{package.path.name}: cannot add part {name}, which the package already has")
        members.append(zipparts.pack(name, data))
    with open(target, "wb") as out:
        zipparts.write_archive(out, members)
    return members


def verify_written(target: Path, written: list[zipparts.Stored], fresh) -> dict:
    """Read the archive at `target` back and confirm it holds exactly `written`: the same members
    in the same order, each with the stored bytes, CRC and sizes meant. The members named in
    `fresh` (the parts this write made) are inflated again, CRC checked, and returned as
    {name: content} for the caller to re-parse; the others are the original's stored bytes, which
    the read that loaded them had checked. WorkbookError on any difference."""
    where = Path(target).name
    try:
        stored = read_stored(target)
        if [m.name for m in stored] != [m.name for m in written]:
            raise WorkbookError(f"{where}: the written package does not hold the parts meant")
        for got, meant in zip(stored, written):
            if (got.raw != meant.raw or got.info.CRC != meant.info.CRC or got.info.file_size != meant.info.file_size
                    or got.info.compress_type != meant.info.compress_type):
                raise WorkbookError(f"{where}: part {got.name} was not written as meant")
        return {m.name: zipparts.inflate(m) for m in stored if m.name in fresh}
    except zipparts.ZipError as exc:
        raise WorkbookError(f"{where}: the written package is damaged ({exc})") from None


def excel_date(day: dt.date) -> float:
    return float((dt.datetime(day.year, day.month, day.day) - EXCEL_EPOCH).days)


def from_excel_date(serial: float) -> dt.date:
    return (EXCEL_EPOCH + dt.timedelta(days=float(serial))).date()
