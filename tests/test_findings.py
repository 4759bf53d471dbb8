"""The report's disagreements with itself are found by computation, with both numbers."""
from __future__ import annotations

import pytest


def _find(findings, key, year):
    return [f for f in findings if f.key == key and f.year == year]


@pytest.mark.parametrize("key,year,printed,computed,within", [
    ("non_ifrs_eps", "2025E", 1.64, 1.63, False),        # 42,581 / 26,045 = 1.635 -> 1.63
    ("non_ifrs_growth", "2025E", 56.4, 56.3, True),      # 42,581 / 27,235 - 1 = 56.35%
    ("cash", "2024", 75488, 91133, False),               # 91,223 - 90 against 75,488
    ("market_cap", "", 10470.24, 10470.09, True),        # 40.20 x 260.45
])
def test_known_disagreement_is_listed_with_both_numbers(report_findings, key, year, printed, computed, within):
    matches = [f for f in _find(report_findings, key, year) if f.kind != "two tables"]
    assert len(matches) == 1
    finding = matches[0]
    assert finding.printed == pytest.approx(printed)
    assert finding.computed == pytest.approx(computed)
    assert finding.within_rounding is within
    text = finding.line()  # what the analyst reads carries both numbers
    assert finding.shown(finding.printed) in text and finding.shown(finding.computed) in text


def test_summary_and_table_1_eps_disagree(report_findings):
    two = [f for f in report_findings if f.kind == "two tables"]
    assert [(f.key, f.year) for f in two] == [("non_ifrs_eps", "2025E")]
    assert {two[0].printed, two[0].computed} == {1.63, 1.64}


def test_rounding_only_findings_are_marked_so(report_findings):
    revenue = [f for f in _find(report_findings, "revenue", "2025E") if f.kind == "definition"]
    assert revenue and revenue[0].within_rounding  # segments add to 475,995 against 475,994
    assert revenue[0].printed == 475994 and revenue[0].computed == 475995


def test_consistent_figures_make_no_finding(report_findings):
    assert not _find(report_findings, "gross_profit", "2025E")
    assert not _find(report_findings, "net_debt_change", "2024")


def test_interval_arithmetic_tells_rounding_from_disagreement():
    from udfs.engine import ACTUAL, Line, Year
    from udfs.findings import Printed, find
    lines = [Line("total", "t", "合计", "Total", formula="a + b", identity=True),
             Line("a", "t", "a", "a"), Line("b", "t", "b", "b")]
    years = [Year("2024", 2024, ACTUAL)]

    def run(a, b, total):
        printed = {("t", "a", "2024"): Printed(a, 0), ("t", "b", "2024"): Printed(b, 0), ("t", "total", "2024"): Printed(total, 0)}
        return find(lines, years, printed, {}, [])

    assert run(10, 20, 30) == []
    assert run(10, 20, 31)[0].within_rounding            # 10.4 + 20.4 = 30.8 rounds to 31
    assert not run(10, 20, 32)[0].within_rounding        # no true values give 32
