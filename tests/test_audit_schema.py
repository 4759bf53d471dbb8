"""The audit reads what the build decided where the build recorded it: the findings table by the
names of its verdict groups, a failing check's year from the layout's header row."""
from __future__ import annotations

import pytest

from addin.audit import audit, render
from workbook import xlsx
from workbook.build import build
from workbook.layout import CHECKS, FINDINGS_BEYOND, FINDINGS_FIELDS, FINDINGS_WITHIN, LABEL_COL


@pytest.fixture(scope="module")
def built(tmp_path_factory, company):
    return build(tmp_path_factory.mktemp("schema") / "model.xlsm", company)


def test_findings_come_back_with_the_verdicts_the_report_gives(built, report_findings):
    result = audit(built)
    expected = sorted((f.year or "", f.printed, f.computed, not f.within_rounding) for f in report_findings)
    got = sorted((f.year or "", f.printed, f.computed, f.beyond_rounding) for f in result.findings)
    assert got == expected and any(beyond for *_, beyond in got)


def test_verdict_groups_are_named_and_the_text_is_not_read(built):
    package = xlsx.read(built)
    assert {FINDINGS_BEYOND, FINDINGS_WITHIN} <= set(package.names)
    beyond = audit(package).findings
    # The verdict column is display text: without it the audit decides exactly as before.
    verdict_col = LABEL_COL + FINDINGS_FIELDS.index("verdict") + 1  # split_ref counts columns from 1
    verdict_cells = [ref for name in (FINDINGS_BEYOND, FINDINGS_WITHIN)
                     for _, ref in package.name_cells(name) if xlsx.split_ref(ref)[1] == verdict_col]
    assert verdict_cells
    for ref in verdict_cells:
        del package.sheets[CHECKS].cells[ref]
    assert [f.beyond_rounding for f in audit(package).findings] == [f.beyond_rounding for f in beyond]


def test_render_lists_each_finding_beyond_rounding(built, report_findings):
    text = render(audit(built))
    beyond = [f for f in report_findings if not f.within_rounding]
    assert f"Report disagrees with itself: {len(beyond)} beyond rounding, {len(report_findings) - len(beyond)} within" in text
    assert sum(line.startswith("  ! ") for line in text.splitlines()) == len(beyond)
