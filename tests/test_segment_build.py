"""Issue 13 item 7: a segment build where the note prints the volumes. A layout can drive a
segment's revenue as volume x price (`per_unit` on a volume line) and its cost of sales from the
segment's own gross margin; calibration derives the volumes' growth, the prices and the margins
from a print, and the built workbook computes the same. The fictional layout and note here are
data a test writes (the Xiaomi note prints no shipments or prices, so its segments keep growth)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fictional import company_head, layout_head, tail
from formulas_bridge import Evaluated
from workbook.calibrate import calibrate, write_drivers
from workbook.company import load
from workbook.model import build_model
from workbook_reader import Template

LAYOUT = layout_head("segments_example", "A fictional layout with a volume x price segment build, written by a test",
                     "revenue", ("revenue", "profit", "eps"),
                     "revenue + phone_cogs + ev_cogs", "cash", "profit + debt - prev(debt)") + tail("segments_example.lines.toml")
# Its starting drivers are placeholders: calibration replaces their values from the print.
COMPANY = company_head("虚构分部科技", "Segment Tech (fictional)", "SEGX.US", "segments_example.toml") + tail("segtech.figures.toml")

# The fictional note's print: shipments, deliveries and each segment's revenue and cost.
PRINT = {
    "phone_units": [10, 11, 11.5], "phones": [2000, 2255, 2415], "ev_units": [0.1, 0.15, 0.2],
    "evs": [3000, 4350, 5600], "revenue": [5000, 6605, 8015], "phone_cogs": [-1600, -1781, -1884],
    "ev_cogs": [-2400, -3393, -4256], "profit": [1000, 1431, 1875],
}
DECIMALS = {"phone_units": 1, "ev_units": 2}


def _report() -> dict:
    rows = [{"key": key, "label": key, "decimals": DECIMALS.get(key, 0), "percent": False, "values": values}
            for key, values in PRINT.items()]
    return {"source": {"years": ["2025A", "2026E", "2027E"], "date": "2026-01-05", "company": "虚构分部科技", "ticker": "SEGX.US"},
            "market": {"price": 20.0, "fx_rate": 1.0, "shares_100mn": 1.0, "market_cap_100mn": 20.0},
            "income": rows, "balance": [], "cashflow": []}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    (folder / "segments_example.toml").write_text(LAYOUT, encoding="utf-8")
    path = folder / "segtech.toml"
    path.write_text(COMPANY, encoding="utf-8")
    write_drivers(path, calibrate(_report(), path))
    return load(path)


def test_calibration_derives_volumes_prices_and_segment_margins_from_the_print(calibrated):
    model = build_model(calibrated)
    for key, values in PRINT.items():
        for year, printed in zip(("2026E", "2027E"), values[1:]):
            places = DECIMALS.get(key, 0)
            assert round(model.value(key, year), places) == pytest.approx(printed), (key, year)
    assert calibrated.drivers["phones"].method == "per_unit"
    # 2,255 on 11.0 million phones: an average selling price of about 205 a phone
    assert calibrated.inputs[("d_phones", "2026E")] == pytest.approx(2255 / 11, rel=5e-3)
    assert calibrated.inputs[("d_phone_cogs", "2026E")] == pytest.approx(1 - 1781 / 2255, abs=1e-3)


def test_revenue_is_volume_times_price_and_cost_follows_the_segment_margin(calibrated):
    base = build_model(calibrated)
    inputs = dict(calibrated.inputs)
    inputs[("d_ev_units", "2026E")] += 0.5            # deliveries grow 50 points faster
    faster = build_model(replace(calibrated, inputs=inputs))
    units, price, margin = (faster.value("ev_units", "2026E"), calibrated.inputs[("d_evs", "2026E")],
                            calibrated.inputs[("d_ev_cogs", "2026E")])
    assert faster.value("evs", "2026E") == pytest.approx(units * price)
    assert faster.value("ev_cogs", "2026E") == pytest.approx(-units * price * (1 - margin))
    assert faster.value("phones", "2026E") == pytest.approx(base.value("phones", "2026E"))  # the other segment stays
    assert faster.value("profit", "2026E") - base.value("profit", "2026E") == pytest.approx(
        (units - base.value("ev_units", "2026E")) * price * margin)
    assert faster.balanced


def test_the_workbook_computes_the_segment_build(calibrated, tmp_path):
    from workbook.build import build
    path = build(tmp_path / "segtech.xlsm", calibrated)
    template = Template(path)
    solution = Evaluated(path).calculate()
    model = build_model(calibrated)
    for key in ("phone_units", "phones", "ev_units", "evs", "phone_cogs", "ev_cogs", "profit"):
        for year in ("2026E", "2027E"):
            got = solution[template.cell_by_name(f"IS_{key}", year)]
            assert math.isclose(got, model.value(key, year), rel_tol=1e-9), (key, year, got)
