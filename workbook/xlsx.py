"""Read and surgically rewrite an .xlsm/.xlsx at the level of its zip members and cell XML.

Nothing here round-trips the file through a library that drops what it does not understand:
cells are found in the sheet XML and only the `<c>` elements being changed are rewritten; every
other byte of every member stays as it was.
"""
from __future__ import annotations

import datetime as dt
import html
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_MEMBER_BYTES = 64 * 1024 * 1024       # one uncompressed part
MAX_TOTAL_BYTES = 256 * 1024 * 1024       # the whole package, uncompressed
MAX_RATIO = 100                           # expansion over the compressed size
MAX_CELLS = 200_000
EXCEL_EPOCH = dt.datetime(1899, 12, 30)


class WorkbookError(ValueError):
    """A file that is not a usable workbook; the message is one readable sentence."""


_CELL = re.compile(r'<c r="(?P<ref>[A-Z]{1,3}[0-9]+)"(?P<attrs>[^>]*?)(?:/>|>(?P<body>.*?)</c>)', re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_F = re.compile(r"<f(?P<attrs>[^>]*?)(?:/>|>(?P<text>.*?)</f>)", re.S)
_V = re.compile(r"<v>(?P<v>.*?)</v>", re.S)
_IS = re.compile(r"<t[^>]*>(.*?)</t>", re.S)
_REF = re.compile(r"^([A-Z]+)([0-9]+)$")
_RELATIVE_REF = re.compile(r"(?<![A-Za-z_\d.])(\$?)([A-Z]{1,3})(\$?)(\d+)(?![\d(])")
_QUOTED = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'')


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
    match = _REF.match(ref)
    return int(match[2]), col_index(match[1])


@dataclass
class CellXml:
    ref: str
    attrs: dict
    formula: str | None          # formula text (shared formulas expanded), without "="
    shared_master: bool
    raw_value: str | None
    inline: str | None
    span: tuple[int, int]        # where the <c> element sits in the sheet XML


@dataclass
class Sheet:
    name: str
    path: str
    xml: str
    cells: dict = field(default_factory=dict)  # ref -> CellXml


@dataclass
class Package:
    path: Path
    members: dict                 # name -> bytes, in archive order
    infos: list                   # zipfile.ZipInfo, in archive order
    sheets: dict                  # sheet name -> Sheet
    names: dict                   # defined name -> formula text
    shared: list
    custom: dict

    def value(self, sheet: str, ref: str):
        """A cell's value as Excel would show it: number, text, bool, error text, or None."""
        cell = self.sheets[sheet].cells.get(ref)
        if cell is None:
            return None
        return decode_value(cell, self.shared)

    def name_cells(self, name: str) -> list[tuple[str, str]]:
        """(sheet, ref) for each cell a defined name covers."""
        text = self.names.get(name)
        if text is None:
            raise WorkbookError(f"{self.path.name}: the defined name {name} is missing; is this one of our templates?")
        match = re.match(r"^'?(?P<sheet>.+?)'?!\$?(?P<c1>[A-Z]+)\$?(?P<r1>\d+)(?::\$?(?P<c2>[A-Z]+)\$?(?P<r2>\d+))?$", text)
        if not match:
            raise WorkbookError(f"{self.path.name}: the defined name {name} does not point at cells ({text})")
        sheet = match["sheet"].replace("''", "'")
        if sheet not in self.sheets:
            raise WorkbookError(f"{self.path.name}: the defined name {name} points at a missing sheet {sheet!r}")
        r1, r2 = int(match["r1"]), int(match["r2"] or match["r1"])
        c1, c2 = col_index(match["c1"]), col_index(match["c2"] or match["c1"])
        return [(sheet, f"{col_letters(c)}{r}") for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)]


def decode_value(cell: CellXml, shared: list):
    kind = cell.attrs.get("t", "n")
    if kind == "inlineStr":
        return cell.inline
    if cell.raw_value is None:
        return None
    raw = html.unescape(cell.raw_value)
    if kind == "s":
        return shared[int(raw)]
    if kind in ("str", "e"):
        return raw
    if kind == "b":
        return raw == "1"
    try:
        return float(raw)
    except ValueError:
        return raw


def _check_zip(path: Path, archive: zipfile.ZipFile) -> None:
    total = 0
    for info in archive.infolist():
        if info.file_size > MAX_MEMBER_BYTES:
            raise WorkbookError(f"{path.name}: part {info.filename} would expand to {info.file_size:,} bytes; refused")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1_000_000:
            raise WorkbookError(f"{path.name}: part {info.filename} expands {info.file_size // info.compress_size}x; "
                                "refused as a likely zip bomb")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise WorkbookError(f"{path.name}: expands to {total:,} bytes; refused")


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


def parse_sheet(name: str, path: str, xml: str) -> Sheet:
    sheet = Sheet(name, path, xml)
    masters = {}
    for match in _CELL.finditer(xml):
        attrs = dict(_ATTR.findall(match["attrs"]))
        body = match["body"] or ""
        formula, master = None, False
        f = _F.search(body)
        if f:
            fattrs = dict(_ATTR.findall(f["attrs"]))
            text = html.unescape(f["text"]) if f["text"] is not None else None
            if fattrs.get("t") == "shared":
                si = fattrs.get("si")
                if text:
                    masters[si] = (text, match["ref"])
                    formula, master = text, True
                elif si in masters:
                    formula = _expand_shared(masters[si][0], masters[si][1], match["ref"])
            else:
                formula = text
        v = _V.search(body)
        inline = None
        if attrs.get("t") == "inlineStr":
            inline = html.unescape("".join(_IS.findall(body)))
        sheet.cells[match["ref"]] = CellXml(match["ref"], attrs, formula, master, v["v"] if v else None, inline,
                                            match.span())
        if len(sheet.cells) > MAX_CELLS:
            raise WorkbookError(f"sheet {name!r} has more than {MAX_CELLS:,} cells; refused")
    return sheet


def read(path: str | Path) -> Package:
    """Every member of the package and the parsed sheets; WorkbookError if it is not a workbook."""
    path = Path(path)
    if not path.exists():
        raise WorkbookError(f"{path}: no such file")
    if path.is_dir():
        raise WorkbookError(f"{path}: is a folder, not a workbook")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise WorkbookError(f"{path.name}: not an Excel workbook (not a zip package)") from None
    with archive:
        _check_zip(path, archive)
        try:
            infos = archive.infolist()
            members = {info.filename: archive.read(info.filename) for info in infos}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise WorkbookError(f"{path.name}: damaged workbook ({exc})") from None
    if "xl/workbook.xml" not in members:
        raise WorkbookError(f"{path.name}: not an Excel workbook (no xl/workbook.xml)")
    try:
        workbook = members["xl/workbook.xml"].decode("utf-8")
        rels = members.get("xl/_rels/workbook.xml.rels", b"").decode("utf-8")
    except UnicodeDecodeError:
        raise WorkbookError(f"{path.name}: damaged workbook (workbook.xml is not UTF-8)") from None
    targets = {m[0]: m[1] for m in re.findall(r'<Relationship[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"', rels)}
    targets.update({m[1]: m[0] for m in re.findall(r'<Relationship[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"', rels)})
    sheets = {}
    for attrs in re.findall(r"<sheet ([^>]*?)/>", workbook):
        a = dict(re.findall(r'([\w:]+)="([^"]*)"', attrs))
        name = html.unescape(a.get("name", ""))
        target = targets.get(a.get("r:id", ""), "")
        member = target.lstrip("/") if target.startswith("/") else "xl/" + target
        if member not in members:
            raise WorkbookError(f"{path.name}: sheet {name!r} has no part {member}; the file is damaged")
        try:
            sheets[name] = parse_sheet(name, member, members[member].decode("utf-8"))
        except UnicodeDecodeError:
            raise WorkbookError(f"{path.name}: sheet {name!r} is not UTF-8 XML; the file is damaged") from None
    names = {html.unescape(n): html.unescape(t) for n, t in
             re.findall(r'<definedName name="([^"]+)"[^>]*>(.*?)</definedName>', workbook, re.S)}
    shared = []
    if "xl/sharedStrings.xml" in members:
        text = members["xl/sharedStrings.xml"].decode("utf-8")
        for si in re.findall(r"<si>(.*?)</si>", text, re.S):
            shared.append(html.unescape("".join(re.findall(r"<t[^>]*>(.*?)</t>", si, re.S))))
    custom = {}
    if "docProps/custom.xml" in members:
        text = members["docProps/custom.xml"].decode("utf-8")
        for name, value in re.findall(r'<property[^>]*name="([^"]+)"[^>]*>\s*<vt:\w+>(.*?)</vt:\w+>', text, re.S):
            custom[html.unescape(name)] = html.unescape(value)
    return Package(path, members, infos, sheets, names, shared, custom)


def _xml_text(text: str) -> str:
    return html.escape(text, quote=False)


def cell_xml(cell: CellXml, value, original: str) -> str:
    """The `<c>` element for `cell` holding `value`: its style and its formula element (from the
    `original` XML) kept, its cached value (or, for an input, its value) replaced."""
    attrs = {k: v for k, v in cell.attrs.items() if k not in ("t",)}
    body = ""
    if cell.formula is not None:
        original = _F.search(original)
        body += original.group(0) if original else f"<f>{_xml_text(cell.formula)}</f>"
    if value is None:
        kind, v = None, None
    elif isinstance(value, bool):
        kind, v = "b", "1" if value else "0"
    elif isinstance(value, (int, float)):
        kind, v = None, repr(float(value)) if not float(value).is_integer() else str(int(value))
    elif isinstance(value, str) and value in ("#N/A", "#VALUE!", "#DIV/0!", "#NUM!", "#REF!", "#NAME?", "#NULL!"):
        kind, v = "e", value
    elif cell.formula is not None:
        kind, v = "str", _xml_text(value)
    else:
        kind, v = "inlineStr", None
        body += f"<is><t>{_xml_text(value)}</t></is>"
    if kind:
        attrs["t"] = kind
    if v is not None:
        body += f"<v>{v}</v>"
    attr_text = "".join(f' {k}="{val}"' for k, val in attrs.items())
    return f'<c r="{cell.ref}"{attr_text}>{body}</c>' if body else f'<c r="{cell.ref}"{attr_text}/>'


def rewrite_sheet(sheet: Sheet, changes: dict, typed: frozenset = frozenset()) -> str:
    """The sheet XML with the cells in `changes` (ref -> value) rewritten, everything else as it
    was. Cells in `typed` become plain values, as when an analyst types over a formula."""
    out, pos = [], 0
    for ref in sorted(changes, key=lambda r: sheet.cells[r].span[0]):
        cell = sheet.cells[ref]
        start, end = cell.span
        if ref in typed:
            cell = CellXml(ref, cell.attrs, None, False, None, None, cell.span)
        out.append(sheet.xml[pos:start])
        out.append(cell_xml(cell, changes[ref], sheet.xml[start:end]))
        pos = end
    out.append(sheet.xml[pos:])
    return "".join(out)


def type_values(package: Package, values: dict, target: Path) -> None:
    """A copy of the package with values typed into cells ({(sheet, ref): value}), formulas there
    replaced, as an analyst would in Excel (cached values elsewhere are not recomputed)."""
    by_sheet: dict = {}
    for (sheet, ref), value in values.items():
        by_sheet.setdefault(sheet, {})[ref] = value
    replaced = {package.sheets[s].path: rewrite_sheet(package.sheets[s], cells, frozenset(cells)).encode("utf-8")
                for s, cells in by_sheet.items()}
    write(package, replaced, target)


def write(package: Package, replaced: dict, target: Path) -> None:
    """A copy of the package with the members in `replaced` (name -> bytes) swapped, every other
    member byte-identical and in the same order, written to `target`."""
    with zipfile.ZipFile(target, "w") as out:
        for info in package.infos:
            data = replaced.get(info.filename, package.members[info.filename])
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type = info.compress_type
            copy.external_attr = info.external_attr
            out.writestr(copy, data)


def excel_date(day: dt.date) -> float:
    return float((dt.datetime(day.year, day.month, day.day) - EXCEL_EPOCH).days)


def from_excel_date(serial: float) -> dt.date:
    return (EXCEL_EPOCH + dt.timedelta(days=float(serial))).date()
