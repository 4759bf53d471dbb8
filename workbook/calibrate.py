"""Derive a company's forecast drivers from a report's printed forecast, so that the model
reproduces the report. Run once per report; its output goes into the company data file, where
the analyst then owns the drivers:

    python -m workbook.calibrate workbook/data/xiaomi_1810hk.report.toml

Each driver is solved so that its line hits the printed figure, given the values the model
itself computes for the line's base and prior year (not the printed ones), repeated until the
drivers stop moving. Where the report's own rounding makes printed parts disagree with their
printed total (segments summing to 475,995 against a printed 475,994), the parts are aimed at
values within half a unit of their print that do add up (DEROUND below), so that every line,
part and total, lands within one unit of the report.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# line -> (method, base line, note)
CHOICES = {
    "smartphone": ("growth", None, ""),
    "iot": ("growth", None, ""),
    "internet": ("growth", None, ""),
    "other_revenue": ("fixed", None, ""),
    "auto": ("growth", None, ""),
    "cogs": ("cost_from_margin", "revenue", ""),
    "other_income": ("fixed", None, ""),
    "opex": ("cost_share", "revenue", ""),
    "net_finance": ("fixed", None, ""),
    "associates": ("fixed", None, ""),
    "income_tax": ("cost_share", "pretax_profit", "effective tax rate"),
    "minority_pl": ("fixed", None, ""),
    "securities": ("step", None, "held flat"),
    "receivables": ("days", "revenue", ""),
    "inventory": ("days", "cogs", ""),
    "other_current_assets": ("share", "revenue", ""),
    "lt_investments": ("step", None, ""),
    "other_noncurrent_assets": ("fixed", None, ""),
    "payables": ("days", "cogs", ""),
    "short_term_debt": ("fixed", None, ""),
    "other_current_liabilities": ("share", "revenue", ""),
    "long_term_debt": ("step", None, ""),
    "other_noncurrent_liabilities": ("fixed", None, ""),
    "da": ("fixed", None, ""),
    "cfo_other": ("fixed", None, "the report's method is not disclosed"),
    "capex": ("fixed", None, ""),
    "disposals": ("fixed", None, ""),
    "share_capital_change": ("fixed", None, ""),
    "dividends": ("fixed", None, ""),
    "other_lt_liability_change": ("share", "net_finance", "the report's forecast equals net finance cost"),
}
# Standalone driver -> (line it makes hit its print, what the rest of that line's formula is)
STANDALONE = {
    "d_non_ifrs_adjustment": ("non_ifrs_net_profit", "Non-IFRS net profit less attributable profit, as the report's figures imply"),
    "d_ebit_adjustment": ("ebit", "EBIT less operating profit; the report does not disclose its EBIT definition"),
    "d_ppe_other": ("ppe", "PP&E movement not explained by capex, D&A and disposals (not disclosed)"),
    "d_fcf_adjustment": ("fcf", "Report FCF less (CFO + capex); the report does not disclose its FCF definition"),
}
PLACES = {"growth": 8, "share": 8, "cost_share": 8, "cost_from_margin": 8, "days": 6, "fixed": 2, "step": 2}
# Drivers whose printed figures all agree, to the unit, with round values: the analysts' own inputs.
ROUND_NUMBERS = {"income_tax": [0.175, 0.175, 0.175], "iot": [0.23, 0.07, 0.07]}

# Where printed parts disagree with their printed total, the gap is spread evenly over the parts
# the model forecasts (each moved by at most half a unit): total -> (adjustable parts, all parts).
DEROUND = {
    "revenue": (("smartphone", "iot", "internet", "auto"), ("smartphone", "iot", "internet", "other_revenue", "auto")),
    "ebitda": (("ebit", "da"), ("ebit", "da")),
    "current_assets": (("receivables", "inventory", "other_current_assets"),
                       ("cash", "securities", "receivables", "inventory", "other_current_assets")),
    "noncurrent_assets": (("lt_investments", "ppe", "other_noncurrent_assets"),
                          ("lt_investments", "ppe", "other_noncurrent_assets")),
    "current_liabilities": (("payables", "other_current_liabilities"),
                            ("payables", "short_term_debt", "other_current_liabilities")),
    "noncurrent_liabilities": (("long_term_debt", "other_noncurrent_liabilities"),
                               ("long_term_debt", "other_noncurrent_liabilities")),
}


def printed_lines(report: dict) -> dict[str, list[float]]:
    lines = {}
    for table in ("income", "balance", "cashflow"):
        for row in report[table]:
            lines.setdefault(row["key"], [float(v) for v in row["values"]])
    return lines


def targets(report: dict, first_forecast: int) -> dict[str, list[float]]:
    """The printed figures, with parts de-rounded to add up to their printed totals."""
    printed = printed_lines(report)
    goal = {k: list(v) for k, v in printed.items()}
    for total, (adjustable, parts) in DEROUND.items():
        for t in range(first_forecast, len(printed[total])):
            gap = printed[total][t] - sum(printed[k][t] for k in parts)
            for k in adjustable:
                goal[k][t] += gap / len(adjustable)
    return goal


def solve(method: str, target: float, prior: float, base: float | None) -> float:
    if method == "growth":
        return target / prior - 1
    if method == "step":
        return target - prior
    if method == "fixed":
        return target
    if method == "share":
        return target / base
    if method == "cost_share":
        return -target / base
    if method == "cost_from_margin":
        return 1 + target / base
    if method == "days":
        return target / abs(base) * 365
    raise ValueError(method)


def calibrate(report: dict, company_path: Path, rounds: int = 8) -> dict[str, dict]:
    """Drivers (TOML-ready tables) that make the company's model hit the report's print."""
    from workbook.company import load
    from workbook.model import build_model

    labels = report["source"]["years"]
    company = load(company_path)
    forecast = [y.label for y in company.forecast_years]
    goal = targets(report, labels.index(forecast[0]))
    for _ in range(rounds):
        model = build_model(company)
        for line, (method, base, _) in CHOICES.items():
            values = []
            for year in forecast:
                t = labels.index(year)
                prior = model.value(line, labels[t - 1])
                base_value = model.value(base, year) if base else None
                value = ROUND_NUMBERS[line][forecast.index(year)] if line in ROUND_NUMBERS else solve(method, goal[line][t], prior, base_value)
                values.append(round(value, PLACES[method]))
            company.drivers[line].values = values
            for year, value in zip(forecast, values):
                company.inputs[(f"d_{line}", year)] = value
        for key, (line, _) in STANDALONE.items():
            for year in forecast:
                t = labels.index(year)
                current = company.inputs[(key, year)]
                rest = model.value(line, year) - current
                company.inputs[(key, year)] = round(goal[line][t] - rest, 2)
    out = {}
    for line, (method, base, note) in CHOICES.items():
        entry = {"method": method}
        if base:
            entry["base"] = base
        entry["values"] = company.drivers[line].values
        if note:
            entry["note"] = note
        out[line] = entry
    for key, (_, note) in STANDALONE.items():
        out[key] = {"method": "input", "values": [company.inputs[(key, y)] for y in forecast], "note": note}
    return out


def _toml_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def to_toml(drivers: dict[str, dict]) -> str:
    blocks = []
    for key, entry in drivers.items():
        blocks.append(f"[drivers.{key}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in entry.items()))
    return "\n".join(blocks)


def main(argv: list[str]) -> int:
    report_path = Path(argv[0])
    company_path = Path(argv[1]) if len(argv) > 1 else report_path.with_name(report_path.name.replace(".report", ""))
    report = tomllib.loads(report_path.read_text(encoding="utf-8"))
    print(to_toml(calibrate(report, company_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
