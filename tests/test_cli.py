"""`python -m addin show` as a user runs it."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def run(*args: str):
    return subprocess.run([sys.executable, "-m", "addin", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_show_prints_summary_as_in_report_and_rating():
    result = run("show")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()
    revenue = next(l for l in lines if l.startswith("营业收入（百万人民币）"))
    assert revenue.split()[1:] == ["270,970", "365,906", "475,994", "549,073", "635,307"]
    growth = next(l for l in lines if l.startswith("营业收入增长率"))
    assert growth.split()[1:] == ["-3.2", "35.0", "30.1", "15.4", "15.7"]
    pe = next(l for l in lines if l.startswith("调整后 P/E"))
    assert pe.split()[2:] == ["47", "33", "22", "22", "19"]
    assert "买入（维持）" in out and "恒生指数" in out
    # the example valuation rates the stock beside the published rating, and says it is an example
    assert re.search(r"报告评级 买入（维持）; 模型评级 (买入|增持|中性|减持|卖出)（按示例估值假设）", out)
    assert "57/57 passed" in out  # 19 checks x 3 forecast years
    assert "printed 1.64, computed 1.63" in out


def test_show_with_missing_data_file_is_one_line():
    result = run("show", "--data", "nowhere.toml")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "no such company data file" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_non_zero():
    result = run("frobnicate")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_pandas_face(model):
    frames = model.frames()
    assert set(frames) == {"summary", "income", "balance", "cashflow", "ratios", "drivers"}
    income = frames["income"]
    assert list(income.columns) == ["label", "2023", "2024", "2025E", "2026E", "2027E"]
    assert round(income.loc["revenue", "2025E"]) == 475994
    assert frames["summary"].loc["adjusted_pe", "2027E"] > 0
    assert model.frame("balance", english=True).loc["cash", "label"] == "Cash and short-term investments"
