"""`python -m addin import`: a broker note's text to layout, company, report files and a model."""
from __future__ import annotations

import math

import pytest

from conftest import KYSEC_SEED, ROOT, XIAOMI_SEED, needs_seeds
from in_process import run_cli
from udfs.findings import round_half_up
from workbook.company import load
from workbook.importer import ImportFailed, import_note
from workbook.model import build_model
from workbook.report import findings, load_report, reproduction

pytestmark = pytest.mark.xdist_group("import")  # one worker imports each seed note, once

DATA = ROOT / "workbook" / "data"

# A clearly fictional note in a layout the project has not seen: other labels, other lines,
# converter damage (a space inside a number, a negative in parentheses, full-width digits).
FICTIONAL_NOTE = """# 示例仪器（999999.SH）：虚构公司的示例研究报告

2026 年 05 月 06 日

投资评级：买入（首次）

市场数据
当前股价(元)\t25.00
一年最高最低(元)\t30.00/18.00
总市值(亿元)\t25.00
总股本(亿股)\t1.00

利润表(百万元)\t2024A\t2025E\t2026E
营业收入\t1000\t1 200\t1400
营业成本\t600\t700\t800
销售费用\t100\t120\t140
营业利润\t300\t380\t460
所得税\t75\t95\t115
净利润\t225\t285\t345
少数股东损益\t5\t5\t5
归母净利润\t220\t280\t340
EPS(元)\t2.20\t2.80\t3.40

资产负债表(百万元)\t2024A\t2025E\t2026E
货币资金\t500\t665\t880
应收账款\t200\t240\t280
存货\t150\t180\t210
流动资产合计\t850\t1085\t1370
固定资产\t400\t450\t500
资产总计\t1250\t1535\t1870
短期借款\t100\t100\t100
应付账款\t120\t140\t160
负债合计\t220\t240\t260
少数股东权益\t20\t25\t30
归属母公司股东权益\t1010\t1270\t1580
负债和股东权益\t1250\t1535\t1870

现金流量表(百万元)\t2024A\t2025E\t2026E
经营活动现金流\t245\t295\t365
净利润\t225\t285\t345
折旧摊销\t50\t60\t70
营运资金变动\t-30\t-50\t-50
投资活动现金流\t-145\t-110\t-120
资本支出\t-100\t-110\t-120
其他投资现金流\t-45\t0\t0
筹资活动现金流\t-5\t-20\t-30
借款增加\t5\t0\t0
分红\t(10)\t-20\t-30
其他筹资现金流\t0\t0\t0
现金净增加额\t９５\t165\t215
"""


def cli(*args):
    return run_cli(*args)


@pytest.fixture(scope="module")
def kysec_import(tmp_path_factory):
    return import_note(KYSEC_SEED, tmp_path_factory.mktemp("kysec"), stem="kysec_300592sz")


@pytest.fixture(scope="module")
def xiaomi_import(tmp_path_factory):
    return import_note(XIAOMI_SEED, tmp_path_factory.mktemp("xiaomi"), stem="xiaomi_1810hk")


@needs_seeds
def test_importing_the_kysec_seed_gives_the_committed_data_files(kysec_import):
    """The committed 华凯易佰 files are the import's output: importing again changes nothing."""
    assert kysec_import.layout.name == "kysec_a" and kysec_import.layout_written is None
    for suffix in (".toml", ".report.toml", ".import.txt"):
        fresh = (kysec_import.directory / f"kysec_300592sz{suffix}").read_text(encoding="utf-8")
        committed = (DATA / f"kysec_300592sz{suffix}").read_text(encoding="utf-8")
        assert fresh == committed, f"re-import and commit kysec_300592sz{suffix}"
    assert kysec_import.ok and kysec_import.balanced and kysec_import.unexplained == 0


def _shown(model, report):
    """(table, key, year) -> what the model shows at the printed precision, for every printed cell."""
    by_key = {line.key: line for line in model.lines}
    out = {}
    for (table, key, year), printed in report.printed().items():
        if key not in by_key or table == "base":
            continue
        value = model.value(key, year)
        scale = 100 if printed.percent else 1
        out[(table, key, year)] = round_half_up(value * scale, printed.decimals) \
            if isinstance(value, float) and math.isfinite(value) else value
    return out


@needs_seeds
def test_importing_the_xiaomi_seed_gives_the_hand_maintained_model_except_the_base_year(xiaomi_import):
    """Cell for cell, the imported Xiaomi model shows what the hand-maintained one shows. The
    differences: the 2023 growth rates, which need FY2022 figures the note does not print (the
    hand-maintained file carries them from the company's annual report)."""
    imported = build_model(load(xiaomi_import.company_path))
    maintained = build_model(load(DATA / "xiaomi_1810hk.toml"))
    report = load_report(DATA / "xiaomi_1810hk.report.toml")
    a, b = _shown(imported, report), _shown(maintained, report)
    differing = {cell for cell in b if a.get(cell) != b[cell]}
    assert differing == {("summary", "revenue_growth", "2023"), ("summary", "non_ifrs_growth", "2023")}
    assert xiaomi_import.layout.name == "everbright_hk"
    assert imported.balanced
    missed = reproduction(imported, load_report(xiaomi_import.report_path), findings(load(xiaomi_import.company_path),
                                                                                     load_report(xiaomi_import.report_path)))
    assert {(m.key, m.year) for m in missed} == {("non_ifrs_eps", "2025E"), ("non_ifrs_growth", "2025E"),
                                                 ("revenue_growth", "2023"), ("non_ifrs_growth", "2023")}
    assert all(m.explanation for m in missed)


@needs_seeds
def test_the_committed_import_reports_are_what_import_writes(xiaomi_import, kysec_import):
    assert (DATA / "xiaomi_1810hk.import.txt").read_text(encoding="utf-8") == xiaomi_import.text_path.read_text(encoding="utf-8")
    text = (DATA / "kysec_300592sz.import.txt").read_text(encoding="utf-8")
    for expected in ("Layout: kysec_a (known)", "not placed: 0", "Model checks: 39/39 pass", "short_term_debt",
                     "Tables found"):
        assert expected in text, expected


def test_a_fictional_note_in_an_unseen_layout_becomes_a_balanced_model(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE, encoding="utf-8")
    run = cli("import", str(note), "-o", str(tmp_path), "--name", "example")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "inferred" in run.stdout and "0 unexplained" in run.stdout
    layout_file = tmp_path / "example.layout.toml"
    assert layout_file.is_file()
    model = build_model(load(tmp_path / "example.toml"))
    assert model.balanced
    assert model.value("revenue", "2025E") == pytest.approx(1200, abs=0.5)
    assert model.value("cash", "2026E") == pytest.approx(880, abs=0.5)
    assert model.value("eps", "2026E") == pytest.approx(3.40, abs=0.005)
    text = (tmp_path / "example.import.txt").read_text(encoding="utf-8")
    for expected in ("space inside a number", "parentheses for a negative", "full-width characters",
                     "营业利润 = 营业收入 − 营业成本 − 销售费用"):
        assert expected in text, expected
    assert (tmp_path / "example.xlsm").is_file()
    run = cli("check", str(tmp_path / "example.xlsm"))
    assert run.returncode == 0 and "RESULT: OK" in run.stdout, run.stdout + run.stderr


def test_a_note_without_a_cash_flow_statement_is_refused_in_one_line(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE.split("现金流量表")[0], encoding="utf-8")
    run = cli("import", str(note), "-o", str(tmp_path))
    assert run.returncode != 0 and "cashflow" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.toml"))


def test_a_printed_balance_sheet_that_does_not_balance_exits_non_zero(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE.replace("负债和股东权益\t1250", "负债和股东权益\t1290")
                    .replace("归属母公司股东权益\t1010", "归属母公司股东权益\t1050"), encoding="utf-8")
    run = cli("import", str(note), "-o", str(tmp_path))
    assert run.returncode != 0 and "does not balance" in run.stderr, run.stdout + run.stderr


def test_missing_output_folder_and_missing_note_are_one_line(tmp_path):
    run = cli("import", str(tmp_path / "none.txt"), "-o", str(tmp_path))
    assert run.returncode != 0 and "no such note file" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE, encoding="utf-8")
    result = import_note(note, tmp_path / "missing" / "models", build=False)    # -o is created
    assert result.company_path.parent == tmp_path / "missing" / "models" and result.company_path.is_file()
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    with pytest.raises(ImportFailed, match="not a folder"):
        import_note(note, tmp_path / "a_file")


def test_notes_without_a_ticker_imported_into_one_folder_keep_apart(tmp_path):
    """A note that prints no ticker is named after its own file (made a plain stem), so a second
    one imported into the same folder does not collide with the first."""
    unnamed = FICTIONAL_NOTE.replace("# 示例仪器（999999.SH）：虚构公司的示例研究报告", "# 虚构公司的示例研究报告")
    first, second = tmp_path / "broker a note.txt", tmp_path / "乙 note (2).txt"
    first.write_text(unnamed, encoding="utf-8")
    second.write_text(unnamed, encoding="utf-8")
    out = tmp_path / "models"
    a = import_note(first, out, build=False)
    b = import_note(second, out, build=False)
    assert a.stem == "broker_a_note_20260506" and b.stem == "乙_note_2_20260506"
    assert a.company_path.is_file() and b.company_path.is_file() and a.company_path != b.company_path


def test_a_cash_flow_of_section_totals_takes_its_memo_rows_as_their_parts(tmp_path, monkeypatch):
    """A cash flow printed as its three sections and the net change, with D&A, capex and the
    working-capital change printed below as memo rows: D&A is added back in the operating section
    and capex is the investing section's, the rest of each a line the note does not print; the
    model shows every printed cell, with no plug."""
    from workbook import importer
    monkeypatch.setattr(importer, "choose_layout", lambda *_args: None)     # as an unseen layout would be
    memo = ("现金流量表(百万元)\t2024A\t2025E\t2026E\n经营活动现金流\t245\t295\t365\n投资活动现金流\t-145\t-110\t-120\n"
            "筹资活动现金流\t-5\t-20\t-30\n现金净增加额\t95\t165\t215\n折旧摊销\t50\t60\t70\n资本支出\t-100\t-110\t-120\n"
            "营运资金变动\t-30\t-50\t-50\n")
    note = tmp_path / "note.txt"
    note.write_text(FICTIONAL_NOTE[:FICTIONAL_NOTE.index("现金流量表")] + memo, encoding="utf-8")
    result = import_note(note, tmp_path / "out", stem="memo", build=False)
    assert result.ok and result.explained == 0
    formulas = {line.key: line.formula for line in result.layout.lines}
    assert formulas["cfo"] == "da + working_capital_change + cfo_unprinted"
    assert formulas["cfi"] == "capex + cfi_unprinted"
    assert formulas["cash"] == "prev(cash) + net_cash_flow"
    text = result.text_path.read_text(encoding="utf-8")
    assert "printed as its total alone" in text
