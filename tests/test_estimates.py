"""Estimates history: publish is idempotent, revisions match the models' own figures, bad input is
one line with nothing written. Every store test runs on SQLite and on a PostgreSQL server this
suite starts (where the postgresql Debian package is installed)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from addin.cli import main
from addin.estimates import (BOTH, DROPPED, NEW, YEARLY, Estimates, EstimatesError, figures_table, load_estimates,
                             metadata, open_store, publish, read_model, revision_table, versions_table)
from conftest import ROOT
from once_per_run import PG_PORT, postgres_socket, run_folder, worker_id
from workbook import xlsx
from workbook.company import load
from workbook.formats import show
from workbook.model import build_model

DATA = ROOT / "workbook" / "data" / "xiaomi_1810hk.toml"
LINES = ("revenue", "net_profit", "attributable_profit", "non_ifrs_net_profit", "eps")
TARGET = 50.0


# ------------------------------------------------------------------------------------------------
# Two versions of the model: the embedded data, and a copy with a higher 2025E IoT growth and a
# target price. Expected figures come from the engine run on each data file, not from the store.
# ------------------------------------------------------------------------------------------------
def _modified_data(folder: Path, ticker: str | None = None) -> Path:
    text = DATA.read_text(encoding="utf-8")
    iot = text.index("[drivers.iot]")
    block_end = text.index("\n[", iot + 1)
    block = text[iot:block_end]
    assert "0.23" in block, "the IoT driver moved; update this test's data edit"
    text = text[:iot] + block.replace("0.23", "0.30", 1) + text[block_end:]
    text = re.sub(r"\nbenchmark_return = [^\n]*", "", text, count=1)   # the example valuation's, replaced
    text = text.replace("[rating]\n", f"[rating]\ntarget_price = {TARGET}\nbenchmark_return = 0.05\n", 1)
    if ticker:
        text = text.replace('ticker = "1810.HK"', f'ticker = "{ticker}"', 1)
    path = folder / ("other.toml" if ticker else "revised.toml")
    path.write_text(text, encoding="utf-8")
    return path


def _build(data: Path, output: Path) -> Path:
    assert main(["build", "--data", str(data), "-o", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    revised = _modified_data(folder)
    return {
        "first": _build(DATA, folder / "first.xlsm"),
        "second": _build(revised, folder / "second.xlsm"),
        "other_company": _build(_modified_data(folder, ticker="9999.HK"), folder / "other.xlsm"),
        "first_model": build_model(load(DATA)),
        "second_model": build_model(load(revised)),
    }


@pytest.fixture
def models(versions, tmp_path):
    """Fresh copies per test, so that nothing a test writes beside them leaks into another."""
    out = dict(versions)
    for name in ("first", "second", "other_company"):
        out[name] = Path(shutil.copy(versions[name], tmp_path / versions[name].name))
    return out


# ------------------------------------------------------------------------------------------------
# Stores: SQLite always, PostgreSQL where it is installed.
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The run's PostgreSQL server (one for every worker): the folder of its unix socket."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (test extra: psycopg) is not installed")
    return postgres_socket(run_folder(tmp_path_factory))


_databases = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # starts a server
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'estimates.sqlite'}"
    socket_dir = request.getfixturevalue("pg_server")
    import psycopg

    name = f"estimates_{worker_id()}_{next(_databases)}"  # the workers share the server, not a database
    with psycopg.connect(host=str(socket_dir), port=PG_PORT, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}&port={PG_PORT}"


@pytest.fixture(autouse=True)
def _store_folder(tmp_path):
    (tmp_path / "store").mkdir()


def _counts(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return (conn.execute(sa.select(sa.func.count()).select_from(versions_table)).scalar(),
                    conn.execute(sa.select(sa.func.count()).select_from(figures_table)).scalar())
    finally:
        engine.dispose()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> None:
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# publish
# ------------------------------------------------------------------------------------------------
def test_publish_twice_is_idempotent(models, db_url, capsys):
    code, out, _ = _cli(capsys, "publish", str(models["first"]), "--db", db_url)
    assert code == 0 and out.startswith("published 1810.HK@1 ")
    assert _counts(db_url) == (1, 3 * len(LINES))

    code, out, _ = _cli(capsys, "publish", str(models["first"]), "--db", db_url)
    assert code == 0 and out.startswith("already published: this file is 1810.HK@1") and "nothing written" in out
    same_bytes = Path(shutil.copy(models["first"], models["first"].with_name("renamed.xlsm")))
    again = publish(same_bytes, db_url)
    assert not again.created and again.estimates.version == 1
    assert _counts(db_url) == (1, 3 * len(LINES))

    second = publish(models["second"], db_url)
    assert second.created and second.estimates.version == 2
    assert _counts(db_url) == (2, 6 * len(LINES))


def test_published_record_carries_the_model_identity(models, db_url):
    import hashlib

    result = publish(models["second"], db_url)
    with open_store(db_url) as store:
        stored = store.load("1810.HK", "latest")
    assert stored.sha256 == hashlib.sha256(models["second"].read_bytes()).hexdigest()
    package = xlsx.read(models["second"])
    assert stored.template_version == package.custom["ER Template Version"]
    engine = models["second_model"]
    assert stored.price == pytest.approx(engine.value("price"))
    assert stored.price_date.isoformat() == str(engine.company.market["price_date"])
    assert stored.target_price == TARGET and stored.rating == engine.value("computed_rating")
    assert stored.published_at == result.estimates.published_at


def test_default_store_is_a_sqlite_file_beside_the_model(models, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path / "store")          # the current folder is not where the store goes
    code, out, _ = _cli(capsys, "publish", str(models["first"]))
    beside = models["first"].with_name("estimates.sqlite")
    assert code == 0 and beside.is_file() and str(beside) in out
    assert not (tmp_path / "store" / "estimates.sqlite").exists()
    assert _counts(f"sqlite:///{beside}") == (1, 3 * len(LINES))


# ------------------------------------------------------------------------------------------------
# revisions
# ------------------------------------------------------------------------------------------------
def _expected(model, key, year):
    return model.value(key, year)


def test_revisions_between_published_versions_match_the_models(models, db_url, capsys):
    publish(models["first"], db_url)
    publish(models["second"], db_url)
    old, new = load_estimates("1810.HK@previous", "1810.HK@latest", db_url)
    assert (old.version, new.version) == (1, 2)
    first, second = models["first_model"], models["second_model"]
    rows = revision_table(old, new)
    yearly = [r for r in rows if r.year]
    assert {(r.key, r.year) for r in yearly} == {(k, y) for k in LINES for y in ("2025E", "2026E", "2027E")}
    for row in yearly:
        assert row.status == BOTH
        assert row.old == pytest.approx(_expected(first, row.key, row.year), rel=1e-12), row
        assert row.new == pytest.approx(_expected(second, row.key, row.year), rel=1e-12), row
        assert row.change == pytest.approx(row.new - row.old)
        assert row.change_pct == pytest.approx((row.new - row.old) / abs(row.old))
    revenue_2025 = next(r for r in yearly if (r.key, r.year) == ("revenue", "2025E"))
    assert revenue_2025.change > 0                                  # faster IoT growth, more revenue
    by_key = {r.key: r for r in rows if not r.year}
    assert (by_key["target_price"].old, by_key["target_price"].new) == (pytest.approx(first.value("target_price")), TARGET)
    assert (by_key["rating"].old, by_key["rating"].new) == (first.value("computed_rating"), second.value("computed_rating"))
    assert by_key["rating"].new != by_key["rating"].old

    code, out, _ = _cli(capsys, "revisions", "1810.HK@1", "1810.HK@2", "--db", db_url)
    assert code == 0 and out.startswith("盈利预测调整 1810.HK: 1810.HK@1")
    revenue_label = next(label for key, _role, _required, label, _fmt in YEARLY if key == "revenue")
    revenue_line = next(line for line in out.splitlines() if revenue_label in line and "2025E" in line)
    assert show(first.value("revenue", "2025E"), "money") in revenue_line
    assert show(second.value("revenue", "2025E"), "money") in revenue_line


def test_revisions_between_a_published_version_and_a_model_file(models, db_url):
    publish(models["first"], db_url)
    old, new = load_estimates("1810.HK@latest", str(models["second"]), db_url)
    assert old.version == 1 and new.version is None and new.source == "second.xlsm"
    assert new.years == read_model(models["second"]).years
    assert old.years["2026E"]["eps"] == pytest.approx(models["first_model"].value("eps", "2026E"), rel=1e-12)


def test_revisions_between_two_files_need_no_store(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "store")
    old, new = load_estimates(str(models["first"]), str(models["second"]))
    assert new.years["2025E"]["revenue"] == pytest.approx(models["second_model"].value("revenue", "2025E"), rel=1e-12)
    assert list((tmp_path / "store").iterdir()) == [] and not models["first"].with_name("estimates.sqlite").exists()


def _estimates(years: dict, target=None, rating="无评级") -> Estimates:
    return Estimates(ticker="1810.HK", source="x", years=years, price=40.2, price_date=None, target_price=target,
                     rating=rating, template_version="1.0", sha256="0" * 64)


def test_revision_table_marks_new_and_dropped_years():
    old = _estimates({"2025E": {"revenue": 100.0, "eps": -0.5}, "2026E": {"revenue": 120.0, "eps": 0.0}})
    new = _estimates({"2026E": {"revenue": 90.0, "eps": 0.2}, "2027E": {"revenue": 150.0, "eps": 0.3}},
                     target=50.0, rating="买入")
    got = [(r.key, r.year, r.old, r.new, r.change, r.change_pct, r.status) for r in revision_table(old, new)]
    exp = [
        ("revenue", "2025E", 100.0, None, None, None, DROPPED),
        ("revenue", "2026E", 120.0, 90.0, -30.0, -0.25, BOTH),
        ("revenue", "2027E", None, 150.0, None, None, NEW),
        ("eps", "2025E", -0.5, None, None, None, DROPPED),
        ("eps", "2026E", 0.0, 0.2, 0.2, None, BOTH),            # from zero: no percentage
        ("eps", "2027E", None, 0.3, None, None, NEW),
        ("target_price", "", None, 50.0, None, None, BOTH),
        ("rating", "", "无评级", "买入", None, None, BOTH),
    ]
    assert got == exp
    negative = revision_table(_estimates({"2025E": {"eps": -0.5}}), _estimates({"2025E": {"eps": -0.25}}))[0]
    assert negative.change_pct == pytest.approx(0.5)               # a smaller loss is an improvement


# ------------------------------------------------------------------------------------------------
# bad input: one line, nothing written
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, says", [
    ("postgresql+psycopg://analyst:secret@127.0.0.1:1/research", "cannot open it"),
    ("not a database url", "not a database URL"),
    ("nosuchdb://host/db", "no database driver"),
])
def test_unreachable_database_is_one_line_and_nothing_written(models, capsys, url, says):
    before = models["first"].read_bytes()
    code, out, err = _cli(capsys, "publish", str(models["first"]), "--db", url)
    _one_line_error(code, err)
    assert says in err and "secret" not in err and out == ""
    assert models["first"].read_bytes() == before
    assert sorted(p.name for p in models["first"].parent.iterdir()) == ["first.xlsm", "other.xlsm", "second.xlsm", "store"]


def _without_name(model: Path, name: str) -> Path:
    package = xlsx.read(model)
    workbook = package.members["xl/workbook.xml"].decode("utf-8")
    broken = re.sub(rf'<definedName name="{name}"[^>]*>.*?</definedName>', "", workbook, count=1, flags=re.S)
    assert broken != workbook
    target = model.with_name("broken.xlsm")
    xlsx.write(package, {"xl/workbook.xml": broken.encode("utf-8")}, target)
    return target


@pytest.mark.parametrize("damage", ["name_removed", "not_a_workbook", "sheet_renamed"])
def test_broken_model_is_one_line_and_nothing_written(models, db_url, capsys, damage):
    if damage == "name_removed":
        # the price publish records, found by its name (the yearly figures are found by role)
        broken = _without_name(models["first"], "MKT_price")
    elif damage == "not_a_workbook":
        broken = models["first"].with_name("broken.xlsm")
        broken.write_bytes(b"this is not a zip file")
    else:
        package = xlsx.read(models["first"])
        workbook = package.members["xl/workbook.xml"].decode("utf-8").replace('name="表1 损益表"', 'name="Sheet9"', 1)
        broken = models["first"].with_name("broken.xlsm")
        xlsx.write(package, {"xl/workbook.xml": workbook.encode("utf-8")}, broken)
    code, _, err = _cli(capsys, "publish", str(broken), "--db", db_url)
    _one_line_error(code, err)
    assert "broken.xlsm" in err
    with open_store(db_url) as store:
        assert store.tickers() == []
    code, _, err = _cli(capsys, "publish", str(broken))                # the default store is not even created
    _one_line_error(code, err)
    assert not broken.with_name("estimates.sqlite").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("command", ["publish", "revisions"])
def test_a_named_pipe_is_refused_without_blocking(tmp_path, capsys, command):
    pipe = tmp_path / "model.xlsm"
    os.mkfifo(pipe)
    argv = ["publish", str(pipe)] if command == "publish" else ["revisions", str(pipe), "1810.HK@1"]
    code, _, err = _cli(capsys, *argv, "--db", f"sqlite:///{tmp_path / 'store' / 'e.sqlite'}")
    _one_line_error(code, err)
    assert "named pipe" in err and not (tmp_path / "store" / "e.sqlite").exists()


def test_recurring_profit_line_is_optional(tmp_path, db_url):
    # the 开源 layout gives no line the recurring-profit role: its model publishes without one
    without = Path(shutil.copy(ROOT / "workbook" / "kysec_300592sz_model.xlsm", tmp_path / "kysec.xlsm"))
    estimates = publish(without, db_url).estimates
    assert all(set(lines) == set(LINES) - {"non_ifrs_net_profit"} for lines in estimates.years.values())
    rows = revision_table(estimates, estimates)
    assert "non_ifrs_net_profit" not in {r.key for r in rows}


@pytest.mark.parametrize("reference, says", [
    ("9999.HK@1", "no published estimates for 9999.HK"),
    ("1810.HK@7", "no such version"),
    ("1810.HK@previous", "only one published version"),
    ("1810.HK@first", "not a published version"),
    ("missing.xlsm", "no such model file"),
])
def test_wrong_version_reference_is_one_line(models, db_url, capsys, reference, says):
    publish(models["first"], db_url)
    code, out, err = _cli(capsys, "revisions", reference, "1810.HK@latest", "--db", db_url)
    _one_line_error(code, err)
    assert says in err and out == ""
    if reference.startswith("9999"):
        assert "1810.HK" in err                                    # says which tickers the store holds


def test_revisions_refuse_two_companies(models, db_url, capsys):
    publish(models["first"], db_url)
    code, _, err = _cli(capsys, "revisions", "1810.HK@latest", str(models["other_company"]), "--db", db_url)
    _one_line_error(code, err)
    assert "9999.HK" in err and "one company" in err


def test_revisions_from_an_absent_sqlite_store_create_nothing(tmp_path, capsys):
    where = tmp_path / "store" / "nowhere.sqlite"
    code, _, err = _cli(capsys, "revisions", "1810.HK@previous", "1810.HK@latest", "--db", str(where))
    _one_line_error(code, err)
    assert "no estimates store" in err and not where.exists()


# ------------------------------------------------------------------------------------------------
# schema
# ------------------------------------------------------------------------------------------------
def test_migrations_build_exactly_the_schema_the_code_uses(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with open_store(db_url):
        pass
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": "er_alembic_version"})
            assert compare_metadata(context, metadata) == []
            head = max(path.name.split("_", 1)[0] for path in (ROOT / "addin" / "migrations" / "versions").glob("0*.py"))
            assert conn.execute(sa.text("SELECT version_num FROM er_alembic_version")).scalar() == head
    finally:
        engine.dispose()


def test_a_store_from_a_newer_add_in_is_refused(db_url):
    with open_store(db_url):
        pass
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE er_alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(EstimatesError, match="upgrade the add-in"):
        with open_store(db_url):
            pass


# ------------------------------------------------------------------------------------------------
# which store
# ------------------------------------------------------------------------------------------------
def _with_conf(model: Path, key: str, value: str) -> Path:
    """The model with one more xlwings.conf row, as an analyst would type it in Excel."""
    package = xlsx.read(model)
    sheet = package.sheets["xlwings.conf"]
    row = max(xlsx.split_ref(ref)[0] for ref in sheet.cells) + 1
    cells = "".join(f'<c r="{col}{row}" t="inlineStr"><is><t>{text}</t></is></c>' for col, text in (("A", key), ("B", value)))
    xml = sheet.xml.replace("</sheetData>", f'<row r="{row}">{cells}</row></sheetData>', 1)
    target = model.with_name("configured.xlsm")
    xlsx.write(package, {sheet.path: xml.encode("utf-8")}, target)
    return target


def test_workbook_setting_names_the_store_and_db_overrides_it(models, db_url, tmp_path):
    configured = _with_conf(models["first"], "Estimates DB", db_url.replace("&", "&amp;"))
    if db_url.startswith("sqlite"):   # a file in the model's folder: the workbook's setting is obeyed
        assert publish(configured).store == sa.make_url(db_url).render_as_string(hide_password=True)
    else:                             # a server: only the analyst's --db sends estimates there
        with pytest.raises(EstimatesError, match="confirm it with --db postgresql"):
            publish(configured)
        assert publish(configured, db_url).store == sa.make_url(db_url).render_as_string(hide_password=True)
    assert _counts(db_url)[0] == 1
    elsewhere = f"sqlite:///{tmp_path / 'store' / 'other.sqlite'}"
    publish(configured, elsewhere)
    assert _counts(elsewhere)[0] == 1 and _counts(db_url)[0] == 1


def test_a_relative_store_setting_is_beside_the_model(models):
    configured = _with_conf(models["first"], "Estimates DB", "team.sqlite")
    publish(configured)
    assert _counts(f"sqlite:///{configured.with_name('team.sqlite')}")[0] == 1


# ------------------------------------------------------------------------------------------------
# publish on an old price (issue 24): a warning, recorded with the version
# ------------------------------------------------------------------------------------------------
def test_publish_of_an_old_price_warns_and_the_store_records_it(models, db_url, capsys):
    import datetime as dt

    price_date = build_model(load(DATA)).company.market["price_date"]
    fresh = publish(models["first"], db_url, now=dt.datetime.combine(price_date, dt.time(12), dt.timezone.utc))
    assert fresh.estimates.warning is None
    late = dt.datetime.combine(price_date + dt.timedelta(days=352), dt.time(12), dt.timezone.utc)
    stale = publish(models["second"], db_url, now=late)
    assert stale.created and "352 days before" in stale.estimates.warning and "limit 5 days" in stale.estimates.warning
    with open_store(db_url) as store:
        assert store.load("1810.HK", 1).warning is None
        assert store.load("1810.HK", 2).warning == stale.estimates.warning

    code, out, err = _cli(capsys, "publish", str(models["other_company"]), "--db", db_url)  # today: long after the note
    assert code == 0 and out.startswith("published 9999.HK@1")
    assert err.startswith("warning: the price 40.20 is from") and "refresh the model first" in err
    assert err.count("\n") == 1


def test_a_store_of_the_first_schema_is_migrated_and_keeps_its_versions(tmp_path):
    """A store written before versions recorded warnings gains the column and keeps every row."""
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(ROOT / "addin" / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(sa.text("INSERT INTO er_estimate_versions (ticker, version, model_sha256, model_file, "
                             "template_version, price, price_date, published_at) VALUES ('1810.HK', 1, 'abc', 'm.xlsm', "
                             "'1.0', 40.2, '2025-12-18', '2025-12-18 08:00:00')"))
    engine.dispose()
    with open_store(url) as store:
        old = store.load("1810.HK", "latest")
    assert old.version == 1 and old.price == 40.2 and old.warning is None
