"""Quotes as analysts' files and live feeds deliver them: encodings, separators, date forms,
thousands separators, .xlsx sheets, wrong file types, field and number limits; validation of
currency, FX and price moves; the akshare and yfinance providers on recorded responses."""
from __future__ import annotations

import codecs
import datetime as dt
import json
import os
import shutil
import sys
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from addin.quotes import (DEFAULT_MAX_AGE_DAYS, PROVIDERS, LocalQuotesFile, Quote, QuoteError, parse_max_age,
                          provider_for, validate)
from addin.quotes_live import AkshareQuotes, YfinanceQuotes
from conftest import ROOT

RECORDED = Path(__file__).parent / "data" / "quotes"
AS_OF = dt.date(2026, 11, 29)
COLUMNS = ["ticker", "price", "currency", "price_date", "fx_to_reporting", "benchmark_level", "source"]
ROW = ["1810.HK", "41.36", "HKD", "2026-11-27", "0.9126", "25968.9", "行情 Wind 终端"]


def write_quotes(tmp_path: Path, rows, sep=",", encoding="utf-8", name="quotes.csv", header=COLUMNS) -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def row(**changes) -> list[str]:
    values = dict(zip(COLUMNS, ROW))
    values.update(changes)
    return [values[c] for c in COLUMNS]


def read(path: Path, ticker="1810.HK") -> Quote:
    return LocalQuotesFile(path).quote(ticker)


def refused(path: Path, ticker="1810.HK") -> str:
    with pytest.raises(QuoteError) as caught:
        read(path, ticker)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------------
# Encodings and separators
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding, sep", [
    ("utf-8", ","),
    ("utf-8-sig", ","),           # Excel's "CSV UTF-8"
    ("gbk", ","),                 # Chinese Windows Excel's plain "CSV"
    ("gb18030", ";"),
    ("utf-16", "\t"),             # Excel's "Unicode text": UTF-16 LE with BOM, tab-separated
    ("utf-16-be", "\t"),          # no BOM: recognised from the NUL bytes
    ("utf-8", ";"),
    ("utf-8", "\t"),
])
def test_encodings_and_separators_are_read(tmp_path, encoding, sep):
    quote = read(write_quotes(tmp_path, [row()], sep=sep, encoding=encoding))
    assert (quote.price, quote.price_date, quote.fx_to_reporting, quote.benchmark_level) == \
        (41.36, dt.date(2026, 11, 27), 0.9126, 25968.9)
    assert quote.source == "行情 Wind 终端"


def test_utf16_file_starts_with_its_bom(tmp_path):
    path = write_quotes(tmp_path, [row()], sep="\t", encoding="utf-16")
    assert path.read_bytes()[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    assert read(path).currency == "HKD"


def test_header_in_any_order_and_case_with_extra_columns(tmp_path):
    header = ["Source", "PRICE_DATE", "Ticker", "name", "Price", "Currency", "FX_to_reporting", "Benchmark_Level"]
    values = dict(zip(COLUMNS, ROW), name="小米集团")
    path = write_quotes(tmp_path, [[values[h.lower()] for h in header]], header=header)
    assert read(path).price == 41.36


def test_semicolon_file_with_unknown_columns_names_the_separators(tmp_path):
    path = write_quotes(tmp_path, [["1810.HK", "41"]], sep=";", header=["symbol", "last"])
    assert "missing column 'ticker'" in (message := refused(path)) and "semicolons" in message


# ------------------------------------------------------------------------------------------------
# Dates
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("2026-11-27", dt.date(2026, 11, 27)),
    ("2026/11/27", dt.date(2026, 11, 27)),
    ("2026/1/5", dt.date(2026, 1, 5)),           # Chinese Excel drops leading zeros
    ("2026/11/27 0:00", dt.date(2026, 11, 27)),  # a date cell with a time format
    ("2026年11月27日", dt.date(2026, 11, 27)),
    ("27/11/2026", dt.date(2026, 11, 27)),
    ("27-11-2026", dt.date(2026, 11, 27)),
    ("13.11.2026", dt.date(2026, 11, 13)),
    ("05/05/2026", dt.date(2026, 5, 5)),         # day and month equal: one reading only
])
def test_date_forms(tmp_path, text, expected):
    assert read(write_quotes(tmp_path, [row(price_date=text)])).price_date == expected


@pytest.mark.parametrize("text, message", [
    ("03/04/2026", "'03/04/2026' is ambiguous"),
    ("03-04-2026", "'03-04-2026' is ambiguous"),
    ("11/27/2026", "not a calendar date"),      # month-first is never guessed
    ("2026-02-30", "not a calendar date"),
    ("27/11/26", "not a date"),                  # two-digit year
    ("yesterday", "not a date"),
])
def test_refused_dates_say_to_use_iso(tmp_path, text, message):
    got = refused(write_quotes(tmp_path, [row(price_date=text)]))
    assert message in got and "YYYY-MM-DD" in got


# ------------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sep, level, expected", [
    (",", '"25,000"', 25000.0),
    (",", '"1,234,567.5"', 1234567.5),
    (";", "25 000", 25000.0),
    (";", "25\u00a0000", 25000.0),               # no-break space, as French/Russian locales write
    (";", "25,000", 25000.0),
    ("\t", "25 000.5", 25000.5),
])
def test_thousands_separators(tmp_path, sep, level, expected):
    path = write_quotes(tmp_path, [row(benchmark_level=level)], sep=sep)
    assert read(path).benchmark_level == expected


@pytest.mark.parametrize("price, message", [
    ("40,20", "the decimal mark is a point"),
    ("25,00,000", "is not a number"),
    ("HK$40", "is not a number"),
    ("1e400", "not a finite number"),
    ("nan", "is not a number"),
    ("inf", "is not a number"),
])
def test_numbers_refused_in_one_line(tmp_path, price, message):
    sep = ";" if "," in price else ","
    assert message in refused(write_quotes(tmp_path, [row(price=price)], sep=sep))


# ------------------------------------------------------------------------------------------------
# .xlsx sheets and wrong file types
# ------------------------------------------------------------------------------------------------
def test_xlsx_quotes_sheet_first_sheet_native_cells(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "行情"
    sheet.append(COLUMNS)
    sheet.append(["1810.HK", 41.36, "港元", dt.datetime(2026, 11, 27), 0.9126, 25968.9, "Wind"])
    sheet.append(["600519.SH", "1,466.66", "CNY", "27/11/2026", 1, None, None])
    book.create_sheet("other").append(["ticker", "price"])
    path = tmp_path / "quotes.xlsx"
    book.save(path)
    hk = read(path)
    assert (hk.price, hk.currency, hk.price_date, hk.source) == (41.36, "HKD", dt.date(2026, 11, 27), "Wind")
    a_share = read(path, "600519.SH")
    assert (a_share.price, a_share.price_date, a_share.benchmark_level) == (1466.66, dt.date(2026, 11, 27), None)
    assert a_share.source == "file:quotes.xlsx"


def test_xlsm_model_passed_as_quotes_says_what_it_is(tmp_path):
    path = tmp_path / "model.xlsm"
    shutil.copy(ROOT / "workbook" / "xiaomi_1810hk_model.xlsm", path)
    message = refused(path)
    assert "macro-enabled workbook (.xlsm)" in message and "UTF-8" not in message


@pytest.mark.parametrize("content, what", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "save it as .xlsx or CSV"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "a gzip archive"),
    (b"<!DOCTYPE html><html><body>Login</body></html>", "an HTML page"),
])
def test_wrong_file_types_say_what_they_are(tmp_path, content, what):
    path = tmp_path / "quotes.csv"
    path.write_bytes(content)
    assert what in refused(path)


@pytest.mark.parametrize("member, what", [
    ("notes.txt", "a zip archive"),
    ("word/document.xml", "a Word document"),
])
def test_zip_files_say_what_they_are(tmp_path, member, what):
    path = tmp_path / "quotes.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, "x")
    assert what in refused(path)


def test_binary_data_is_not_text(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_bytes(bytes(range(256)) * 10)
    assert "binary data" in refused(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_special_files_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "quotes.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(fifo)   # reading would block forever
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in refused(link)


# ------------------------------------------------------------------------------------------------
# Field sizes
# ------------------------------------------------------------------------------------------------
def test_source_beyond_csv_field_limit_is_one_line(tmp_path):
    path = write_quotes(tmp_path, [row(source="x" * 140_000)])
    message = refused(path)
    assert "longer than 131,072 characters" in message and "line 2" in message


def test_source_over_sane_length_is_refused(tmp_path):
    assert "source is 5,000 characters long (limit 200)" in refused(write_quotes(tmp_path, [row(source="y" * 5000)]))


def test_ticker_over_sane_length_is_refused(tmp_path):
    assert "ticker is 100 characters long" in refused(write_quotes(tmp_path, [row(ticker="1" * 100)]))


# ------------------------------------------------------------------------------------------------
# Max-age setting
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [("7", 7), (7, 7), (7.0, 7), (" 3 ", 3), ("0", 0), (None, DEFAULT_MAX_AGE_DAYS),
                                             ("", DEFAULT_MAX_AGE_DAYS)])
def test_parse_max_age_accepts_whole_days(value, expected):
    assert parse_max_age(value, "xlwings.conf 'Quotes Max Age Days'") == expected


@pytest.mark.parametrize("value", ["1e400", 1e400, "-3", -3, "abc", "2.5", True, "nan", "99999", float("nan")])
def test_parse_max_age_refuses_in_one_line(value):
    with pytest.raises(QuoteError, match="not a whole number of days from 0 to 3650") as caught:
        parse_max_age(value, "m.xlsm: xlwings.conf 'Quotes Max Age Days'")
    assert str(caught.value).startswith("m.xlsm: xlwings.conf 'Quotes Max Age Days' is ")


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------
def quote(**changes) -> Quote:
    base = dict(ticker="1810.HK", price=41.36, currency="HKD", price_date=dt.date(2026, 11, 27),
                fx_to_reporting=0.9126, benchmark_level=25968.9, source="t")
    base.update(changes)
    return Quote(**base)


MODEL = dict(currency="HKD", last_price=40.20, last_fx=0.9049, fx_pair=("HKD", "CNY"))


def test_plain_positional_call_still_validates():
    assert validate(quote(), "1810.HK", AS_OF, 5).price == 41.36


def test_good_quote_against_the_model_passes():
    assert validate(quote(), "1810.HK", AS_OF, 5, **MODEL).fx_to_reporting == 0.9126


@pytest.mark.parametrize("changes, model, message", [
    ({"currency": "CNY"}, {}, "is in CNY, the model trades in HKD; give a quote in HKD"),
    ({"currency": "USD"}, {}, "is in USD, the model trades in HKD"),
    ({"currency": ""}, {}, "names no currency"),
    ({"fx_to_reporting": 1.0989}, {}, "looks inverted against the model's 0.9049"),
    ({"fx_to_reporting": 1.2}, {}, "outside the sane range 0.7–1.1 for HKD→CNY"),
    ({"fx_to_reporting": 1 / 7.1, "currency": "USD"}, {"currency": "USD", "fx_pair": "USD/CNY", "last_fx": None},
     "looks inverted"),
    ({"fx_to_reporting": 0.99, "currency": "CNY"}, {"currency": "CNY", "fx_pair": "CNY/CNY", "last_fx": None},
     "must be exactly 1"),
    ({"price": 4136.0}, {}, "price 4136 is +10189% from the model's 40.2 (band ±50%)"),
    ({"price": 0.4136}, {}, "-99% from the model's 40.2"),
    ({"price": 1e308}, {"last_price": None}, "beyond 1e+07, not a plausible figure"),
    ({"fx_to_reporting": 1e-9}, {"fx_pair": None, "last_fx": None}, "below 1e-06"),
    ({"benchmark_level": float("inf")}, {}, "not a finite number"),
])
def test_validation_refusals(changes, model, message):
    with pytest.raises(QuoteError) as caught:
        validate(quote(**changes), "1810.HK", AS_OF, 5, **{**MODEL, **model})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_currency_aliases_from_chinese_files_match_the_model():
    assert validate(quote(currency="港元"), "1810.HK", AS_OF, 5, **MODEL).currency == "港元"


def test_reverse_pair_range_is_derived():
    cny_model = dict(currency="HKD", fx_pair="HKD/HKD")
    with pytest.raises(QuoteError, match="exactly 1"):
        validate(quote(fx_to_reporting=1.1), "1810.HK", AS_OF, 5, **cny_model)
    with pytest.raises(QuoteError, match=r"sane range 0\.909091–1\.42857 for CNY→HKD"):
        validate(quote(ticker="600519.SH", currency="CNY", fx_to_reporting=0.5), "600519.SH", AS_OF, 5,
                 currency="CNY", fx_pair=("CNY", "HKD"))


def test_price_move_hint_names_the_flag_or_the_workbook_setting():
    with pytest.raises(QuoteError, match="--accept-move"):
        validate(quote(price=100.0), "1810.HK", AS_OF, 5, **MODEL)
    with pytest.raises(QuoteError, match="xlwings.conf") as caught:
        validate(quote(price=100.0), "1810.HK", AS_OF, 5, **MODEL, front="excel")
    assert "--" not in str(caught.value)


def test_accepted_move_and_custom_band():
    assert validate(quote(price=100.0), "1810.HK", AS_OF, 5, **MODEL, accept_move=True).price == 100.0
    with pytest.raises(QuoteError, match="band ±2%"):
        validate(quote(), "1810.HK", AS_OF, 5, **MODEL, max_move=0.02)


def test_inverted_fx_is_refused_even_when_moves_are_accepted():
    with pytest.raises(QuoteError, match="looks inverted"):
        validate(quote(fx_to_reporting=1.0989), "1810.HK", AS_OF, 5, **MODEL, accept_move=True)


def test_fx_move_for_a_pair_without_a_range():
    with pytest.raises(QuoteError, match=r"SGD→CNY 10.4 is \+100%"):
        validate(quote(currency="SGD", fx_to_reporting=10.4), "1810.HK", AS_OF, 5, currency="SGD",
                 fx_pair="SGD/CNY", last_fx=5.2)


def test_broken_model_cells_skip_the_comparisons():
    result = validate(quote(), "1810.HK", AS_OF, 5, currency="HKD", last_price="#VALUE!", last_fx=0, fx_pair="HKD/CNY")
    assert result.price == 41.36


def test_stale_hint_follows_the_front():
    with pytest.raises(QuoteError, match="--max-age-days"):
        validate(quote(), "1810.HK", AS_OF, 1)
    with pytest.raises(QuoteError, match="'Quotes Max Age Days'"):
        validate(quote(), "1810.HK", AS_OF, 1, front="excel")


def test_validate_refuses_an_absurd_max_age():
    with pytest.raises(QuoteError, match="not a whole number of days"):
        validate(quote(), "1810.HK", AS_OF, 1e400)


# ------------------------------------------------------------------------------------------------
# Live providers on recorded responses
# ------------------------------------------------------------------------------------------------
def recorded_akshare(frame_date_column="日期"):
    """A stand-in for the akshare module: each function returns its recorded frame, with dates as
    akshare gives them (datetime.date objects), and logs its arguments."""
    calls = []

    def frame(name, date_column):
        table = pd.read_csv(RECORDED / name, dtype={"股票代码": str})
        table[date_column] = pd.to_datetime(table[date_column]).dt.date
        return table

    def function(name, file, date_column):
        def call(*args, **kwargs):
            calls.append((name, kwargs))
            return frame(file, date_column)
        return call

    module = types.SimpleNamespace(
        stock_hk_hist=function("stock_hk_hist", "akshare_stock_hk_hist_01810.csv", "日期"),
        stock_zh_a_hist=function("stock_zh_a_hist", "akshare_stock_zh_a_hist_600519.csv", "日期"),
        currency_boc_safe=function("currency_boc_safe", "akshare_currency_boc_safe.csv", "日期"),
        stock_hk_index_daily_sina=function("stock_hk_index_daily_sina", "akshare_stock_hk_index_daily_sina_HSI.csv", "date"),
        stock_zh_index_daily=function("stock_zh_index_daily", "akshare_stock_zh_index_daily_sh000300.csv", "date"),
    )
    return module, calls


def test_akshare_hong_kong_quote_from_recorded_frames():
    module, calls = recorded_akshare()
    got = AkshareQuotes("", module=module, today=AS_OF).quote("1810.HK")
    # 2026-11-27 has no HKD parity in the SAFE table, so the 2026-11-26 figure (91.26 per 100) is used.
    assert (got.price, got.currency, got.price_date, got.fx_to_reporting, got.benchmark_level) == \
        (41.36, "HKD", dt.date(2026, 11, 27), 0.9126, 25968.9)
    assert "central parity 2026-11-26" in got.source
    assert calls[0] == ("stock_hk_hist", {"symbol": "01810", "period": "daily", "start_date": "20261030",
                                          "end_date": "20261129", "adjust": ""})
    assert ("stock_hk_index_daily_sina", {"symbol": "HSI"}) in calls
    assert validate(got, "1810.HK", AS_OF, 5, **MODEL) is got


def test_akshare_a_share_quote_needs_no_fx():
    module, calls = recorded_akshare()
    got = AkshareQuotes("CNY", module=module, today=AS_OF).quote("600519.SH")
    assert (got.price, got.currency, got.fx_to_reporting, got.benchmark_level) == (1466.66, "CNY", 1.0, 4549.3)
    assert [name for name, _ in calls] == ["stock_zh_a_hist", "stock_zh_index_daily"]
    assert calls[0][1]["symbol"] == "600519"


def test_akshare_takes_the_close_on_or_before_today():
    module, _ = recorded_akshare()
    got = AkshareQuotes("", module=module, today=dt.date(2026, 11, 25)).quote("1810.HK")
    assert (got.price, got.price_date, got.fx_to_reporting) == (41.30, dt.date(2026, 11, 25), 0.9123)


def test_akshare_offline_is_one_line():
    def offline(**kwargs):
        raise ConnectionError("HTTPSConnectionPool(host='push2his.eastmoney.com', port=443): Max retries exceeded\n"
                              "(Caused by NewConnectionError('Failed to establish a new connection'))")
    module = types.SimpleNamespace(stock_hk_hist=offline)
    with pytest.raises(QuoteError) as caught:
        AkshareQuotes("", module=module, today=AS_OF).quote("1810.HK")
    message = str(caught.value)
    assert message.startswith("akshare: could not fetch the 01810 price history") and "check the network" in message
    assert "\n" not in message


def test_akshare_missing_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "akshare", None)   # import akshare raises ImportError
    with pytest.raises(QuoteError, match=r'pip install "equity-research-model\[akshare\]"'):
        provider_for("akshare:").quote("1810.HK")


def test_akshare_changed_format_and_empty_answers():
    module, _ = recorded_akshare()
    module.stock_hk_hist = lambda **kwargs: pd.DataFrame({"date": [dt.date(2026, 11, 27)], "close": [41.0]})
    with pytest.raises(QuoteError, match="no column '日期'.*format has changed"):
        AkshareQuotes("", module=module, today=AS_OF).quote("1810.HK")
    module.stock_hk_hist = lambda **kwargs: pd.DataFrame({"日期": [], "收盘": []})
    with pytest.raises(QuoteError, match="no usable close for 01810"):
        AkshareQuotes("", module=module, today=AS_OF).quote("1810.HK")


def test_akshare_refuses_other_reporting_currencies_and_markets():
    module, _ = recorded_akshare()
    with pytest.raises(QuoteError, match="quoted in CNY only"):
        AkshareQuotes("USD", module=module, today=AS_OF).quote("1810.HK")
    with pytest.raises(QuoteError, match="cannot quote 'AAPL'"):
        AkshareQuotes("", module=module, today=AS_OF).quote("AAPL")


class RecordedTicker:
    """A stand-in for yfinance.Ticker replaying recorded `history` frames and `fast_info`."""
    calls: list = []

    def __init__(self, symbol):
        self.symbol = symbol
        info = json.loads((RECORDED / "yfinance_fast_info.json").read_text(encoding="utf-8"))
        self.fast_info = info.get(symbol, {})

    def history(self, **kwargs):
        RecordedTicker.calls.append((self.symbol, kwargs))
        path = RECORDED / f"yfinance_{self.symbol}_history.csv"
        if not path.exists():
            return pd.DataFrame(columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"])  # unknown symbol
        frame = pd.read_csv(path)
        frame.index = pd.DatetimeIndex([pd.Timestamp(t) for t in frame.pop("Date")], name="Date")
        return frame


def test_yfinance_quote_from_recorded_frames():
    RecordedTicker.calls = []
    module = types.SimpleNamespace(Ticker=RecordedTicker)
    got = YfinanceQuotes("CNY", module=module, today=AS_OF).quote("1810.HK")
    assert (got.price, got.currency, got.price_date, got.fx_to_reporting, got.benchmark_level) == \
        (41.36, "HKD", dt.date(2026, 11, 27), 0.9127, 25968.9)
    assert [s for s, _ in RecordedTicker.calls] == ["1810.HK", "HKDCNY=X", "^HSI"]
    assert RecordedTicker.calls[0][1]["auto_adjust"] is False   # the traded price, not a dividend-adjusted one
    assert validate(got, "1810.HK", AS_OF, 5, **MODEL) is got


def test_yfinance_unknown_symbol_and_offline():
    module = types.SimpleNamespace(Ticker=RecordedTicker)
    with pytest.raises(QuoteError, match="no usable close for 0700.HK"):
        YfinanceQuotes("CNY", module=module, today=AS_OF).quote("00700.HK")

    class Offline(RecordedTicker):
        def history(self, **kwargs):
            raise OSError("[Errno -3] Temporary failure in name resolution")
    with pytest.raises(QuoteError, match="yfinance: could not fetch the 1810.HK price history .*check the network"):
        YfinanceQuotes("CNY", module=types.SimpleNamespace(Ticker=Offline), today=AS_OF).quote("1810.HK")


def test_yfinance_missing_package_and_reporting_currency(monkeypatch):
    monkeypatch.setitem(sys.modules, "yfinance", None)
    with pytest.raises(QuoteError, match=r"\[yfinance\]"):
        provider_for("yfinance:CNY").quote("1810.HK")
    with pytest.raises(QuoteError, match="name the model's reporting currency, e.g. 'yfinance:CNY'"):
        YfinanceQuotes("", module=types.SimpleNamespace(Ticker=RecordedTicker)).quote("1810.HK")


def test_provider_for_chooses_live_sources():
    assert isinstance(provider_for("akshare:"), AkshareQuotes)
    assert provider_for("yfinance:cny").reporting == "CNY"
    assert set(PROVIDERS) >= {"file", "akshare", "yfinance"}
    with pytest.raises(QuoteError, match="unknown quote source 'bloomberg'"):
        provider_for("bloomberg:1810")


# ------------------------------------------------------------------------------------------------
# End to end: a file as Chinese Windows Excel saves it refreshes a model
# ------------------------------------------------------------------------------------------------
def test_gbk_semicolon_day_first_file_refreshes_the_model(tmp_path):
    from addin.refresh import refresh_file

    model = tmp_path / "model.xlsm"
    shutil.copy(ROOT / "workbook" / "xiaomi_1810hk_model.xlsm", model)
    source = write_quotes(tmp_path, [row(price_date="27/11/2026", benchmark_level="25 968.9")],
                          sep=";", encoding="gbk")
    result = refresh_file(model, str(source), AS_OF, now=dt.datetime(2026, 11, 29, 9, 30))
    assert (result.quote.price, result.quote.price_date, result.quote.benchmark_level) == \
        (41.36, dt.date(2026, 11, 27), 25968.9)


def test_the_workbook_message_follows_the_front_the_fix_was_written_for_not_its_words():
    from addin.refresh import excel_quote_message
    # a command-line fix is replaced by the workbook's; the reason stays, dashes and all
    cli = QuoteError("quote for AB--C.HK: price 9 is +80% from the model's 5", "pass --accept-move", "cli")
    assert excel_quote_message(cli) == ("quote for AB--C.HK: price 9 is +80% from the model's 5; in Excel, set "
                                        "'Quotes Source' on the xlwings.conf sheet to a current quotes file")
    # a fix written for the workbook is kept as it is
    excel = QuoteError("quote for 1810.HK is dated 2026-11-01", "raise 'Quotes Max Age Days'", "excel")
    assert excel_quote_message(excel) == "quote for 1810.HK is dated 2026-11-01; raise 'Quotes Max Age Days'"
    # a message that needs no front's fix gets the workbook's pointer to a current quotes file
    plain = QuoteError("quote for 1810.HK: FX 0 is not positive; refused")
    assert excel_quote_message(plain).endswith("to a current quotes file")
    with pytest.raises(QuoteError) as caught:
        validate(quote(price=100.0), "1810.HK", AS_OF, 5, **MODEL, front="excel")
    assert caught.value.front == "excel" and excel_quote_message(caught.value) == str(caught.value)


@pytest.mark.parametrize("member, kept, dropped", [
    ("xl/vbaProject.bin", "the model is the file to refresh", "--quotes"),
    ("content.xml", "save it as .xlsx or CSV", None),
])
def test_the_workbooks_message_keeps_advice_that_holds_there(tmp_path, member, kept, dropped):
    from addin.refresh import excel_quote_message
    path = tmp_path / "wrong.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, "x")
    with pytest.raises(QuoteError) as caught:
        LocalQuotesFile(path).quote("1810.HK")
    message = excel_quote_message(caught.value)
    assert kept in str(caught.value) and kept in message
    assert dropped is None or (dropped in str(caught.value) and dropped not in message)
