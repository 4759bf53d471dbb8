"""The 估值 sheet in the built template: valuation inputs to a target price and a computed
rating, scenarios, and the sensitivity tables, evaluated by `formulas` with our functions bound."""
from __future__ import annotations

import pytest

from conftest import ON_THE_FORMULAS_WORKER, ROOT
from udfs.registry import guarded
from udfs.rating import rate
from workbook.model import build_model, default_sensitivity, driver_sensitivity

pytestmark = ON_THE_FORMULAS_WORKER


# `company`, `built`, `template` and `evaluated` (the default model's) are shared fixtures (conftest.py).


def cell(template, name, year=None):
    return template.cell_by_name(name, year)


def test_the_names_other_tools_address_exist(template):
    names = set(template.book.defined_names.keys())
    assert {"VAL_pe_multiple", "VAL_pe_year", "VAL_wacc", "VAL_terminal_growth", "VAL_weights", "RTG_target_price"} <= names
    sheet, cells = template.name_range("VAL_weights")
    assert sheet == "估值" and len(cells) == 1 or sheet == "估值"


def test_without_the_example_valuation_nothing_is_invented(tmp_path):
    """A company file without [valuation] (the example every shipped model carries removed) starts
    not valued: the target reads 未估值 and the rating 无评级."""
    import re
    from conftest import ROOT
    from workbook.company import load
    text = (ROOT / "workbook" / "data" / "xiaomi_1810hk.toml").read_text(encoding="utf-8")
    text = re.sub(r"\n\[valuation\].*", "\n", text, flags=re.S)
    text = re.sub(r"\nbenchmark_return = [^\n]*", "", text)
    path = tmp_path / "bare.toml"
    path.write_text(text, encoding="utf-8")
    model = build_model(load(path))
    assert model.value("pe_multiple") is None and model.value("rf") is None
    assert model.value("target_price") == "未估值"
    assert model.value("computed_rating") == "无评级"


def test_a_pe_valuation_gives_the_target_price_and_rating_by_hand(template, evaluated, company):
    """P/E target = multiple x EPS(year) / FX; upside, rating in the company's scheme and the
    action against the published 买入, in the workbook as `formulas` evaluates it."""
    changes = {cell(template, "VAL_pe_multiple"): 25.0, cell(template, "VAL_pe_year"): "2026E",
               cell(template, "VAL_weight_pe"): 1.0, cell(template, "VAL_weight_dcf"): 0.0,
               cell(template, "RTG_benchmark_return"): 0.05}
    solution = evaluated.calculate(changes)
    model = build_model(company)
    eps = model.value("non_ifrs_eps", "2026E")           # the layout values P/E on Non-IFRS EPS
    fx, price = company.scalar_inputs["fx_rate"], company.scalar_inputs["price"]
    expected_target = 25.0 * eps / fx
    assert solution[cell(template, "VAL_pe_target")] == pytest.approx(expected_target, rel=1e-12)
    assert solution[cell(template, "RTG_target_price")] == pytest.approx(expected_target, rel=1e-12)
    assert solution[cell(template, "RTG_upside")] == pytest.approx(expected_target / price - 1, rel=1e-12)
    excess = expected_target / price - 1 - 0.05
    band = "买入" if excess >= 0.15 else "增持" if excess >= 0.05 else "中性" if excess > -0.05 else "减持"
    assert solution[cell(template, "RTG_computed_rating")] == band == rate(price, expected_target, 0.05)
    action = "维持" if band == "买入" else "下调"
    assert solution[cell(template, "RTG_rating_action")] == action


def test_weights_that_do_not_add_up_are_a_labelled_error(template, evaluated):
    changes = {cell(template, "VAL_pe_multiple"): 25.0, cell(template, "VAL_weight_pe"): 0.6,
               cell(template, "VAL_pb_multiple"): 3.0, cell(template, "VAL_weight_pb"): 0.3}
    solution = evaluated.calculate(changes)
    assert solution[cell(template, "VAL_target_price_blend")] == "weights≠100%"
    assert solution[cell(template, "RTG_computed_rating")] == "无评级"


def test_a_blend_of_methods_equals_the_engine(template, evaluated, company):
    inputs = {"pe_multiple": 22.0, "weight_pe": 0.5, "evebitda_multiple": 12.0, "weight_evebitda": 0.2,
              "rf": 0.03, "beta": 1.1, "erp": 0.06, "cost_of_debt": 0.04, "val_tax": 0.175, "debt_weight": 0.1,
              "terminal_growth": 0.025, "mid_year_switch": "TRUE", "weight_dcf": 0.3, "benchmark_return": 0.05}
    model = build_model(company, scalar_overrides=inputs)
    names = {k: (f"RTG_{k}" if k == "benchmark_return" else f"VAL_{k}") for k in inputs}
    solution = evaluated.calculate({cell(template, names[k]): v for k, v in inputs.items()})
    for key in ("pe_target", "evebitda_target", "wacc", "dcf_ev", "dcf_target", "target_price_blend"):
        assert solution[cell(template, f"VAL_{key}")] == pytest.approx(model.value(key), rel=1e-9), key
    assert solution[cell(template, "RTG_computed_rating")] == model.value("computed_rating")
    blended = 0.5 * model.value("pe_target") + 0.2 * model.value("evebitda_target") + 0.3 * model.value("dcf_target")
    assert model.value("target_price") == pytest.approx(blended)


def test_terminal_growth_at_or_above_wacc_is_an_error_value_not_a_number(company):
    model = build_model(company, scalar_overrides={"rf": 0.03, "beta": 1.0, "erp": 0.05, "cost_of_debt": 0.04,
                                                   "val_tax": 0.2, "debt_weight": 0.0, "terminal_growth": 0.08,
                                                   "weight_dcf": 1.0})
    assert model.value("wacc") == pytest.approx(0.08)
    assert model.value("dcf_ev") == "#NUM!"
    assert model.value("computed_rating") == "无评级"


def test_switching_the_scenario_moves_the_model_and_keeps_it_balanced(template, evaluated, company, built):
    """A bull case for smartphone growth, chosen by the one scenario cell on the drivers sheet."""
    bull = cell(template, "SCN_bull_d_smartphone", "2026E")
    choose = cell(template, "DRV_scenario")
    base = evaluated.calculate({cell(template, "VAL_pe_multiple"): 25.0, cell(template, "VAL_weight_pe"): 1.0})
    moved = evaluated.calculate({bull: 0.15, choose: "bull", cell(template, "VAL_pe_multiple"): 25.0,
                                 cell(template, "VAL_weight_pe"): 1.0, cell(template, "VAL_pe_year"): "2026E"})
    revenue = cell(template, "IS_revenue", "2026E")
    assert moved[revenue] > base[revenue] * 1.02
    eps = cell(template, "IS_non_ifrs_eps", "2026E")
    assert moved[eps] > base[eps]
    checks = [ref for name in template.book.defined_names.keys() if name.startswith("CHK_")
              for ref in [template.name_range(name)]]
    for sheet, refs in checks:
        assert all(moved[(sheet, r)] == "OK" for r in refs), (sheet, refs)
    # The engine with the same scenario gives the same figures.
    import dataclasses
    bullish = dataclasses.replace(company, scenarios={"bull": {("smartphone", "2026E"): 0.15}, "bear": {}})
    engine = build_model(bullish, scenario="bull")
    assert moved[revenue] == pytest.approx(engine.value("revenue", "2026E"), rel=1e-12)
    assert moved[eps] == pytest.approx(engine.value("non_ifrs_eps", "2026E"), rel=1e-12)


def test_a_scenario_the_company_file_does_not_define_is_refused(tmp_path):
    from conftest import ROOT
    run = __import__("subprocess").run([__import__("sys").executable, "-m", "addin", "show", "--scenario", "bull", "--data",
                                        str(ROOT / "workbook" / "data" / "kysec_300592sz.toml")],
                                       cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "defines no scenarios" in run.stderr


def _grid(template, solution, top_left_label: str, rows: int, cols: int):
    """The values of a sensitivity table whose header cell holds `top_left_label`."""
    ws = template.book["敏感性"]
    cached = template.values["敏感性"]   # a header may be a formula (the DCF grid's says g or exit multiple)
    header = next(c for row in ws.iter_rows() for c in row
                  if c.value == top_left_label or cached[c.coordinate].value == top_left_label)
    out = []
    for i in range(rows):
        row = []
        for j in range(cols):
            ref = f"{ws.cell(header.row + 1 + i, header.column + 1 + j).coordinate}"
            value = solution.get(("敏感性", ref))
            row.append(value if value is not None else ws[ref].value)
        out.append(row)
    return out


def test_the_dcf_grid_equals_re_evaluating_each_point(template, evaluated, company):
    """Every point of the DCF grid is the sheet's own DCF target with WACC and terminal growth
    changed and nothing else (issue 21: tests/test_valuation_defence.py holds the exit-multiple
    and second-layout cases)."""
    from workbook.layout import GROWTH_STEPS, WACC_STEPS
    inputs = {"rf": 0.03, "beta": 1.1, "erp": 0.06, "cost_of_debt": 0.04, "val_tax": 0.175, "debt_weight": 0.1,
              "terminal_growth": 0.025}
    solution = evaluated.calculate({cell(template, f"VAL_{k}"): v for k, v in inputs.items()})
    grid = _grid(template, solution, "WACC \\ g", len(WACC_STEPS), len(GROWTH_STEPS))
    model = build_model(company, scalar_overrides=inputs)
    for i, w_step in enumerate(WACC_STEPS):
        for j, g_step in enumerate(GROWTH_STEPS):
            point = {**inputs, "wacc": model.value("wacc") + w_step, "terminal_growth": 0.025 + g_step}
            expected = build_model(company, scalar_overrides=point).value("dcf_target")
            if isinstance(expected, float):
                assert grid[i][j] == pytest.approx(expected, rel=1e-9), (i, j)
            else:
                assert grid[i][j] == expected, (i, j)
    assert grid[3][3] == pytest.approx(model.value("dcf_target"), rel=1e-9)   # the centre is the sheet's DCF


def test_the_pe_grid_equals_re_evaluating_each_point(template, evaluated, company):
    from workbook.layout import MULTIPLE_FACTORS
    solution = evaluated.calculate({cell(template, "VAL_pe_multiple"): 20.0})
    forecast = [y.label for y in company.forecast_years]
    grid = _grid(template, solution, "P/E \\ EPS", len(MULTIPLE_FACTORS), len(forecast))
    model = build_model(company)
    for i, factor in enumerate(MULTIPLE_FACTORS):
        for j, year in enumerate(forecast):
            assert grid[i][j] == pytest.approx(20.0 * factor * model.value("val_eps", year) / model.value("fx_rate"),
                                               rel=1e-12)


def test_the_driver_grid_equals_re_running_the_model(company, template):
    a, xs, b, ys = default_sensitivity(company)
    year = company.forecast_years[0].label
    grid = driver_sensitivity(company, a, xs, b, ys, "val_eps", year)
    import dataclasses
    from udfs.engine import driver_key
    for i, j in ((0, 0), (2, 2), (4, 1)):
        inputs = dict(company.inputs)
        for y in company.forecast_years:
            inputs[(driver_key(a), y.label)] = xs[i]
            inputs[(driver_key(b), y.label)] = ys[j]
        assert grid[i][j] == build_model(dataclasses.replace(company, inputs=inputs)).value("val_eps", year)
    assert grid[2][2] == pytest.approx(build_model(company).value("val_eps", year), rel=1e-9)
    written = _grid(template, {}, f"{a} \\ {b}", len(xs), len(ys))
    for got, expected in zip(written, grid):
        assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("company_file", [None, ROOT / "workbook" / "data" / "kysec_300592sz.toml"],
                         ids=["xiaomi", "kysec"])
def test_the_default_driver_grid_moves_along_both_axes(company_file):
    """A driver grid whose row or column shows one figure throughout tells the analyst nothing
    (a working-capital share that never reaches profit): each axis of the default grid moves the
    EPS it shows by at least a displayed cent from end to end."""
    from workbook.company import load
    company = load(company_file) if company_file else load()
    a, xs, b, ys = default_sensitivity(company)
    grid = driver_sensitivity(company, a, xs, b, ys, "val_eps", company.forecast_years[0].label)
    for row in grid:
        assert round(row[-1], 2) != round(row[0], 2)
    for j in range(len(ys)):
        assert round(grid[-1][j], 2) != round(grid[0][j], 2)


def test_headless_evaluation_agrees_with_formulas_on_a_filled_valuation(tmp_path, built, template, evaluated):
    """refresh/check's evaluator computes the 估值 and 敏感性 sheets as `formulas` does."""
    from workbook import xlsx
    from workbook.xlcalc import evaluate
    package = xlsx.read(built)
    inputs = {cell(template, "VAL_pe_multiple"): 25.0, cell(template, "VAL_weight_pe"): 1.0,
              cell(template, "RTG_benchmark_return"): 0.05}
    ours = evaluate(package, inputs)
    theirs = evaluated.calculate(inputs)
    for key in (cell(template, "VAL_pe_target"), cell(template, "RTG_target_price"), cell(template, "RTG_computed_rating")):
        assert ours[key] == pytest.approx(theirs[key]) if isinstance(theirs[key], float) else ours[key] == theirs[key]
    sens = [k for k in theirs if k[0] == "敏感性" and k in ours]
    assert len(sens) > 50
    for key in sens:
        a, b = ours.get(key), theirs[key]
        assert a == pytest.approx(b, rel=1e-9) if isinstance(b, float) else a == b, key


def test_refresh_re_runs_the_driver_grid_on_the_workbooks_current_drivers(tmp_path, company):
    """The EPS-by-two-drivers table is the engine re-run per point on the workbook's drivers as
    they are now: change a driver in the file, refresh headless, and the table follows."""
    import dataclasses
    from conftest import ROOT
    from addin.refresh import refresh_file
    from udfs.engine import driver_key
    from workbook import xlsx
    model = tmp_path / "m.xlsm"
    model.write_bytes((ROOT / "workbook" / "xiaomi_1810hk_model.xlsm").read_bytes())
    package = xlsx.read(model)
    internet = package.name_cells("DRV_d_internet")[1:]            # the forecast years' internet growth
    typed = tmp_path / "typed.xlsm"
    xlsx.type_values(package, {cell: 0.30 for cell in internet}, typed)
    typed.replace(model)
    quotes = tmp_path / "q.csv"
    quotes.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                      "1810.HK,40.20,HKD,2025-12-19,0.9049,,test\n", encoding="utf-8")
    refresh_file(model, str(quotes), as_of=__import__("datetime").date(2025, 12, 19))
    refreshed = xlsx.read(model)
    grid = [refreshed.value(*c) for c in refreshed.name_cells("SENS_eps_grid")]
    a, xs, b, ys = default_sensitivity(company)
    inputs = dict(company.inputs)
    for y in company.forecast_years:
        inputs[(driver_key("internet"), y.label)] = 0.30
    expected = driver_sensitivity(dataclasses.replace(company, inputs=inputs), a, xs, b, ys, "val_eps",
                                  company.forecast_years[0].label)
    assert grid == pytest.approx([v for row in expected for v in row], rel=1e-12)
    before = driver_sensitivity(company, a, xs, b, ys, "val_eps", company.forecast_years[0].label)
    assert grid[12] != pytest.approx(before[2][2], rel=1e-9)  # the change moved the table


@pytest.mark.parametrize("typed", [None, "five", "0.01"])
def test_a_cleared_or_text_sensitivity_axis_cell_shows_na_not_a_traceback(tmp_path, typed):
    """Refresh re-runs the EPS table on the axis cells as they are; one cleared or holding text
    that is not a number gives #N/A across the table, numeric text is read as its number."""
    from conftest import ROOT
    from addin.refresh import refresh_file
    from udfs.constants import ERR_NA
    from workbook import xlsx
    model = tmp_path / "m.xlsm"
    model.write_bytes((ROOT / "workbook" / "xiaomi_1810hk_model.xlsm").read_bytes())
    package = xlsx.read(model)
    first_axis_cell = package.name_cells("SENS_eps_rows")[0]
    typed_file = tmp_path / "typed.xlsm"
    xlsx.type_values(package, {first_axis_cell: typed}, typed_file)
    typed_file.replace(model)
    quotes = tmp_path / "q.csv"
    quotes.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                      "1810.HK,40.20,HKD,2025-12-19,0.9049,,test\n", encoding="utf-8")
    refresh_file(model, str(quotes), as_of=__import__("datetime").date(2025, 12, 19))
    refreshed = xlsx.read(model)
    grid = [refreshed.value(*c) for c in package.name_cells("SENS_eps_grid")]
    if typed == "0.01":
        assert all(isinstance(v, float) for v in grid)
    else:
        assert set(grid) == {ERR_NA}
