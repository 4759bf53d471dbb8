"""A valuation a PM can defend (issue 21): the bridge with every interest-bearing line, per-share
values on the valuation year's diluted count, the DCF at the price date with its stub, grids that
are the sheet's own DCF, terminal-value diagnostics, sum-of-the-parts metrics by method, one FX
judgement for every door, and the expected dividend paid within the horizon. Each property is
stated in numbers and checked on both layouts where it applies."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

DATA = ROOT / "workbook" / "data"
XIAOMI, KYSEC = DATA / "xiaomi_1810hk.toml", DATA / "kysec_300592sz.toml"


def _with(path, tmp_path, old: str, new: str, name: str = "company.toml"):
    """A copy of a company file with one text replaced (the copy sits beside its layout's name)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    out = tmp_path / name
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


# ---- 7. One FX judgement for every door --------------------------------------------------------
@pytest.mark.parametrize("command", [["show"], ["new", "-o", "{tmp}/m.xlsm"]])
def test_a_company_file_with_an_out_of_range_fx_is_refused_in_one_line(tmp_path, command):
    """CNY per HKD typed as 1.1051 (the inverse of 0.9049): refused by name, nothing written."""
    bad = _with(XIAOMI, tmp_path, "fx_rate = 0.9049", "fx_rate = 1.1051")
    args = [a.format(tmp=tmp_path) for a in command]
    run = subprocess.run([sys.executable, "-m", "addin", *args, "--data", str(bad)], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.count("\n") == 1, run.stderr
    assert "[market].fx_rate" in run.stderr and "0.7–1.1" in run.stderr and "looks inverted" in run.stderr
    assert not (tmp_path / "m.xlsm").exists()


def test_the_company_file_and_the_quote_doors_give_the_same_judgement():
    """The same rate, the same words, whichever door it comes through."""
    import datetime as dt

    from addin.quotes import Quote, QuoteError, validate
    from workbook.company import CompanyDataError, parse
    from workbook.tomlfile import read_toml
    data = read_toml(XIAOMI)
    data["market"]["fx_rate"] = 1.1051
    with pytest.raises(CompanyDataError) as from_file:
        parse(data, XIAOMI)
    quote = Quote("1810.HK", 40.2, "HKD", dt.date(2025, 12, 18), 1.1051, None, "test")
    with pytest.raises(QuoteError) as from_quote:
        validate(quote, "1810.HK", dt.date(2025, 12, 18), 5, currency="HKD", fx_pair=("HKD", "CNY"))
    reason = re.search(r"FX 1\.1051 is outside.*", str(from_file.value)).group()
    assert reason in str(from_quote.value)


def test_an_a_share_in_its_own_currency_must_have_fx_one(tmp_path):
    bad = _with(KYSEC, tmp_path, "fx_rate = 1", "fx_rate = 0.9")
    from workbook.company import CompanyDataError, load
    with pytest.raises(CompanyDataError, match=r"must be exactly 1"):
        load(bad)
