"""Issue 13 in the built workbooks of both companies: after driver changes that move the mechanics (a loss with its
tax credit limit, the cash floor and its revolver with its interest, new debt and its interest,
dividends, D&A from capex, a buyback and share-based pay), the template as `formulas` evaluates it
with our functions bound equals the engine, cell for cell."""
from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import ON_THE_FORMULAS_WORKER
from workbook.model import build_model

pytestmark = ON_THE_FORMULAS_WORKER

# The lines each scenario must agree on, in every forecast year.
COMPARED = ("opex", "opex_cash", "da", "ppe", "net_finance", "pretax_profit", "income_tax", "net_profit", "cash_before_revolver", "revolver", "cash",
            "total_assets", "total_liabilities_and_equity", "cfo", "net_cash_flow", "dps", "dividends", "shareholders_equity",
            "dividend_yield", "share_count", "eps", "diluted_eps", "non_ifrs_eps", "share_capital_change")

SCENARIOS = {
    # opex at 60% of revenue: pre-tax losses; a loss earns tax back only up to the limit
    "loss with a credit limit": {"d_opex_cash": 0.6, "d_tax_credit_limit": 1500.0},
    "loss without a credit": {"d_opex_cash": 0.6, "d_tax_credit_limit": 0.0},
    # a floor far above the report's cash: the revolver draws, then the floor moves it
    "cash floor drawn on the revolver": {"d_min_cash": 150_000.0, "d_capex": -120_000.0},
    # borrowing 130 billion at 6%: interest on the average balance, the cash it brings earning 2%
    "new debt and its interest": {"d_short_term_debt": 130_000.0, "d_debt_rate": 0.06, "d_cash_yield": 0.02},
    # the same on the opening-balance option
    "new debt on opening balances": {"d_short_term_debt": 130_000.0, "d_debt_rate": 0.06, "d_debt_timing": 0.0},
    # a buyback, vested share-based pay and awards outstanding
    "buyback and dilution": {"d_buyback_shares": 500.0, "d_sbc_shares": 120.0, "d_dilutive_shares": 300.0},
    # half of EPS declared each year, paid the next; more capex, so more D&A
    "dividends and D&A": {"d_dps": 0.5, "d_capex": -90_000.0, "d_da": 0.1},
}


# `company`, `built`, `template` and `evaluated` (the default model's) are shared fixtures (conftest.py).


def _prefixed(template, key: str) -> str:
    names = [n for n in template.book.defined_names.keys() if n.split("_", 1)[-1] == key and not n.startswith(("BASE_", "CHK_", "WRN_"))]
    assert len(names) == 1, (key, names)
    return names[0]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_workbook_equals_the_engine_after_the_mechanics_move(scenario, company, template, evaluated):
    changes = SCENARIOS[scenario]
    forecast = [y.label for y in company.forecast_years]
    inputs = dict(company.inputs)
    cells = {}
    for key, value in changes.items():
        for year in forecast:
            inputs[(key, year)] = value
            cells[template.cell_by_name(_prefixed(template, key), year)] = value
    model = build_model(replace(company, inputs=inputs))
    assert model.balanced
    solution = evaluated.calculate(cells)
    moved = False
    for key in COMPARED:
        for year in forecast:
            where = template.cell_by_name(_prefixed(template, key), year)
            got = solution[where]
            assert got == pytest.approx(model.value(key, year), rel=1e-9, abs=1e-6), (scenario, key, year, where)
            moved |= abs(got - build_model(company).value(key, year)) > 1
    assert moved, "the scenario must move the statements"
    if "loss" in scenario:
        for year in forecast:
            pretax, tax = model.value("pretax_profit", year), model.value("income_tax", year)
            assert pretax < 0 and 0 <= tax <= changes["d_tax_credit_limit"] + 1e-9  # a credit, never beyond the limit
    if "floor" in scenario:
        assert any(model.value("revolver", y) > 0 for y in forecast)
        assert all(model.value("cash", y) >= changes["d_min_cash"] - 1e-6 for y in forecast)


KYSEC_COMPARED = ("finance_expenses", "admin_expenses", "da", "ppe", "pretax_profit", "income_tax", "eps", "dps", "share_count",
                  "diluted_shares", "shareholders_equity", "cash_before_revolver", "revolver", "cash", "total_assets")
KYSEC_SCENARIOS = {
    "borrowing, D&A and a floor": {"d_short_term_debt": 3_000.0, "d_da": 0.3, "d_min_cash": 2_500.0},
    "dividends, a buyback and awards": {"d_dps": 0.4, "d_buyback_shares": 20.0, "d_dilutive_shares": 6.0},
    "a loss with a credit limit": {"d_admin_cash": 0.2, "d_tax_credit_limit": 40.0},
}


@pytest.fixture(scope="module")
def kysec(kysec_company):
    return kysec_company


@pytest.fixture(scope="module")
def kysec_template(kysec_built):
    from workbook_reader import Template
    return Template(kysec_built)


@pytest.mark.parametrize("scenario", KYSEC_SCENARIOS)
def test_the_second_companys_workbook_equals_the_engine_after_the_mechanics_move(scenario, kysec, kysec_template,
                                                                                 kysec_evaluated):
    template, evaluated = kysec_template, kysec_evaluated
    changes = KYSEC_SCENARIOS[scenario]
    forecast = [y.label for y in kysec.forecast_years]
    inputs, cells = dict(kysec.inputs), {}
    for key, value in changes.items():
        for year in forecast:
            inputs[(key, year)] = value
            cells[template.cell_by_name(_prefixed(template, key), year)] = value
    model = build_model(replace(kysec, inputs=inputs))
    base = build_model(kysec)
    assert model.balanced
    solution = evaluated.calculate(cells)
    moved = False
    for key in KYSEC_COMPARED:
        for year in forecast:
            got = solution[template.cell_by_name(_prefixed(template, key), year)]
            assert got == pytest.approx(model.value(key, year), rel=1e-9, abs=1e-6), (scenario, key, year)
            moved |= abs(got - base.value(key, year)) > 0.01
    assert moved
