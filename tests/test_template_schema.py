"""One template schema: where the checks sheet's blocks sit, which names a model must carry and
under which prefixes, and the rows of a sheet are decided once, in workbook/layout.py, and read
from there by build, check, refresh and roll."""
from __future__ import annotations

from pathlib import Path

import pytest

from addin import audit as audit_module
from addin.audit import audit
from addin.estimates import published_cells, read_model, revision_table
from addin.refresh import MARKET_INPUTS
from addin.roll import REVISIONS_SHEET, RollResult, add_revisions_sheet
from addin.template import NewerTemplateError, blueprint, template_names, verify_structure
from udfs.engine import BASE
from workbook import layout, xlsx
from workbook.build import template_findings, template_placement
from workbook.company import load
from workbook.layout import CHECKS, ENGLISH_COL, FIRST_ROW, HEADER_ROW, LABEL_COL, TITLE_ROW, cell_name
from workbook.model import build_model

ROOT = Path(__file__).resolve().parents[1]
XIAOMI = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"
# The checked-in templates, byte-identical to a build of their company files.
SHIPPED = {"xiaomi": (XIAOMI, ROOT / "workbook" / "data" / "xiaomi_1810hk.toml"),
           "kysec": (ROOT / "workbook" / "kysec_300592sz_model.xlsm", ROOT / "workbook" / "data" / "kysec_300592sz.toml")}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    """(company, its placement as the build makes it, the checked-in template built from them)."""
    model_file, company_file = SHIPPED[request.param]
    company = load(company_file)
    placement = template_placement(company, build_model(company), template_findings(company))
    return company, placement, model_file


# ------------------------------------------------------------------------------------------------
# Positions: the layout places, the build writes there, the readers find it there
# ------------------------------------------------------------------------------------------------
def test_every_name_the_layout_places_is_the_templates(shipped):
    _, placement, model_file = shipped
    names = xlsx.read(model_file).names
    assert {name: names.get(name) for name in placement.names} == placement.names



def test_every_name_in_the_template_is_under_a_prefix_the_template_declares(shipped):
    """No stray names: a bare `shares` or `wacc` would clash with a name the analyst defines."""
    company, _, model_file = shipped
    declared = set(layout.NAME_PREFIXES) | {s.prefix for s in company.layout.statements}
    names = set(xlsx.read(model_file).names) - {layout.TEMPLATE_VERSION_NAME}
    assert sorted(n for n in names if n.split("_")[0] not in declared) == []

def test_the_blocks_under_the_checks_follow_one_another(shipped):
    _, placement, _ = shipped
    blocks = placement.checks_blocks
    last_check = max(r for r, _ in placement.rows[CHECKS])
    rows = [last_check, blocks.audit_title, blocks.audit_summary, *blocks.audit_items, blocks.findings_title,
            blocks.findings_header, *blocks.findings_beyond, *blocks.findings_within, blocks.warnings.title,
            blocks.warnings.header, *blocks.warnings.rows, blocks.warnings.status]
    assert rows == sorted(set(rows))
    assert blocks.findings_beyond and blocks.findings_within  # both shipped reports disagree with themselves


def test_the_build_writes_each_block_on_the_row_the_layout_placed(shipped):
    _, placement, model_file = shipped
    package, blocks = xlsx.read(model_file), placement.checks_blocks

    def shown(row, col=LABEL_COL):
        return package.value(CHECKS, cell_name(row, col))
    assert shown(blocks.audit_title).startswith("审计 Audit")
    assert shown(blocks.audit_summary, ENGLISH_COL).startswith("尚未审计")
    assert package.name_cells(layout.AUDIT_SUMMARY) == [(CHECKS, cell_name(blocks.audit_summary, ENGLISH_COL))]
    assert shown(blocks.findings_title).startswith("报告自身不一致")
    assert shown(blocks.findings_header, LABEL_COL + layout.FINDINGS_FIELDS.index("year")) == "年份"
    assert shown(blocks.warnings.title).startswith("合理性提示")
    assert shown(blocks.warnings.status).startswith("合理性提示总体状态")
    assert shown(blocks.warnings.header, blocks.warnings.bounds[0]) == "下限 Min"


def test_every_row_kind_is_one_the_layout_declares(shipped):
    _, placement, _ = shipped
    kinds = {row.kind for rows in placement.rows.values() for _, row in rows}
    assert kinds <= set(layout.RowKind)
    assert {row.kind for _, row in placement.rows[CHECKS]} == {layout.RowKind.CHECK}


# ------------------------------------------------------------------------------------------------
# Names: required ones and prefixes come from the layout
# ------------------------------------------------------------------------------------------------
def test_every_name_the_layout_places_has_a_prefix_it_declares(shipped):
    company, placement, _ = shipped
    prefixes = set(layout.NAME_PREFIXES) | {s.prefix for s in company.layout.statements}
    assert {name.partition("_")[0] for name in placement.names} <= prefixes


def test_check_verifies_every_name_the_layout_places(shipped):
    _, placement, model_file = shipped
    package = xlsx.read(model_file)
    assert set(placement.names) <= set(template_names(package, blueprint(package)))


def test_the_names_refresh_reads_and_writes_are_required_and_present(shipped):
    _, _, model_file = shipped
    names = xlsx.read(model_file).names
    required = {layout.market_name(key) for key in layout.REQUIRED_MARKET_LINES}
    assert required <= set(names) and set(MARKET_INPUTS.values()) <= set(names)


@pytest.mark.parametrize("prefix", [layout.SCENARIO_PREFIX, layout.VALUATION_BASES_PREFIX, layout.VALUATION_PREFIX,
                                    layout.BASE_PREFIX, layout.WARNING_PREFIX, layout.AUDIT_PREFIX,
                                    layout.FINDINGS_PREFIX, "IS"])
def test_a_broken_name_under_any_template_prefix_is_refused(prefix):
    package = xlsx.read(XIAOMI)
    name = min(n for n in package.names if n.startswith(layout.defined_name(prefix, "")))
    package.names[name] = "'deleted sheet'!$C$5"
    with pytest.raises(xlsx.WorkbookError, match=f"the defined name {name} points at a missing sheet"):
        verify_structure(package)



@pytest.mark.parametrize("deleted", ["IS_revenue", "RAT_gross_margin", "BS_cash"])
def test_a_deleted_line_name_is_refused(shipped, deleted):
    """The blueprint records each home cell's name, so a line name an analyst deleted in Excel's
    Name Manager is found at every door, not only the names refresh itself reads."""
    _, _, model_file = shipped
    package = xlsx.read(model_file)
    del package.names[deleted]
    with pytest.raises(xlsx.WorkbookError, match=f"the defined name {deleted} is missing"):
        verify_structure(package)


def test_the_analysts_own_names_are_left_alone(shipped):
    """A constant, a name that happens to end in a line key, one under a line prefix and a link to
    another book are the analyst's: no door refuses the model for them."""
    _, _, model_file = shipped
    package = xlsx.read(model_file)
    package.names.update({"my_price": "1.05", "target_price": "42", "VAL_mine": "0.3", "old_eps": "[1]Sheet1!$A$1"})
    verify_structure(package)
    assert not {"my_price", "target_price", "VAL_mine", "old_eps"} & set(template_names(package, blueprint(package)))

def test_a_blueprint_without_the_later_label_column_is_still_read(tmp_path):
    original = xlsx.read(XIAOMI)
    sheet = original.sheets[layout.BLUEPRINT]
    label_col = layout.BLUEPRINT_COLUMNS.index("label") + 1  # split_ref counts columns from 1
    older = tmp_path / "older.xlsm"        # the column emptied in the file, as an older build left it
    xlsx.type_values(original, {(layout.BLUEPRINT, r): None for r in sheet.cells if xlsx.split_ref(r)[1] == label_col}, older)
    package = xlsx.read(older)
    verify_structure(package)
    assert blueprint(package) and all("label" not in row for row in blueprint(package))


# ------------------------------------------------------------------------------------------------
# A template from a newer add-in is told by its exception class
# ------------------------------------------------------------------------------------------------
def newer(package: xlsx.Package) -> xlsx.Package:
    package.custom[layout.TEMPLATE_VERSION_PROPERTY] = "9.0"
    return package


def test_a_newer_template_is_refused_with_its_own_class():
    with pytest.raises(NewerTemplateError):
        verify_structure(newer(xlsx.read(XIAOMI)))
    assert issubclass(NewerTemplateError, xlsx.WorkbookError)  # every door that refuses a damaged file refuses it


def test_check_audits_a_newer_template_and_fails_its_version():
    result = audit(newer(xlsx.read(XIAOMI)))
    assert result.version_failed and result.failed and result.checks_run


@pytest.mark.parametrize("refusal, words, audited", [
    (NewerTemplateError, "worded any way at all", True),
    (xlsx.WorkbookError, "made by a newer add-in, but a damaged file", False),
])
def test_check_goes_by_the_class_of_the_refusal_not_its_words(monkeypatch, refusal, words, audited):
    def refuse(package):
        raise refusal(words)
    monkeypatch.setattr(audit_module, "verify_structure", refuse)
    if audited:
        assert audit(xlsx.read(XIAOMI)).checks_run
    else:
        with pytest.raises(xlsx.WorkbookError):
            audit(xlsx.read(XIAOMI))


# ------------------------------------------------------------------------------------------------
# The revision sheet roll adds has the template's rows
# ------------------------------------------------------------------------------------------------
def test_the_revision_sheet_has_the_layouts_rows(tmp_path):
    estimates = read_model(XIAOMI)
    revisions = revision_table(estimates, estimates)
    result = RollResult(tmp_path / "rolled.xlsm", "2025", "2025E", "2028E", "", ["a note"], revisions=revisions,
                        old=estimates, new=estimates)
    source = xlsx.read(XIAOMI)
    add_revisions_sheet(source, result, result.path)
    package = xlsx.read(result.path)
    sheet = package.sheets[REVISIONS_SHEET]

    def shown(row, col=LABEL_COL):
        return package.value(REVISIONS_SHEET, cell_name(row, col))
    assert shown(TITLE_ROW).startswith("盈利预测调整")
    assert shown(HEADER_ROW) == "指标 Line"
    assert shown(FIRST_ROW) == revisions[0].label
    revenue_sheet = source.name_cells("IS_revenue")[0][0]
    header_style = source.sheets[revenue_sheet].cells[cell_name(HEADER_ROW, LABEL_COL)].attrs["s"]
    assert sheet.cells[cell_name(HEADER_ROW, LABEL_COL)].attrs["s"] == header_style  # the template's header row
    xml = package.members[sheet.path].decode("utf-8")
    assert f'ySplit="{FIRST_ROW}" topLeftCell="{cell_name(FIRST_ROW, LABEL_COL)}"' in xml


def test_the_published_lines_are_read_from_their_statement_row_in_year_order(shipped):
    """Not the base-year input on the drivers sheet: the revision sheet copies the style of the
    last cell, which must be a forecast formula, not an input."""
    company, _, model_file = shipped
    package = xlsx.read(model_file)
    rows = {(r["sheet"], r["cell"]): r for r in blueprint(package)}
    years = [y.label for y in company.years if y.kind != BASE]
    for key, cells in published_cells(package).items():
        assert len({sheet for sheet, _ in cells}) == 1, key
        assert [rows[c]["year"] for c in cells] == years, key
        assert rows[cells[-1]]["kind"] == "formula", key


@pytest.mark.parametrize("extra, says", [
    ('\n[[lines]]\nkey = "ticker"\ntable = "market"\nzh = "x"\nen = "x"\n', "line 'ticker' is declared twice"),
    ('\n[[lines]]\nkey = "odd"\ntable = "income"\nzh = "x"\nen = "x"\n', "is not one of market, rating"),
    ('\n[[lines]]\nkey = "odd"\ntable = "market"\nzh = "x"\nen = "x"\nweight = 1\n', "unknown field 'weight'"),
])
def test_the_common_lines_file_is_checked_like_a_layout(tmp_path, extra, says):
    from workbook import spec
    damaged = tmp_path / "common_lines.toml"
    damaged.write_text(spec.COMMON_LINES_FILE.read_text(encoding="utf-8") + extra, encoding="utf-8")
    with pytest.raises(spec.LayoutError, match=says):
        spec._load_common_lines(damaged)
