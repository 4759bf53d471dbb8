"""Line roles: what each printed line is, from the label families in the label data."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

from .labels import ROLE_SECTIONS, LabelData, default_label_data, normalise_label

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
    variants = data.variants
    relative = {normalise_label(w) for w in data.section("relative").get("growth", [])}
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
                hit = variants.get(section, {}).get(key)
                if hit:
                    role, variant = hit
                    match = RoleMatch(table.title, table.kind, row.label, row.position, role,
                                      "exact" if variant == row.label else "normalised", variant)
                    break
            if match is None and key in relative and previous_role:
                match = RoleMatch(table.title, table.kind, row.label, row.position, previous_role + "_growth",
                                  "relative", None)
            if match is None:
                match = RoleMatch(table.title, table.kind, row.label, row.position, None, "unmapped", None)
            if match.role and match.method != "relative":
                previous_role = match.role
            out[(t_index, row.position)] = match
    return out
