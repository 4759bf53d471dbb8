"""The calibration keeps what its fit of the print reaches: a line the note does not print is kept
to the note's precision, and drivers whose rounding adds up in a total are kept finer (the corpus
test checks the cells this brings back)."""
from __future__ import annotations

from types import SimpleNamespace

from workbook.calibrate import money_decimals


def _company(*lines):
    return SimpleNamespace(layout=SimpleNamespace(lines=[SimpleNamespace(key=k, table=t) for k, t in lines]))


def test_a_line_the_note_does_not_print_is_kept_to_the_precision_of_its_table():
    report = {"balance": [{"key": "cash", "decimals": 2, "values": []}, {"key": "debt", "decimals": 2, "values": []},
                          {"key": "bvps", "decimals": 3, "values": []}],
              "income": [{"key": "revenue", "decimals": 0, "values": []},
                         {"key": "margin", "decimals": 1, "percent": True, "values": []}]}
    company = _company(("cash", "balance"), ("equity_rest", "balance"), ("costs_before_da", "income"),
                       ("dividend", "drivers"))
    decimals = money_decimals(report, company)
    assert decimals["cash"] == 2 and decimals["bvps"] == 3
    assert decimals["equity_rest"] == 2       # the balance sheet's money is printed to the cent
    assert decimals["costs_before_da"] == 0   # the income statement's in whole units (a rate does not count)
    assert "dividend" not in decimals and "margin" not in decimals
