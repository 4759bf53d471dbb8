"""An OOXML validator for tests: `assert_valid(path)` on any workbook a feature writes.

Two layers. `openxml-audit` (a pure-Python port of the Open XML SDK's validator: schema, package
structure, relationships, semantic rules) is the one maintained on PyPI that needs no .NET.
Our own checks add what Excel's repair dialog trips on and it does not look at: calcChain entries
pointing at cells without a formula, duplicate or unordered rows and cells, `t="b"` values other
than 0/1, `nan`/`inf` numbers, shared-string indexes out of range, defined names pointing at
missing sheets, and any XML part that is not well-formed or declares a DOCTYPE.
"""
from __future__ import annotations

import math
import posixpath
import re
import zipfile
from functools import lru_cache
from pathlib import Path

from lxml import etree

from workbook.xlsx import col_index

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REF = re.compile(r"^([A-Z]{1,3})([0-9]+)$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@lru_cache(maxsize=1)
def _validator():
    from openxml_audit import OpenXmlValidator
    return OpenXmlValidator()


def _target(source: str, target: str) -> str:
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def our_checks(path: str | Path) -> list[str]:
    """What our own checks find wrong in the package at `path` (empty when nothing)."""
    found: list[str] = []
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    trees = {}
    for name, data in parts.items():
        if not name.lower().endswith((".xml", ".rels", ".vml")):
            continue
        try:
            tree = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            found.append(f"{name}: not well-formed XML ({exc})")
            continue
        if tree.getroottree().docinfo.doctype:
            found.append(f"{name}: declares a DOCTYPE")
        trees[name] = tree
    workbook = trees.get("xl/workbook.xml")
    if workbook is None:
        return found + ["no readable xl/workbook.xml"]
    rels = {r.get("Id"): _target("xl/workbook.xml", r.get("Target"))
            for r in trees.get("xl/_rels/workbook.xml.rels", etree.Element("x")).iter(f"{PKG}Relationship")}
    sheets = {}   # sheetId -> (name, part)
    for sheet in workbook.iter(f"{MAIN}sheet"):
        sheets[sheet.get("sheetId")] = (sheet.get("name"), rels.get(sheet.get(f"{REL}id")))
    names = {name for name, _ in sheets.values()}
    for defined in workbook.iter(f"{MAIN}definedName"):
        text = defined.text or ""
        match = re.match(r"^=?(?:'((?:[^']|'')+)'|([^'!(),\s]+))!", text)
        if match:
            sheet = (match[1] or "").replace("''", "'") or match[2]
            if sheet not in names:
                found.append(f"defined name {defined.get('name')} points at a missing sheet {sheet!r}")

    strings = trees.get("xl/sharedStrings.xml")
    string_count = len(strings.findall(f"{MAIN}si")) if strings is not None else 0
    formulas: dict = {}
    for sheet_id, (name, part) in sheets.items():
        tree = trees.get(part)
        if tree is None:
            found.append(f"sheet {name!r}: part {part} missing or unreadable")
            continue
        formulas[sheet_id] = set()
        last_row = 0
        for row in tree.iter(f"{MAIN}row"):
            number = int(row.get("r", last_row + 1))
            if number <= last_row:
                found.append(f"sheet {name!r}: row {number} is duplicated or out of order")
            last_row, last_col = number, 0
            for cell in row.findall(f"{MAIN}c"):
                ref = cell.get("r")
                match = _REF.match(ref or "")
                if not match or int(match[2]) != number:
                    found.append(f"sheet {name!r}: cell {ref!r} does not belong in row {number}")
                    continue
                col = col_index(match[1])
                if col <= last_col:
                    found.append(f"sheet {name!r}: cell {ref} is duplicated or out of order in its row")
                last_col = col
                if cell.find(f"{MAIN}f") is not None:
                    formulas[sheet_id].add(ref)
                value = cell.findtext(f"{MAIN}v")
                kind = cell.get("t", "n")
                if value is None:
                    continue
                if kind == "b" and value not in ("0", "1"):
                    found.append(f"sheet {name!r}: boolean cell {ref} holds {value!r}")
                elif kind == "n":
                    try:
                        if not math.isfinite(float(value)):
                            found.append(f"sheet {name!r}: cell {ref} holds {value!r}")
                    except ValueError:
                        found.append(f"sheet {name!r}: number cell {ref} holds {value!r}")
                elif kind == "s" and not (value.isdigit() and int(value) < string_count):
                    found.append(f"sheet {name!r}: cell {ref} refers to shared string {value!r} of {string_count}")
    chain = trees.get("xl/calcChain.xml")
    if chain is not None:
        sheet_id = None
        for entry in chain.iter(f"{MAIN}c"):
            sheet_id = entry.get("i", sheet_id)
            if entry.get("r") not in formulas.get(sheet_id, set()):
                found.append(f"calcChain entry {entry.get('r')} (sheet {sheet_id}) is not a formula cell")
    return found


def audit_errors(path: str | Path) -> list[str]:
    """What openxml-audit finds wrong in the package at `path`."""
    result = _validator().validate(str(path))
    return [str(error) for error in result.errors]


def assert_valid(path: str | Path) -> None:
    """Fail with every problem found if the workbook at `path` is not one Excel opens cleanly."""
    problems = our_checks(path) + audit_errors(path)
    assert not problems, f"{Path(path).name}:\n  " + "\n  ".join(problems[:40])
