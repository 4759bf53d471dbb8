"""The second real report: 华凯易佰 (300592.SZ) in the 开源证券 mainland layout, read from the seed
note itself; and a third, fictional company in a third layout that needs no Python."""
from __future__ import annotations

import math
import re

import pytest

from conftest import KYSEC_SEED, ON_THE_FORMULAS_WORKER, ROOT, needs_seeds
from in_process import run_cli
from fictional import company_head, layout_head, tail
from udfs.findings import displays_as
from workbook import spec
from workbook.company import load
from workbook.importer import TABLE_KINDS, _key_in, mapped_lines
from workbook.model import build_model
from workbook.notes import read_note
from workbook.report import findings, load_report, reproduction

pytestmark = ON_THE_FORMULAS_WORKER

SEED = KYSEC_SEED
DATA = ROOT / "workbook" / "data" / "kysec_300592sz.toml"
COMMITTED = ROOT / "workbook" / "kysec_300592sz_model.xlsm"


@pytest.fixture(scope="module")
def company(kysec_company):
    return kysec_company


@pytest.fixture(scope="module")
def model(company):
    return build_model(company)


@pytest.fixture(scope="module")
def explained(company, model):
    report = load_report(DATA.with_name("kysec_300592sz.report.toml"))
    return {(m.key, m.year): m for m in reproduction(model, report, findings(company, report))}


@pytest.fixture(scope="module")
def built(kysec_built):
    return kysec_built


@pytest.fixture(scope="module")
def solution(kysec_evaluated):
    return kysec_evaluated.calculate()


@pytest.fixture(scope="module")
def seed_cells():
    """Every printed cell of the seed's five tables, read from the seed text itself."""
    note = read_note(SEED)
    layout = spec.load_layout("kysec_a")
    out = []
    for m in mapped_lines(note):
        key = _key_in(layout, m.role)
        table = note.tables_of(m.kind)[0]
        for year, cell in zip(table.years, m.cells):
            if cell is not None:
                out.append((m.kind, key, m.label, year.label, cell.value, cell.decimals, cell.percent))
    return out


@needs_seeds
def test_the_seed_prints_five_tables_and_every_line_has_a_home(seed_cells):
    kinds = {kind for kind, *_ in seed_cells}
    assert kinds == set(TABLE_KINDS)
    assert all(key is not None for _, key, *_ in seed_cells)
    assert len(seed_cells) > 450


def _home_name(book_names, key: str) -> str:
    matches = [n for n in book_names if n.endswith("_" + key) and n.split("_", 1)[1] == key and not n.startswith("BASE_")]
    assert matches, key
    return sorted(matches)[0]


@needs_seeds
def test_every_printed_cell_is_shown_as_printed_or_explained(built, solution, explained, seed_cells):
    """The built workbook evaluated by `formulas` with our functions bound shows each printed
    cell at its printed precision, or the cell is a named finding with its explanation."""
    from workbook_reader import Template
    template = Template(built)
    names = list(template.book.defined_names.keys())
    shown = differing = 0
    for kind, key, label, year, printed, decimals, percent in seed_cells:
        where = template.cell_by_name(_home_name(names, key), year)
        if where is None:
            value = None
        else:
            value = solution.get(where)
            if value is None:
                value = template.book[where[0]][where[1]].value
        scale = 100 if percent else 1
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and displays_as(value * scale, printed, decimals):
            shown += 1
            continue
        differing += 1
        reason = explained.get((key, year))
        assert reason is not None and reason.explanation, f"{kind} {label} {year}: printed {printed}, workbook {value}"
    # As many as the committed import report counts, which test_import keeps equal to what
    # `import` writes: a cell that starts showing "-0" under a printed "0" changes both.
    report = (DATA.parent / "kysec_300592sz.import.txt").read_text(encoding="utf-8")
    counted = int(re.search(r"does not display as printed: (\d+)", report).group(1))
    assert differing == counted and shown + differing == len(seed_cells), (shown, differing, counted)


def test_workbook_equals_the_engine(built, solution, model):
    from workbook_reader import Template
    template = Template(built)
    for key in ("revenue", "attributable_profit", "cash", "total_assets", "net_cash_flow", "eps", "roe", "pe"):
        for year in ("2026E", "2027E", "2028E"):
            where = template.cell_by_name(_home_name(template.book.defined_names.keys(), key), year)
            assert solution[where] == pytest.approx(model.value(key, year), rel=1e-9), (key, year)


def test_the_model_balances_and_every_check_passes(model):
    assert model.balanced
    assert {c["check"] for c in model.checks} >= {"balance", "cash_link"}
    assert len(model.checks) == len(model.company.layout.checks) * 3 == 13 * 3


def test_the_cash_flow_that_does_not_tie_is_a_named_finding(company):
    """The note's forecast 现金净增加额 is not the change in its balance-sheet 现金; the finding says
    which of its lines carry the gap: its 其他筹资现金流, which is not what its other figures give
    it (finance costs, the dividends its retained earnings imply, its other equity movements). On
    the print, that gap is the change in 短期借款 counted a second time."""
    report = load_report(DATA.with_name("kysec_300592sz.report.toml"))
    found = [f for f in findings(company, report) if f.key == "net_cash_flow" and not f.within_rounding]
    forecast = {f.year for f in found if f.year.endswith("E")}
    assert forecast == {"2026E", "2027E", "2028E"}
    printed = {r["key"]: r["values"] for r in report.data["balance"]}
    years = report.years
    for f in found:
        if f.year.endswith("E"):
            assert "carried by the note's disagreements on cff_other" in f.explanation, f.explanation
            i = years.index(f.year)
            change_in_cash = printed["cash"][i] - printed["cash"][i - 1]
            assert f.exact == pytest.approx(change_in_cash)
            short_term_debt_change = printed["short_term_debt"][i] - printed["short_term_debt"][i - 1]
            assert abs((f.exact - f.printed) - short_term_debt_change) <= 1.5


def test_model_cash_follows_the_balance_sheet_and_the_cash_flow_articulates(model):
    for year in ("2026E", "2027E", "2028E"):
        prior = {"2026E": "2025A", "2027E": "2026E", "2028E": "2027E"}[year]
        assert model.value("cash", year) == pytest.approx(model.value("cash", prior) + model.value("net_cash_flow", year))
    assert round(model.value("cash", "2026E")) == 745


def test_it_rates_with_the_kysec_scheme_when_a_target_is_entered(company):
    price = company.scalar_inputs["price"]
    for target, benchmark, expected in ((17.5, 0.05, "买入"), (16.0, 0.05, "增持"), (14.0, 0.05, "中性"), (12.0, 0.05, "减持")):
        m = build_model(company, scalar_overrides={"target_price": target, "benchmark_return": benchmark})
        # the dividend paid within 12 months of 2026-04-27: 2025A's (mid-2026), which the note's
        # retained earnings imply, not 2026E's (mid-2027; issue 21)
        dividend = m.value("expected_dps")
        assert dividend == pytest.approx(m.value("dps", "2025A")) and dividend > 0
        excess = (target + dividend) / price - 1 - benchmark
        assert m.value("excess_return") == pytest.approx(excess)
        assert m.value("computed_rating") == expected, (target, excess)
    assert m.value("rating_scheme") == "kysec"
    assert build_model(company, scalar_overrides={"target_price": 17.5, "benchmark_return": 0.05}).value("rating_action") == "维持"
    assert "沪深300" in build_model(company).value("benchmark")


def test_the_evaluated_workbook_rates_when_a_target_is_entered(built, kysec_evaluated):
    from workbook_reader import Template
    template = Template(built)
    target = template.cell_by_name("RTG_target_price")
    benchmark = template.cell_by_name("RTG_benchmark_return")
    solution = kysec_evaluated.calculate({target: 17.5, benchmark: 0.05})
    assert solution[template.cell_by_name("RTG_computed_rating")] == "买入"
    assert solution[template.cell_by_name("RTG_rating_action")] == "维持"


def test_committed_template_is_a_fresh_build(built):
    import zipfile
    assert COMMITTED.is_file(), "run: python -m addin build --data workbook/data/kysec_300592sz.toml -o workbook/kysec_300592sz_model.xlsm --force"
    with zipfile.ZipFile(COMMITTED) as old, zipfile.ZipFile(built) as new:
        stale = [n for n in new.namelist() if n not in old.namelist() or old.read(n) != new.read(n)]
    assert not stale, f"rebuild the committed template: {stale}"


def test_labels_currency_and_titles_come_from_the_data(built):
    from workbook_reader import Template
    template = Template(built)
    assert template.book.sheetnames[:5] == ["封面", "财务摘要和估值指标", "资产负债表", "利润表", "现金流量表"]
    sheet, cell = template.cell_by_name("MKT_price")
    label = template.book[sheet][f"A{cell[1:]}"].value
    assert "人民币" in label and "港" not in label
    assert template.book[sheet][cell].value == 13.93


# ---- the command line on the second company ----
def cli(*args, cwd=ROOT):
    return run_cli(*args, cwd=cwd)


def test_show_new_check_refresh_diff_export_work_for_the_second_company(tmp_path):
    run = cli("show", "--data", str(DATA))
    assert run.returncode == 0, run.stderr
    assert "华凯易佰" in run.stdout and "财务摘要和估值指标" in run.stdout and "港" not in run.stdout
    model = tmp_path / "kysec.xlsm"
    run = cli("new", "--data", str(DATA), "-o", str(model))
    assert run.returncode == 0, run.stderr
    run = cli("check", str(model))
    assert run.returncode == 0 and "RESULT: OK" in run.stdout, run.stdout + run.stderr
    quotes = tmp_path / "quotes.csv"
    quotes.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                      "300592.SZ,14.20,CNY,2026-04-28,1,,test\n", encoding="utf-8")
    run = cli("refresh", str(model), "--quotes", str(quotes), "--as-of", "2026-04-28")
    assert run.returncode == 0, run.stdout + run.stderr
    run = cli("diff", str(COMMITTED), str(model))
    assert run.returncode == 0 and "14.2" in run.stdout, run.stdout + run.stderr
    run = cli("export", str(model), "-o", str(tmp_path / "clean.xlsx"))
    assert run.returncode == 0 and (tmp_path / "clean.xlsx").is_file(), run.stderr


def test_a_quote_in_another_currency_is_refused_for_the_cny_model(tmp_path):
    model = tmp_path / "kysec.xlsm"
    model.write_bytes(COMMITTED.read_bytes())
    quotes = tmp_path / "quotes.csv"
    quotes.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                      "300592.SZ,14.20,HKD,2026-04-28,0.92,,test\n", encoding="utf-8")
    before = model.read_bytes()
    run = cli("refresh", str(model), "--quotes", str(quotes), "--as-of", "2026-04-28")
    assert run.returncode != 0 and "CNY" in run.stderr, run.stderr
    assert model.read_bytes() == before


# ---- a third company in a third layout: data files only ----
THIRD_LAYOUT = layout_head("fictional_simple", "A fictional broker's minimal layout, written by a test", "sales",
                           ("sales", "profit", "eps"), "sales - costs", "cash + other_assets",
                           "operating_cash + financing_cash") + tail("fictional_simple.lines.toml")
THIRD_COMPANY = company_head("虚构灯塔科技", "Lighthouse Tech (fictional)", "LHTX.US", "fictional_simple.toml") + tail("lighthouse.figures.toml")


def test_a_third_company_in_a_third_layout_needs_no_python(tmp_path):
    (tmp_path / "fictional_simple.toml").write_text(THIRD_LAYOUT, encoding="utf-8")
    data = tmp_path / "lighthouse.toml"
    data.write_text(THIRD_COMPANY, encoding="utf-8")
    m = build_model(load(data))
    assert m.balanced
    assert m.value("sales", "2027E") == pytest.approx(1000 * 1.1 * 1.08)
    assert m.value("assets", "2026E") == pytest.approx(m.value("debt", "2026E") + m.value("equity", "2026E"))
    out = tmp_path / "lighthouse.xlsm"
    run = cli("new", "--data", str(data), "-o", str(out))
    assert run.returncode == 0, run.stderr
    run = cli("check", str(out))
    assert run.returncode == 0 and "RESULT: OK" in run.stdout, run.stdout + run.stderr
    run = cli("show", "--data", str(data))
    assert "虚构灯塔科技" in run.stdout and "美元" in run.stdout
    rated = build_model(load(data), scalar_overrides={"target_price": 24.0, "benchmark_return": 0.05})
    assert rated.value("computed_rating") == "推荐"  # 20% - 5% = 15% excess, above the 10% band



def test_a_model_in_any_layout_publishes_its_estimates_by_role(tmp_path):
    """The estimates history reads revenue, profit and EPS by the role the layout gives a line,
    not by a name: here revenue is the line `sales`, under a statement prefix of the layout's own."""
    from addin.estimates import read_model
    from workbook.build import build
    (tmp_path / "fictional_simple.toml").write_text(THIRD_LAYOUT.replace('prefix = "IS"', 'prefix = "PL"'),
                                                   encoding="utf-8")
    data = tmp_path / "lighthouse.toml"
    data.write_text(THIRD_COMPANY, encoding="utf-8")
    company = load(data)
    model = build_model(company)
    estimates = read_model(build(tmp_path / "lighthouse.xlsm", company))
    forecast = [y.label for y in company.forecast_years]
    assert sorted(estimates.years) == sorted(forecast)
    for year in forecast:
        assert estimates.years[year]["revenue"] == pytest.approx(model.value("sales", year), rel=1e-12)
        assert estimates.years[year]["eps"] == pytest.approx(model.value("eps", year), rel=1e-12)
        assert "non_ifrs_net_profit" not in estimates.years[year]  # the layout names no recurring profit

def test_a_layout_mistake_is_one_sentence(tmp_path):
    (tmp_path / "fictional_simple.toml").write_text(THIRD_LAYOUT.replace('formula = "sales - costs"', 'formula = "sales - cost"'),
                                                    encoding="utf-8")
    data = tmp_path / "lighthouse.toml"
    data.write_text(THIRD_COMPANY, encoding="utf-8")
    run = cli("show", "--data", str(data))
    assert run.returncode != 0 and "cost" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


FORBIDDEN = re.compile(r"HKD|港元|恒生|Xiaomi|小米")


def test_no_company_currency_or_index_name_in_python_source():
    offenders = []
    for package in ("udfs", "workbook", "addin"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
