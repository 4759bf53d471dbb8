"""The source report's printed figures (the golden file) and the findings computed from them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from udfs.engine import bind_drivers
from udfs.findings import Finding, Printed, find, market_cap_finding

from .company import Company
from .model import company_lines
from .tomlfile import read_toml

# The tables a report file may carry, in the order a reference reads them; a layout's own
# tables (the summary, the ratio table) are printed under these keys too.
TABLES = ("summary", "income", "balance", "cashflow", "ratios")


@dataclass
class Report:
    path: Path
    data: dict

    @property
    def years(self) -> list[str]:
        return list(self.data["source"]["years"])

    def rows(self, table: str) -> list[dict]:
        return list(self.data.get(table, []))

    def printed(self) -> dict:
        """(table, key, year) -> Printed, for every figure of the four tables."""
        out = {}
        for table in TABLES:
            for row in self.rows(table):
                for year, value in zip(self.years, row["values"]):
                    out[(table, row["key"], year)] = Printed(float(value), int(row.get("decimals", 0)), bool(row.get("percent")))
        return out


def report_path_for(company: Company) -> Path:
    """A company's report file sits beside its data file: NAME.report.toml for NAME.toml."""
    return company.path.with_name(company.path.stem + ".report.toml")


def load_report(path: str | Path) -> Report:
    path = Path(path)
    return Report(path, read_toml(path))


def findings(company: Company, report: Report) -> list[Finding]:
    """Every place where the report's printed figures disagree with each other."""
    lines = bind_drivers(company_lines(company), company.drivers)
    printed = report.printed()
    for key, value in company.inputs.items():  # base-year figures the first growth rates need
        line_key, year = key
        if year not in report.years and line_key in company.layout.base_lines:
            printed[("base", line_key, year)] = Printed(value, 0)
    market = report.data["market"]
    scalars = {
        "shares": Printed(round(market["shares_100mn"] * 100, 6), _places(market["shares_100mn"]) - 2),
        "price": Printed(market["price"], 2),
        "fx_rate": Printed(market["fx_rate"], _places(market["fx_rate"])),
    }
    years = company.years
    found = find(lines, years, printed, scalars, ["income", "summary", "balance", "cashflow", "ratios", "base"])
    cap = market_cap_finding(Printed(market["price"], 2), Printed(market["shares_100mn"], _places(market["shares_100mn"])),
                             Printed(market["market_cap_100mn"], _places(market["market_cap_100mn"])),
                             company.facts.get("quote_currency", ""))
    return found + ([cap] if cap else [])


def _places(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0
