"""What a refresh works out once and keeps (the sensitivity table's fingerprint, the company a
model holds, the structure check and audit per blueprint) never goes stale: each test makes the
kept thing wrong if it were kept past a change, and requires the refresh to see the change."""
from __future__ import annotations

import pytest

from addin.refresh import refresh_file, sensitivity_cells
from test_incremental import AS_OF, NOW, TEMPLATES, _quote_file
from workbook import xlsx
from workbook.layout import SENSITIVITY_GRID, SENSITIVITY_ROWS

SPARE = "Z200"   # an empty cell of the sensitivity sheet, read by nothing but the axis formula below


def _grid(path) -> list:
    package = xlsx.read(path)
    return [package.value(*cell) for cell in package.name_cells(SENSITIVITY_GRID)]


def _axis_reads_a_spare_cell(source, target, spare_value: float) -> tuple[str, str]:
    """`source` copied to `target` with the table's first row-axis cell made the formula
    `=SPARE` and SPARE typed as `spare_value`; the axis cell (sheet, ref)."""
    package = xlsx.read(source)
    sheet, ref = package.name_cells(SENSITIVITY_ROWS)[0]
    part = package.sheets[sheet]
    cell = part.cells[ref]
    assert cell.formula is None, "the template's axis cells are typed inputs"
    data = part.data()
    edited = target.with_name("formula.xlsm")
    xlsx.write(package, {part.path: data[:cell.start_tag_end] + f"<f>{SPARE}</f>".encode() + data[cell.start_tag_end:]},
               edited)
    xlsx.type_values(xlsx.read(edited), {(sheet, SPARE): spare_value}, target)
    return sheet, ref


def test_an_edit_reaching_the_table_through_a_formula_axis_re_runs_it_and_a_price_does_not(tmp_path):
    """(The first template: the second's table shows one EPS at every point of its default axes.)"""
    template = "xiaomi"
    model = tmp_path / "model.xlsm"
    first_x = xlsx.read(TEMPLATES[template]).value(*xlsx.read(TEMPLATES[template]).name_cells(SENSITIVITY_ROWS)[0])
    sheet, axis = _axis_reads_a_spare_cell(TEMPLATES[template], model, first_x)
    refresh_file(model, str(_quote_file(xlsx.read(model), tmp_path, 1.0)), AS_OF, now=NOW)
    before = _grid(model)

    # the spare cell typed (the axis formula's cached value left stale, as any editor but Excel leaves it)
    moved_x = first_x + 0.07
    edited = tmp_path / "edited.xlsm"
    xlsx.type_values(xlsx.read(model), {(sheet, SPARE): moved_x}, edited)
    assert xlsx.read(edited).value(sheet, axis) == first_x
    # what the table must show: the same model with that axis value typed in
    twin = tmp_path / "twin.xlsm"
    xlsx.type_values(xlsx.read(model), {(sheet, axis): moved_x}, twin)
    expected = sensitivity_cells(xlsx.read(twin), twin.name)
    assert list(expected.values()) != before, "the moved axis value does not move the table: no test"

    result = refresh_file(edited, str(_quote_file(xlsx.read(edited), tmp_path, 1.0)), AS_OF, now=NOW)
    assert result.table_recomputed is True
    assert xlsx.read(edited).value(sheet, axis) == moved_x
    assert _grid(edited) == pytest.approx(list(expected.values()), rel=1e-12)

    # a new price alone: the table stands, and a refresh after it still finds nothing to re-run
    for move in (1.04, 1.0):
        result = refresh_file(edited, str(_quote_file(xlsx.read(edited), tmp_path, move)), AS_OF, now=NOW,
                              accept_move=True)
        assert result.table_recomputed is False
        assert _grid(edited) == pytest.approx(list(expected.values()), rel=1e-12)


def test_the_company_a_model_holds_is_made_again_whenever_what_it_is_made_from_changes(tmp_path):
    """current_company is kept by content: the same cells give the same company (not made
    again); a driver typed, the scenario chosen, a stored company file edited each give the
    company they make, never the one kept from before."""
    from addin.source import RollError, current_company
    from addin.template import blueprint
    from udfs.engine import driver_key
    from workbook.layout import SOURCE

    template = TEMPLATES["xiaomi"]
    package = xlsx.read(template)
    company = current_company(package, template.name)
    assert current_company(xlsx.read(template), template.name) is company

    year = company.forecast_years[0].label
    drivers = {driver_key(key) for key in company.drivers}
    row = next(r for r in blueprint(package) if r["kind"] == "input" and r["key"] in drivers and r["year"] == year
               and (r["key"], year) in company.inputs)
    cell, line = (row["sheet"], row["cell"]), (row["key"], year)
    original = company.inputs[line]
    moved = original + 0.123
    typed = tmp_path / "typed.xlsm"
    xlsx.type_values(package, {cell: moved}, typed)
    edited = current_company(xlsx.read(typed), typed.name)
    assert edited.inputs[line] == moved
    assert company.inputs[line] == original, "the kept company was changed"
    # the same figure typed as text: refused as the model's inputs are (RollError), not the company kept
    as_text = tmp_path / "as_text.xlsm"
    xlsx.type_values(xlsx.read(typed), {cell: repr(moved)}, as_text)
    with pytest.raises(RollError, match="where a number belongs"):
        current_company(xlsx.read(as_text), as_text.name)
    assert current_company(xlsx.read(template), template.name) is company

    # the stored company file edited (its name, as the rest of the text stays): the company follows it
    stored_ref = next(ref for ref in package.sheets[SOURCE].cells
                      if isinstance(package.value(SOURCE, ref), str) and 'name_en = "' in package.value(SOURCE, ref))
    text = package.value(SOURCE, stored_ref)
    renamed = tmp_path / "renamed.xlsm"
    xlsx.type_values(package, {(SOURCE, stored_ref): text.replace('name_en = "', 'name_en = "Renamed ', 1)}, renamed)
    assert current_company(xlsx.read(renamed), renamed.name).facts["name_en"].startswith("Renamed ")
    assert not company.facts["name_en"].startswith("Renamed ")


def test_checks_worked_out_once_per_blueprint_still_refuse_a_damaged_model(tmp_path):
    """The structure check and the audit keep what they derive from a blueprint (addin.template
    per_blueprint); a model of the same blueprint damaged after a sound one was checked must
    still be refused, each damage named."""
    from addin.audit import audit
    from addin.template import blueprint, verify_structure
    from workbook.layout import label_cell

    template = TEMPLATES["xiaomi"]
    sound = xlsx.read(template)
    verify_structure(sound)
    clean = audit(sound)
    assert not (clean.overrides or clean.edited or clean.unknown_functions)
    rows = blueprint(sound)
    labelled = next(r for r in rows if r.get("label") and r["kind"] == "formula")

    def damaged(values: dict, formulas: dict = {}) -> xlsx.Package:
        path = tmp_path / f"damaged{len(list(tmp_path.iterdir()))}.xlsm"
        package = xlsx.read(template)
        replaced = {}
        for (sheet, ref), text in formulas.items():
            part = package.sheets[sheet]
            start, end = part.cells[ref].formula_span
            replaced[part.path] = part.data()[:start] + f"<f>{xlsx.escape_data(text)}</f>".encode() + part.data()[end:]
        edited = tmp_path / "edited.xlsm"
        xlsx.write(package, replaced, edited)
        xlsx.type_values(xlsx.read(edited), values, path)
        return xlsx.read(path)

    where = (labelled["sheet"], label_cell(labelled["cell"]))
    with pytest.raises(xlsx.WorkbookError, match="rows or labels moved"):
        verify_structure(damaged({where: "moved"}))
    home = (labelled["sheet"], labelled["cell"])
    with pytest.raises(xlsx.WorkbookError, match="holds the text"):
        verify_structure(damaged({home: "typed text"}))

    formulas = [r for r in rows if r["kind"] == "formula" and r["sheet"] != labelled["sheet"]]
    edited_row = formulas[0]
    unknown_row = next(r for r in reversed(formulas) if r["sheet"] != edited_row["sheet"])   # one edit a sheet
    result = audit(damaged({home: 12.5}, {(edited_row["sheet"], edited_row["cell"]): edited_row["formula"] + "+1",
                                          (unknown_row["sheet"], unknown_row["cell"]): "NOT_A_FUNCTION(1)"}))
    assert [(o.sheet, o.cell, o.value) for o in result.overrides] == [(*home, 12.5)]
    assert {(e.sheet, e.cell) for e in result.edited} == {(edited_row["sheet"], edited_row["cell"]),
                                                          (unknown_row["sheet"], unknown_row["cell"])}
    assert result.unknown_functions == [(unknown_row["sheet"], unknown_row["cell"], "NOT_A_FUNCTION")]
    # and the sound model still passes both after them
    verify_structure(xlsx.read(template))
    assert not audit(xlsx.read(template)).edited
