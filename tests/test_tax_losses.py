"""Issue 20 item 2: tax losses carried forward. A pre-tax loss builds a tax-loss balance, used
oldest first against later profits and expiring after the carry-forward years (five on the
mainland, none in Hong Kong); tax is the rate on the profit the losses do not shelter; the
credit-limit input stays for jurisdictions that refund, and a credited loss is not carried too."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import udfs
from conftest import ROOT, examples
from udfs import forecast as f
from workbook.company import load
from workbook.model import build_model

KYSEC = ROOT / "workbook" / "data" / "kysec_300592sz.toml"
FUNCTIONS = udfs.excel_functions()
SETTINGS = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("balance, losses, expiry, expected", [
    (100.0, [[0.0, 60.0, 40.0]], 0.0, 100.0),      # no expiry: the balance
    (100.0, [[0.0, 60.0, 40.0]], 2.0, 100.0),      # both losses within two years
    (100.0, [[0.0, 60.0, 40.0]], 1.0, 40.0),       # only this year's loss can be carried into next year
    (30.0, [[0.0, 60.0, 40.0]], 1.0, 30.0),        # the balance is already below the recent losses
    (100.0, [[0.0, 60.0, 40.0]], 1.5, 100.0),      # a fraction of a year counts the year it starts
    (-5.0, [[0.0]], 0.0, 0.0),                      # never a negative balance
    (100.0, [[60.0, None, 40.0]], 3.0, 100.0),     # an empty year is a year without losses
])
def test_losses_carried_keep_the_recent_losses(balance, losses, expiry, expected):
    assert f.tax_losses(balance, losses, expiry) == pytest.approx(expected)


@pytest.mark.parametrize("args, expected", [
    ((55.0, 100.0), 55.0), ((155.0, 100.0), 100.0), ((-10.0, 100.0), 0.0), ((50.0, -3.0), 0.0),
])
def test_loss_relief_uses_what_the_profit_can_take(args, expected):
    assert FUNCTIONS["ER_LOSS_RELIEF"](*args) == expected


@pytest.mark.parametrize("args, expected", [
    ((-400.0, 0.25, 0.0), 400.0),     # no credit booked: the whole loss carries forward
    ((-400.0, 0.25, 50.0), 200.0),    # a credit of 50 at 25% used 200 of it
    ((-400.0, 0.25, 500.0), 0.0),     # all of it earned its credit
    ((300.0, 0.25, 0.0), 0.0),        # a profit makes no loss
    ((-400.0, 0.0, 50.0), 400.0),     # at a zero rate no credit is booked
])
def test_a_credited_loss_is_not_carried_too(args, expected):
    assert FUNCTIONS["ER_NEW_TAX_LOSS"](*args) == pytest.approx(expected)


def _vintages(profits: list[float], expiry: int, opening: float = 0.0) -> tuple[list[float], list[float]]:
    """An independent reference: a table of loss vintages, used oldest first, each usable for
    `expiry` years after the year it arose (0: forever). Returns the losses used and the balance
    carried into the next year, per year."""
    queue = [[-1, opening]] if opening else []   # [year arisen, amount left]
    used, balances = [], []
    for year, profit in enumerate(profits):
        if expiry:
            queue = [v for v in queue if year - v[0] <= expiry]
        take = 0.0
        if profit > 0:
            for vintage in queue:
                bite = min(vintage[1], profit - take)
                vintage[1] -= bite
                take += bite
            queue = [v for v in queue if v[1] > 1e-12]
        else:
            queue.append([year, -profit])
        used.append(take)
        carried = [v for v in queue if not expiry or year + 1 - v[0] <= expiry]
        balances.append(sum(v[1] for v in carried))
    return used, balances


@SETTINGS
@given(profits=st.lists(st.floats(-1000, 1000, allow_nan=False), min_size=1, max_size=12), expiry=st.integers(0, 6))
def test_the_balance_equals_a_vintage_table_used_oldest_first(profits, expiry):
    """The model keeps no vintage table: with losses used oldest first, what is carried is always
    the most recent losses, so the balance is the recent losses capped by the window. It equals
    a table that tracks each vintage."""
    used_ref, balance_ref = _vintages(profits, expiry)
    balance, history = 0.0, []
    for year, profit in enumerate(profits):
        used = f.smaller_positive(profit, balance)
        new = f.new_tax_loss(profit, 0.25, 0.0)
        history.append(new)
        balance = f.tax_losses(balance - used + new, [history], float(expiry))
        assert used == pytest.approx(used_ref[year], abs=1e-6)
        assert balance == pytest.approx(balance_ref[year], abs=1e-6)


def _xiaomi_with_two_loss_years():
    """The issue's scenario: operating costs at 35% of revenue in 2025E and 2026E (losses), then
    20% in 2027E (a profit)."""
    company = load()
    inputs = dict(company.inputs)
    for year, opex in (("2025E", 0.35), ("2026E", 0.35), ("2027E", 0.20)):
        inputs[("d_opex_cash", year)] = opex
    return replace(company, inputs=inputs)


def test_two_loss_years_shelter_the_next_profit():
    """Xiaomi, two loss years then a profit: 2027E pays no tax (108bn of losses shelter it) and EPS
    is about 0.80; taxing it in full would have given 0.66."""
    model = build_model(_xiaomi_with_two_loss_years())
    assert model.balanced
    assert model.value("pretax_profit", "2025E") < 0 and model.value("pretax_profit", "2026E") < 0
    assert model.value("tax_losses", "2026E") == pytest.approx(-model.value("pretax_profit", "2025E")
                                                               - model.value("pretax_profit", "2026E"))
    assert model.value("tax_losses", "2026E") > 108_000
    assert model.value("income_tax", "2027E") == 0.0
    assert model.value("tax_loss_used", "2027E") == pytest.approx(model.value("pretax_profit", "2027E"))
    assert model.value("eps", "2027E") == pytest.approx(0.80, abs=0.005)
    rate = model.value("d_income_tax", "2027E")
    taxed_in_full = model.value("attributable_profit", "2027E") - rate * model.value("pretax_profit", "2027E")
    assert taxed_in_full / model.value("weighted_shares", "2027E") == pytest.approx(0.66, abs=0.005)
    assert model.value("tax_losses", "2027E") == pytest.approx(model.value("tax_losses", "2026E")
                                                               - model.value("pretax_profit", "2027E"))


def test_the_workbook_carries_the_losses_as_the_engine_does(tmp_path):
    """The same scenario in the built template, evaluated by `formulas` with our functions bound:
    the balance, the losses used, tax and EPS equal the engine's."""
    from formulas_bridge import Evaluated
    from workbook.build import build
    from workbook_reader import Template
    company = _xiaomi_with_two_loss_years()
    path = build(tmp_path / "losses.xlsm", company)
    template, solution, model = Template(path), Evaluated(path).calculate(), build_model(company)
    for key, prefix in (("tax_losses", "IS"), ("tax_loss_used", "IS"), ("tax_loss_new", "IS"), ("income_tax", "IS"),
                        ("eps", "IS"), ("cash", "BS")):
        for year in ("2025E", "2026E", "2027E"):
            got = solution[template.cell_by_name(f"{prefix}_{key}", year)]
            assert got == pytest.approx(model.value(key, year), rel=1e-9, abs=1e-6), (key, year)
    formula = template.book[template.cell_by_name("IS_tax_losses", "2027E")[0]][template.cell_by_name("IS_tax_losses", "2027E")[1]].value
    assert "ER_TAX_LOSSES(" in formula and ":" in formula   # the history of new losses, as a row


def _kysec_path(losses: dict, expiry: float | None = None):
    company = load(KYSEC)
    inputs = dict(company.inputs)
    for year, admin in losses.items():
        inputs[("d_admin_cash", year)] = admin
    if expiry is not None:
        for year in company.forecast_years:
            inputs[("d_tax_loss_expiry", year.label)] = expiry
    return build_model(replace(company, inputs=inputs))


def test_a_mainland_loss_expires_after_its_carry_forward_years():
    """华凯易佰 with a loss in 2026E: on the mainland's five years it shelters 2027E and 2028E; with
    one year, what 2027E did not use is gone by 2028E."""
    five = _kysec_path({"2026E": 0.15, "2027E": 0.035, "2028E": 0.03})
    one = _kysec_path({"2026E": 0.15, "2027E": 0.035, "2028E": 0.03}, expiry=1.0)
    assert five.value("d_tax_loss_expiry", "2026E") == 5.0
    loss = -five.value("pretax_profit", "2026E")
    assert loss > 0 and five.value("tax_losses", "2026E") == pytest.approx(loss)
    profit_2027 = five.value("pretax_profit", "2027E")
    assert 0 < profit_2027 < loss   # 2027E uses part of it
    assert five.value("tax_losses", "2027E") == pytest.approx(loss - profit_2027)
    assert five.value("tax_loss_used", "2028E") > 0 and one.value("tax_loss_used", "2028E") == 0.0
    assert one.value("tax_losses", "2027E") == 0.0   # carried into 2028E: nothing younger than a year
    assert one.value("income_tax", "2028E") > five.value("income_tax", "2028E")
    assert five.balanced and one.balanced


MECHANICS_KYSEC = dict(admin=st.lists(st.floats(0.0, 0.3), min_size=3, max_size=3),
                       growth=st.lists(st.floats(-0.6, 0.6), min_size=3, max_size=3),
                       rate=st.floats(0.0, 0.4), credit=st.floats(0.0, 200.0), expiry=st.integers(0, 6))


@SETTINGS
@given(**MECHANICS_KYSEC)
def test_tax_never_exceeds_the_rate_on_profit_after_the_losses_available(admin, growth, rate, credit, expiry):
    """Random drivers on the 开源 layout: tax is never more than the rate on the profit the losses
    brought forward leave, a profit-making year pays exactly that, a loss is credited at most the
    limit, and the balance never exceeds the losses ever made."""
    company = load(KYSEC)
    inputs = dict(company.inputs)
    for i, year in enumerate(y.label for y in company.forecast_years):
        inputs.update({("d_admin_cash", year): admin[i], ("d_revenue", year): growth[i], ("d_income_tax", year): rate,
                       ("d_tax_credit_limit", year): credit, ("d_tax_loss_expiry", year): float(expiry)})
    model = build_model(replace(company, inputs=inputs))
    assert model.balanced
    made = 0.0
    years = [y.label for y in model.values.years]
    for year in (y.label for y in company.forecast_years):
        pretax, tax = model.value("pretax_profit", year), model.value("income_tax", year)
        available = model.value("tax_losses", years[years.index(year) - 1])
        sheltered = max(0.0, pretax - max(0.0, available))
        assert tax <= rate * sheltered + 1e-9
        if pretax >= 0:
            assert tax == pytest.approx(rate * sheltered, abs=1e-9)
        else:
            assert -credit - 1e-9 <= tax <= 0
        made += model.value("tax_loss_new", year)
        assert -1e-9 <= model.value("tax_losses", year) <= made + 1e-9


@SETTINGS
@given(opex=st.lists(st.floats(0.05, 0.5), min_size=3, max_size=3), credit=st.floats(0.0, 20_000.0))
def test_tax_never_exceeds_the_rate_on_profit_after_the_losses_on_the_everbright_layout(opex, credit):
    company = load()
    inputs = dict(company.inputs)
    for i, year in enumerate(y.label for y in company.forecast_years):
        inputs.update({("d_opex_cash", year): opex[i], ("d_tax_credit_limit", year): credit})
    model = build_model(replace(company, inputs=inputs))
    assert model.balanced
    years = [y.label for y in model.values.years]
    for year in (y.label for y in company.forecast_years):
        pretax, tax = model.value("pretax_profit", year), -model.value("income_tax", year)   # printed negative
        rate = model.value("d_income_tax", year)
        sheltered = max(0.0, pretax - max(0.0, model.value("tax_losses", years[years.index(year) - 1])))
        assert tax <= rate * sheltered + 1e-9
        assert tax >= (rate * sheltered if pretax >= 0 else -credit) - 1e-9


LOSS_SCENARIOS = ("xiaomi two loss years", "kysec loss expiring")


def _loss_company(scenario: str):
    return _xiaomi_with_two_loss_years() if scenario.startswith("xiaomi") else _kysec_with_a_loss_that_expires()


@pytest.fixture(scope="module")
def loss_editions(tmp_path_factory) -> dict:
    """Per scenario: the built template, its native (macro-free) edition as LibreOffice recalculates
    it (both scenarios in one LibreOffice start), and the engine's model."""
    from addin.native import export_native
    from test_native import recalculate
    from workbook.build import build
    out = tmp_path_factory.mktemp("losses")
    made = {}
    for number, scenario in enumerate(LOSS_SCENARIOS):
        company = _loss_company(scenario)
        template = build(out / f"model{number}.xlsm", company)
        made[scenario] = (company, template, export_native(template, out / f"native{number}.xlsx"))
    books = recalculate([native for _, _, native in made.values()], out)
    return {scenario: (company, template, books[native], build_model(company))
            for scenario, (company, template, native) in made.items()}


def _kysec_with_a_loss_that_expires():
    company = load(KYSEC)
    inputs = dict(company.inputs)
    for year, admin in {"2026E": 0.15, "2027E": 0.035, "2028E": 0.03}.items():
        inputs[("d_admin_cash", year)] = admin
        inputs[("d_tax_loss_expiry", year)] = 1.0
    return replace(company, inputs=inputs)


from test_native import needs_libreoffice  # noqa: E402


@needs_libreoffice
@pytest.mark.xdist_group("loss_editions")   # both scenarios on one worker: one LibreOffice start for both
@pytest.mark.parametrize("scenario", LOSS_SCENARIOS)
def test_the_native_edition_carries_the_losses_as_the_engine_does(scenario, loss_editions):
    """The plain-Excel forms of the tax-loss functions (MIN/MAX, and SUMPRODUCT over the row of new
    losses for the expiry window), as LibreOffice recalculates them, equal the engine."""
    from workbook_reader import Template
    company, template, book, model = loss_editions[scenario]
    names = Template(template)
    for key in ("tax_losses", "tax_loss_used", "tax_loss_new", "income_tax", "net_profit", "eps"):
        for year in (y.label for y in company.forecast_years):
            sheet, cell = names.cell_by_name(f"IS_{key}", year)
            assert book[sheet][cell].value == pytest.approx(model.value(key, year), rel=1e-9, abs=1e-6), (key, year)
    assert any(model.value("tax_loss_used", y.label) > 0 for y in company.forecast_years)


def test_recalibrating_writes_the_dividend_the_forecast_implies_back(tmp_path):
    """`python -m addin calibrate --write` puts the last reported DPS the note's retained
    earnings imply into the company file's [actual] table, as `import` does."""
    import shutil
    from workbook.calibrate import write_reported
    path = tmp_path / "kysec_300592sz.toml"
    shutil.copy(KYSEC, path)
    write_reported(path, {("dps", "2025A"): 0.25, ("tax_losses", "2025A"): 120.0})
    company = load(path)
    assert company.inputs[("dps", "2025A")] == 0.25 and company.inputs[("tax_losses", "2025A")] == 120.0
    assert company.inputs[("dps", "2024A")] == 0.0   # the other year's table untouched
    text = path.read_text(encoding="utf-8")
    assert text.count("dps = ") == 1 and text.count("tax_losses = 120") == 1
