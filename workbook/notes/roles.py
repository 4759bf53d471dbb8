"""Line roles: what each printed line is, from the label families in the label data."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

from .labels import ROLE_SECTIONS, LabelData, default_label_data, match_label, normalise_label

if TYPE_CHECKING:
    from .reader import Note

# --------------------------------------------------------------------------------------------
# Roles

@dataclass(frozen=True)
class RoleMatch:
    table: str
    kind: str
    label: str
    position: int
    role: str | None
    method: str          # "exact", "normalised", "relative" (growth of the line above) or "unmapped"
    variant: str | None  # the variant in the label data that matched


def map_roles(note: Note, data: LabelData | None = None) -> dict[tuple[int, int], RoleMatch]:
    """(table index, row position) -> the row's role and how it was matched, for every line of
    the statements, summary, ratio and market tables."""
    data = data or default_label_data()
    relative = {normalise_label(w) for w in data.section("relative").get("growth", [])}
    others = {normalise_label(w) for w in data.section("others").get("words", [])}
    out = {}
    for t_index, table in enumerate(note.tables):
        sections = ROLE_SECTIONS.get(table.kind)
        if not sections:
            continue
        previous_role = None
        for row in table.lines:
            key = normalise_label(row.label)
            match = None
            for section in sections:
                hit = match_label(data, section, row.label)
                if hit:
                    role, variant, how = hit
                    match = RoleMatch(table.title, table.kind, row.label, row.position, role, how, variant)
                    break
            structure = getattr(note, "structures", {}).get(t_index)
            if match is None and structure is not None and normalise_label(row.label) in others:
                parent = structure.parent(row)
                parent_role = _role_of(data, table.kind, parent.total.label) if parent else None
                role = data.section("others").get(parent_role) if parent_role else None
                if isinstance(role, str):
                    match = RoleMatch(table.title, table.kind, row.label, row.position, role, "other of its total",
                                      parent.total.label)
            if match is None and key in relative and previous_role:
                match = RoleMatch(table.title, table.kind, row.label, row.position, previous_role + "_growth",
                                  "relative", None)
            if match is None:
                match = RoleMatch(table.title, table.kind, row.label, row.position, None, "unmapped", None)
            if match.role and match.method != "relative":
                previous_role = match.role
            out[(t_index, row.position)] = match
    return out


def _role_of(data: LabelData, kind: str, label: str) -> str | None:
    hit = match_label(data, kind, label)
    return hit[0] if hit else None
