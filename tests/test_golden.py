"""The model against the report: one test per (table, line, year) of the printed tables."""
from __future__ import annotations

import pytest

from conftest import EPS_TOLERANCE, GROWTH_TOLERANCE_PP, MONEY_TOLERANCE, golden_cells
from workbook.formats import show

CELLS = list(golden_cells())


@pytest.mark.parametrize("table,key,year,printed,decimals,percent", CELLS,
                         ids=[f"{t}-{k}-{y}" for t, k, y, *_ in CELLS])
def test_cell_matches_report(model, table, key, year, printed, decimals, percent):
    got = model.value(key, year)
    assert isinstance(got, float), f"{key} {year} is {got!r}"
    if key == "adjusted_pe":
        assert show(got, "pe_summary") == show(printed, "pe_summary")  # P/E exactly as printed
    elif percent:
        assert abs(got * 100 - printed) <= GROWTH_TOLERANCE_PP + 1e-9
    elif decimals == 2:
        assert abs(got - printed) <= EPS_TOLERANCE + 1e-9
    else:
        assert abs(got - printed) <= MONEY_TOLERANCE


def test_every_cell_displays_as_printed_unless_the_report_contradicts_itself(model, report_findings):
    """Stricter than the tolerances: at the report's displayed precision the model shows the
    printed figure, except where the findings show the print is inconsistent beyond rounding
    or with the rest of the report's own figures."""
    explained = {(f.key, f.year) for f in report_findings}
    differing = []
    for table, key, year, printed, decimals, percent in CELLS:
        fmt = "growth" if percent else model.line(key).fmt
        want = show(printed / 100 if percent else printed, fmt)
        if show(model.value(key, year), fmt) != want:
            differing.append((table, key, year))
    assert differing, "expected the two known report disagreements to show"
    assert all((key, year) in explained for _, key, year in differing), differing
    assert {(k, y) for _, k, y in differing} == {("non_ifrs_growth", "2025E"), ("non_ifrs_eps", "2025E")}


def test_forecast_checks_all_pass(model):
    assert model.checks and all(c["passed"] for c in model.checks), [c for c in model.checks if not c["passed"]]
    years = {c["year"] for c in model.checks}
    assert years == {"2025E", "2026E", "2027E"}


def test_history_in_company_file_equals_the_print(company):
    """The company file's reported years were transcribed from the same tables."""
    for table, key, year, printed, *_ in CELLS:
        if table != "summary" and not year.endswith("E"):
            assert company.inputs[(key, year)] == printed, (key, year)


def test_market_data_matches_report(company):
    from conftest import GOLDEN
    market = GOLDEN["market"]
    assert company.market["price"] == market["price"]
    assert company.market["fx_rate"] == market["fx_rate"]
    assert company.market["shares"] == pytest.approx(market["shares_100mn"] * 100)
    assert company.market["market_cap_quote"] == market["market_cap_100mn"]


def test_reported_years_show_what_they_imply_for_each_driver(model):
    assert model.value("d_smartphone", "2024") == pytest.approx(191759 / 157461 - 1)
    assert model.value("d_cogs", "2024") == pytest.approx(1 - 289346 / 365906)            # gross margin
    assert model.value("d_receivables", "2024") == pytest.approx(14589 / 365906 * 365)     # days of revenue
    assert model.value("d_income_tax", "2024") == pytest.approx(4548 / 28127)              # effective tax rate
    assert model.value("d_ebit_adjustment", "2024") == pytest.approx(22877 - 24226)
    assert model.value("d_smartphone", "2023") == "#N/A"                                   # no 2022 segment figure
