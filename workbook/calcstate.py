"""What the last refresh computed from, kept in the model, so the next one recomputes only what changed.

After a refresh writes a model, each formula cell caches what the evaluator computed from the
cells it reads. The record kept beside the sheets (a custom XML part: Excel keeps such parts
through its saves, no sheet shows it) notes, for every cell a formula reads and every formula
cell, a digest of what it held (formula, kind of value, value), and for every sheet part the
CRC-32 and size it was written with. The next refresh compares:

- a sheet part whose CRC and size are as written holds exactly what it held: nothing to compare;
- in any other sheet (the analyst typed a driver, edited or typed over a formula, Excel or
  LibreOffice saved the file and recomputed), a cell whose digest differs has changed.

Only the formula cells downstream of a changed cell (and of the cells the refresh itself writes)
are recomputed; every other formula cell keeps its cached value, which the last refresh computed
from the very inputs it still has. Anything that could make the record mean something else —
another sheet list, other defined names, another template or evaluator version, the shared
strings changed, no record or a damaged one — and the refresh recomputes everything, as a first
refresh does (a LibreOffice save drops the part; Excel keeps it).

The record also carries named fingerprints (`fingerprints`): what an expensive result that is not a
formula was computed from, so it is recomputed only when that changes (the EPS sensitivity table).
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from xml.parsers import expat

from udfs.constants import EXCEL_ERRORS

from . import xlsx
from .layout import TEMPLATE_VERSION
from .xlcalc import Evaluator, same_stored, stored_value

# Bump when the evaluator or a worksheet function comes to compute something else from the same
# cells: a record made by another version is not trusted, and that refresh recomputes everything.
CALC_VERSION = "1"
NAMESPACE = "urn:equity-research-model:refresh-record"
ROOT = "refreshRecord"
RECORD_FORMAT = "1"
DIGEST_BYTES = 8
CUSTOM_XML_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/customXml"
CUSTOM_XML_PROPS_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/customXmlProps"
CUSTOM_XML_PROPS_CONTENT = "application/vnd.openxmlformats-officedocument.customXmlProperties+xml"
DATASTORE_NS = "http://schemas.openxmlformats.org/officeDocument/2006/customXml"
RELATIONSHIP_ID = "rIdRefreshRecord"
# Our own part's fixed identity in the custom XML data store (Excel lists parts by this id).
ITEM_ID = "{5E1F0C3A-6B0D-4C8E-9A57-2D3B1F4E8C61}"
_ITEM = re.compile(r"customXml/item(\d+)\.xml")


@dataclass
class Record:
    structure: str                                    # digest of what the record's meaning rests on
    parts: dict = field(default_factory=dict)         # part name -> (CRC-32, size) as written
    digests: dict = field(default_factory=dict)       # sheet name -> {ref: digest}
    fingerprints: dict = field(default_factory=dict)  # name -> (value, detail)


def structure_digest(package: xlsx.Package) -> str:
    """What the record's meaning rests on: the sheets and their parts in order, every defined
    name (workbook and sheet level), the template version and the evaluator's version."""
    h = hashlib.blake2b(digest_size=16)
    for part in (CALC_VERSION, TEMPLATE_VERSION):
        h.update(part.encode() + b"\x1e")
    for name, sheet in package.sheets.items():
        h.update(f"{name}\x1f{sheet.path}\x1e".encode("utf-8", "surrogatepass"))
    for name, text in sorted(package.names.items()):
        h.update(f"{name}\x1f{text}\x1e".encode("utf-8", "surrogatepass"))
    for (scope, name), text in sorted(package.local_names.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        h.update(f"{scope}\x1f{name}\x1f{text}\x1e".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def cell_digest(package: xlsx.Package, sheet: str, ref: str, read_value) -> bytes:
    """A digest of what a cell holds for the evaluator: its formula, the kind of its value and
    the value (`read_value(package, sheet, ref)`, as the evaluator reads it back)."""
    cell = package.sheets[sheet].cells.get(ref) if sheet in package.sheets else None
    if cell is None:
        text = "-"
    else:
        value = read_value(package, sheet, ref)
        if value is None:
            kind, shown = "0", ""
        elif isinstance(value, bool):
            kind, shown = "b", "1" if value else "0"
        elif isinstance(value, (int, float)):
            kind, shown = "n", repr(float(value))
        elif isinstance(value, str) and value in EXCEL_ERRORS and not isinstance(value, xlsx.ErrorLikeText):
            kind, shown = "e", value
        else:
            kind, shown = "s", str(value)
        text = f"{cell.formula if cell.formula is not None else ''}\x1f{kind}\x1f{shown}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def _strings_part(package: xlsx.Package) -> str | None:
    rels = xlsx.parse_rels(package.members.get(xlsx.rels_name("xl/workbook.xml"), b"<Relationships/>"))
    for target, kind, _ in rels.values():
        if kind.endswith("/sharedStrings"):
            return xlsx.part_target("xl/workbook.xml", target)
    return "xl/sharedStrings.xml" if "xl/sharedStrings.xml" in package.members else None


def _as_written(package: xlsx.Package, part: str) -> tuple[int, int] | None:
    stored = package.stored.get(part)
    return (stored.info.CRC, stored.info.file_size) if stored is not None else None


# ------------------------------------------------------------------------------------------------
# The record as a part of the package
# ------------------------------------------------------------------------------------------------
def record_part(package: xlsx.Package) -> str | None:
    """The name of the part holding our record, or None."""
    for name in package.members:
        if _ITEM.fullmatch(name) and NAMESPACE.encode() in package.members[name][:512]:
            return name
    return None


def record_parts(package: xlsx.Package) -> set:
    """Every part that belongs to the record (to drop it from a copy that is not a model)."""
    item = record_part(package)
    if item is None:
        return set()
    number = _ITEM.fullmatch(item)[1]
    return {item, xlsx.rels_name(item), f"customXml/itemProps{number}.xml"}


def load(package: xlsx.Package) -> Record | None:
    """The record the last refresh left, or None (none, damaged, or made for another structure)."""
    item = record_part(package)
    if item is None:
        return None
    try:
        record = _parse(package.members[item])
    except (xlsx.WorkbookError, ValueError, KeyError, TypeError):
        return None   # a damaged record is no record: everything is recomputed
    return record if record is not None and record.structure == structure_digest(package) else None


def _parse(data: bytes) -> Record | None:
    record: list = []
    parser = xlsx.hardened_parser()

    def start(qname, attrs):
        ns, local, _ = xlsx.split_name(qname)
        if ns != NAMESPACE:
            return
        if local == ROOT:
            if attrs.get("format") != RECORD_FORMAT:
                raise ValueError("another record format")
            record.append(Record(attrs["structure"]))
        elif local == "part" and record:
            record[0].parts[attrs["name"]] = (int(attrs["crc"]), int(attrs["size"]))
        elif local == "cells" and record:
            refs = attrs["refs"].split()
            raw = base64.b64decode(attrs["digests"], validate=True)
            if len(raw) != DIGEST_BYTES * len(refs):
                raise ValueError("digests do not match the cells")
            record[0].digests[attrs["sheet"]] = {
                ref: raw[i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES] for i, ref in enumerate(refs)}
        elif local == "fingerprint" and record:
            record[0].fingerprints[attrs["name"]] = (attrs["value"], attrs.get("detail", ""))
    parser.StartElementHandler = start
    xlsx.parse_xml(parser, data, "the refresh record")
    return record[0] if record else None


def _xml(record: Record) -> bytes:
    attr = xlsx.escape_attribute
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n',
             f'<{ROOT} xmlns="{NAMESPACE}" format="{RECORD_FORMAT}" structure="{attr(record.structure)}">']
    for name, (crc, size) in record.parts.items():
        lines.append(f'<part name="{attr(name)}" crc="{crc}" size="{size}"/>')
    for sheet, digests in record.digests.items():
        refs = sorted(digests, key=xlsx.split_ref)
        raw = b"".join(digests[ref] for ref in refs)
        lines.append(f'<cells sheet="{attr(sheet)}" refs="{" ".join(refs)}" '
                     f'digests="{base64.b64encode(raw).decode("ascii")}"/>')
    for name, (value, detail) in record.fingerprints.items():
        lines.append(f'<fingerprint name="{attr(name)}" value="{attr(value)}" detail="{attr(detail)}"/>')
    lines.append(f"</{ROOT}>")
    return "".join(lines).encode("utf-8")


def placed(package: xlsx.Package, record: Record) -> tuple[dict, dict]:
    """(replaced parts, added parts) that put `record` into the package: the record part itself
    when the package has one, else a new custom XML part with its properties part, its
    relationship from the workbook and its content type."""
    data = _xml(record)
    item = record_part(package)
    if item is not None:
        return {item: data}, {}
    numbers = [int(m[1]) for m in map(_ITEM.fullmatch, package.members) if m]
    number = max(numbers, default=0) + 1
    item = f"customXml/item{number}.xml"
    props = f"customXml/itemProps{number}.xml"
    added = {
        item: data,
        props: ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
                f'<ds:datastoreItem ds:itemID="{ITEM_ID}" xmlns:ds="{DATASTORE_NS}"><ds:schemaRefs>'
                f'<ds:schemaRef ds:uri="{NAMESPACE}"/></ds:schemaRefs></ds:datastoreItem>').encode("utf-8"),
        xlsx.rels_name(item): ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                               f'<Relationships xmlns="{xlsx.PKG_REL_NS}"><Relationship Id="rId1" '
                               f'Type="{CUSTOM_XML_PROPS_TYPE}" Target="itemProps{number}.xml"/></Relationships>'
                               ).encode("utf-8"),
    }
    workbook_rels = xlsx.rels_name("xl/workbook.xml")
    rels = xlsx.parse_rels(package.members[workbook_rels], workbook_rels)
    rid = RELATIONSHIP_ID
    while rid in rels:
        rid += "x"
    replaced = {
        workbook_rels: xlsx.append_to_root(package.members[workbook_rels], "Relationship",
                                           {"Id": rid, "Type": CUSTOM_XML_TYPE, "Target": f"../{item}"}),
        xlsx.CONTENT_TYPES: xlsx.append_to_root(package.members[xlsx.CONTENT_TYPES], "Override",
                                                {"PartName": f"/{props}", "ContentType": CUSTOM_XML_PROPS_CONTENT}),
    }
    return replaced, added


# ------------------------------------------------------------------------------------------------
# What changed since the record, and the record after a refresh
# ------------------------------------------------------------------------------------------------
class Tracker:
    """The cells of `package` that changed since the last refresh's record, for the cells that
    matter (`cells`: every formula cell and every cell a formula reads), and the record to
    leave after this refresh. `read_value(package, sheet, ref)` is how the evaluator reads a cell."""

    def __init__(self, package: xlsx.Package, cells: set, read_value):
        self.package, self.read_value = package, read_value
        self.by_sheet: dict = {}
        for sheet, ref in cells:
            self.by_sheet.setdefault(sheet, set()).add(ref)
        self.record = load(package)
        self.current: dict = {}    # sheet -> {ref: digest} for sheets compared cell by cell

    def changed(self) -> set | None:
        """The cells that changed since the record; None when there is no usable record
        (everything is to be recomputed)."""
        if self.record is None:
            return None
        strings = _strings_part(self.package)
        strings_same = strings is None or self.record.parts.get(strings) == _as_written(self.package, strings)
        out = set()
        for name, sheet in self.package.sheets.items():
            if strings_same and self.record.parts.get(sheet.path) == _as_written(self.package, sheet.path):
                continue
            old = self.record.digests.get(name, {})
            now = self.current[name] = {ref: cell_digest(self.package, name, ref, self.read_value)
                                        for ref in set(old) | self.by_sheet.get(name, set())}
            out.update((name, ref) for ref, digest in now.items() if old.get(ref) != digest)
        return out

    def after(self, written: xlsx.Package, rewritten: dict, fingerprints: dict) -> Record:
        """The record to store with `written` (the package as written: the sheets in `rewritten`,
        {sheet: refs of the cells rewritten}, replaced by their new parse, the others as read).
        A cell the rewrite left alone keeps the digest it had as read."""
        record = Record(structure_digest(written), fingerprints=dict(fingerprints))
        for name, sheet in written.sheets.items():
            if name in rewritten:
                record.parts[sheet.path] = (xlsx.crc32(sheet.data()), len(sheet.data()))
            else:
                record.parts[sheet.path] = _as_written(written, sheet.path)
        strings = _strings_part(written)
        if strings is not None and strings in written.members:
            record.parts[strings] = _as_written(written, strings)
        reuse = self.record.digests if self.record is not None else {}
        for name, refs in self.by_sheet.items():
            if name not in written.sheets:
                continue
            known = self.current[name] if name in self.current else reuse.get(name, {})
            moved = rewritten.get(name, ())
            record.digests[name] = {ref: known[ref] if ref in known and ref not in moved
                                    else cell_digest(written, name, ref, self.read_value) for ref in refs}
        return record


# ------------------------------------------------------------------------------------------------
# Recalculating what changed
# ------------------------------------------------------------------------------------------------
@dataclass
class Recalculation:
    values: dict           # every formula cell's value: recomputed, or as cached
    recomputed: int        # how many formula cells were computed this time
    formula_cells: int     # of how many
    tracker: Tracker       # what changed, and the record to leave
    computed: frozenset | None = None  # the cells computed this time (None: every one); the
    #                                    others hold their cached value exactly as read

    @property
    def incremental(self) -> bool:
        return self.tracker.record is not None


def recalculate(package: xlsx.Package, inputs: dict) -> Recalculation:
    """Every formula cell's value with `inputs` ({(sheet, ref): value}) in place of cell values,
    computing only what the changes since the last refresh's record can move, and taking every
    other formula cell's cached value, which that refresh computed from the same cells. Everything
    is computed when there is no usable record. The result equals a full `evaluate(package,
    inputs)` cell for cell (tests/test_incremental.py holds it to that).

    The cells downstream of a change are visited precedents first, and one is recomputed only
    when a cell it reads has moved: a changed input, or a recomputed cell whose value differs
    from its cached one. A new price thus stops at `(shares bought - issued) * price` when both
    are 0, instead of recomputing the statements below it."""
    evaluator = Evaluator(package, inputs)
    graph = evaluator.graph()
    tracker = Tracker(package, graph.cells() | set(inputs), stored_value)
    changed = tracker.changed()
    if changed is None:
        values = evaluator.run()
        return Recalculation(values, len(values), len(graph.precedents), tracker)
    changed.update(key for key, value in inputs.items() if not same_stored(stored_value(package, *key), value))
    cached = {key: stored_value(package, *key) for key in graph.precedents}
    evaluator.values.update(cached)
    moved = set(changed)
    computed = []
    for key in graph.plan(changed):
        if key not in changed and not any(read in moved for read in graph.precedents[key]):
            continue
        value = evaluator.recompute(*key)
        computed.append(key)
        if key in changed or not same_stored(value, cached[key]):
            moved.add(key)
    return Recalculation(evaluator.values, len(computed), len(graph.precedents), tracker, frozenset(computed))
