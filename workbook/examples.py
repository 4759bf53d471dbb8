"""The example valuation a model carries out of the box (示例估值假设), so its first open shows a
target price, filled sensitivity grids and a computed rating beside the published one.

Every input is either read from the company's own model or from the market assumptions of
workbook/data/valuation_examples.toml, and says where it came from: the 估值 sheet shows the
source beside each input and a banner saying the inputs are an example. Nothing here is a view
on the company: the P/E is the multiple the market pays today, rolled forward a year; the DCF
uses textbook market inputs. `import` writes it into every company file it makes; the shipped
company files carry the same, written by this function.
"""
from __future__ import annotations

from pathlib import Path

from . import spec
from .company import Company
from .tomlfile import read_toml

EXAMPLES_FILE = Path(__file__).parent / "data" / "valuation_examples.toml"


def _assumptions(currency: str | None) -> tuple[dict, dict]:
    data = read_toml(EXAMPLES_FILE)
    markets = data.get("currencies", {})
    return markets.get((currency or "").upper()) or markets["CNY"], data["method"]


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def example_valuation(company: Company) -> dict:
    """{"valuation": the [valuation] table (inputs, example = true, sources), "rating": {the
    benchmark return}} of an example valuation of `company`, from its model as it stands."""
    from .model import build_model
    model = build_model(company)
    v = model.value
    market, method = _assumptions(company.facts.get("reporting_currency"))
    plan = spec.valuation_plan(company.layout)
    inputs = {line.key for line in plan.scalars if line.formula is None}
    forecast = [y.label for y in company.forecast_years]
    reported = [y.label for y in company.years if y.kind == "actual"]
    first, second = forecast[0], forecast[1] if len(forecast) > 1 else forecast[0]
    price_local = v("price") * v("fx_rate")
    valuation: dict = {}
    sources: dict = {}

    # The market's own multiple today, rolled forward a year: P/E on EPS, else P/S on sales.
    multiple_weight = "pe"
    for key, base, name in (("pe", "val_eps", "摊薄每股收益"), ("ps", "val_sales_ps", "摊薄每股营业收入")):
        metric = _number(v(base, first)) if f"{key}_multiple" in inputs else None
        if metric and metric > 0:
            multiple = round(price_local / metric, 1)
            valuation.update({f"{key}_multiple": multiple, f"{key}_year": second})
            sources[f"{key}_multiple"] = (f"示例：当前股价（{price_local:.2f}，报告货币）对应 {first} {name} {metric:.2f} 的倍数 "
                                          f"{multiple:.1f}，前滚一年用于 {second}（估值测算表）")
            sources[f"{key}_year"] = f"示例：前滚一年，{first} 的市场倍数用于 {second}"
            multiple_weight = key
            break
    else:
        multiple_weight = None

    dcf = "rf" in inputs
    if dcf:
        valuation.update(rf=market["rf"], erp=market["erp"], beta=method["beta"], terminal_growth=market["terminal_growth"],
                         mid_year_switch=bool(method["mid_year_switch"]))
        sources.update(rf=market["rf_source"], erp=market["erp_source"], beta=method["beta_source"],
                       terminal_growth=market["terminal_growth_source"], mid_year_switch=method["mid_year_source"])
        debt_rate = _number(v("d_debt_rate", first)) if any(l.key == "d_debt_rate" for l in model.lines) else None
        valuation["cost_of_debt"] = debt_rate if debt_rate is not None else market["cost_of_debt"]
        sources["cost_of_debt"] = ("模型自身的借款利率（预测假设：借款利率）" if debt_rate is not None else market["cost_of_debt_source"])
        tax = _number(v("val_tax_rate", first)) if any(l.key == "val_tax_rate" for l in model.lines) else None
        valuation["val_tax"] = round(min(0.5, max(0.0, tax)), 4) if tax is not None else 0.25
        sources["val_tax"] = (f"模型 {first} 有效税率（估值测算表）" if tax is not None else "示例：法定税率 25%")
        debt, cap = _number(v("val_debt", reported[-1])) or 0.0, price_local * v("shares")
        valuation["debt_weight"] = round(debt / (debt + cap), 4) if debt + cap > 0 else 0.0
        sources["debt_weight"] = f"{reported[-1]} 有息负债 {debt:,.0f} ÷（有息负债 + 当前市值 {cap:,.0f}）"
    weights = {}
    if multiple_weight and dcf:
        weights = {f"weight_{multiple_weight}": method["weight_pe"], "weight_dcf": method["weight_dcf"]}
    elif multiple_weight or dcf:
        weights = {f"weight_{multiple_weight or 'dcf'}": 1.0}
    valuation.update(weights)
    sources.update({key: method["weights_source"] if len(weights) > 1 else "示例：唯一可用的方法" for key in weights})
    valuation["example"] = True
    valuation["sources"] = sources
    benchmark = round(market["rf"] + market["erp"], 4)
    sources["benchmark_return"] = "示例：基准指数预期收益率 = 无风险利率 + 股权风险溢价（β = 1 的市场组合）"
    return {"valuation": valuation, "rating": {"benchmark_return": benchmark}}
