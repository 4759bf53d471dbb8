"""The estimates history: what a model published, version by version, and how estimates moved.

`publish` reads a model file's forecast figures (the cached values of its cells, found through
the blueprint by the role each line has in the model's layout) and records them in an estimates store; `revision_table`
compares two sets of estimates, each from a model file or from the store, the way notes print
盈利预测调整表.

The store is any SQLAlchemy database: a SQLite file `estimates.sqlite` beside the model by
default, a URL from `--db` or from the workbook's xlwings.conf key `Estimates DB` for a team's
shared server. Alembic creates and migrates its schema every time it is opened (scripts in
`addin/migrations/`); every write is one transaction. Publishing the same file twice is
idempotent: the file's SHA-256 identifies it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from udfs.constants import NOT_MEANINGFUL, NOT_VALUED
from udfs.errors import DataError
from workbook import spec, xlsx
from workbook.files import open_regular
from workbook.formats import EMPTY, show
from workbook.layout import market_name, rating_name
from workbook.tomlfile import parse_toml
from workbook.xlcalc import evaluate

from .modelfile import MAX_MODEL_BYTES, model_lock, regular_file
from .refresh import conf
from .source import read_source
from .template import TICKER, blueprint, template_version, verify_structure

DEFAULT_STORE = "estimates.sqlite"
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")     # a --db value without "://" names a SQLite file
CONF_KEY = "ESTIMATES DB"                 # xlwings.conf keys are read upper-cased
MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "er_alembic_version"      # not alembic_version: a shared database may hold other tools' tables
CONNECT_TIMEOUT_S = 10

# Per forecast year: (line key in the store, the layout role of the line it is read from,
# required, label in 盈利预测调整表, number format). The line is found by its role, so any layout's
# line keys and statement prefixes serve; a layout without a recurring-profit line (Non-IFRS in
# the everbright_hk layout) has none to publish.
YEARLY = (
    ("revenue", "revenue", True, "营业收入", "money"),
    ("net_profit", "net_profit", True, "净利润", "money"),
    ("attributable_profit", "attributable_profit", True, "归母净利润", "money"),
    ("non_ifrs_net_profit", "recurring_profit", False, "Non-IFRS 净利润", "money"),
    ("eps", "eps", True, "每股收益（元）", "eps"),
)
# Once per version: (attribute of Estimates, label, number format).
SCALARS = (("target_price", "目标价", "price"), ("rating", "评级", "text"))
FORMAT_OF = {key: fmt for key, *_, fmt in YEARLY + SCALARS} | {"price": "price"}
PRICE, PRICE_DATE = market_name("price"), market_name("price_date")
TARGET_PRICE, RATING = rating_name("target_price"), rating_name("computed_rating")

metadata = sa.MetaData()
versions_table = sa.Table(
    "er_estimate_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("model_file", sa.String(255), nullable=False),
    sa.Column("template_version", sa.String(32), nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("price_date", sa.Date, nullable=False),
    sa.Column("target_price", sa.Double, nullable=True),
    sa.Column("rating", sa.String(32), nullable=True),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("warning", sa.String(255), nullable=True),   # e.g. the price was older than the max age (0002)
    sa.UniqueConstraint("ticker", "version", name="uq_er_estimate_versions_ticker_version"),
    sa.UniqueConstraint("model_sha256", name="uq_er_estimate_versions_model_sha256"),
)
figures_table = sa.Table(
    "er_estimate_figures", metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("er_estimate_versions.id", ondelete="CASCADE",
                                                      name="fk_er_estimate_figures_version_id"), primary_key=True),
    sa.Column("year", sa.String(16), primary_key=True),
    sa.Column("line", sa.String(64), primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
)


class EstimatesError(DataError):
    """A store that cannot be used, a version that does not exist, a model without numbers to
    publish; the message is one readable sentence."""


@dataclass(frozen=True)
class Estimates:
    """One set of published estimates: from a model file, or a version in the store."""
    ticker: str
    source: str                                   # the model file's name, or TICKER@N
    years: dict                                   # forecast year label -> {line key: value}
    price: float
    price_date: dt.date
    target_price: float | None
    rating: str | None
    template_version: str
    sha256: str
    version: int | None = None                    # in the store; None for a file not read from it
    published_at: dt.datetime | None = None
    warning: str | None = None                    # what publish warned of (a stale price), as recorded


@dataclass(frozen=True)
class PublishResult:
    estimates: Estimates                          # as stored (version and time filled in)
    created: bool                                 # False: this very file was already published
    store: str                                    # the store's URL, password hidden


# ------------------------------------------------------------------------------------------------
# Reading a model file
# ------------------------------------------------------------------------------------------------
def read_once(path: Path) -> bytes:
    """The model file's bytes, read once while holding its lock: a refresh or roll replacing it
    meanwhile waits, so everything published (figures, price, date, SHA-256) is one version."""
    real = regular_file(path)  # a FIFO, a device or an oversized file is refused before it is opened
    with model_lock(real):
        with open_regular(real, MAX_MODEL_BYTES, xlsx.WorkbookError, "file") as handle:
            return handle.read(MAX_MODEL_BYTES + 1)


def published_cells(package: xlsx.Package, rows: list[dict] | None = None) -> dict[str, list[tuple[str, str]]]:
    """Store key -> the cells of the line it is read from on its statement, in year order: the
    line its layout gives the role (the layout the model stored on its _source sheet; a model
    built before that has the default layout's roles), found through the blueprint, so no
    defined name is assumed. A line's base-year cell on the drivers sheet is not among them.
    `rows`: the blueprint, when the caller has read it already."""
    try:
        layout_name, layout_text = read_source(package)["layout"]
        roles = dict(parse_toml(layout_text, layout_name).get("roles") or {})
    except DataError:
        roles = dict(spec.load_layout().roles)
    by_sheet: dict[str, dict[str, list]] = {}
    for row in blueprint(package) if rows is None else rows:
        if row["kind"] != "mirror":
            by_sheet.setdefault(row["key"], {}).setdefault(row["sheet"], []).append(row["cell"])
    out = {}
    for key, role, required, _label, _fmt in YEARLY:
        sheets = by_sheet.get(roles.get(role, role), {})
        if not sheets:
            if required:
                raise xlsx.WorkbookError(f"{package.path.name}: the template has no {role} line to publish; "
                                         "rebuild the template")
            continue
        home = max(sheets, key=lambda sheet: len(sheets[sheet]))  # the statement row, every year of it
        out[key] = [(home, cell) for cell in sorted(sheets[home], key=lambda ref: xlsx.split_ref(ref)[1])]
    return out


def read_model(path: str | Path) -> Estimates:
    """The estimates a model file carries; WorkbookError if it is not an intact model or a
    figure to publish is not a number."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[Estimates, xlsx.Package]:
    raw = read_once(path)
    package = xlsx.read(path, raw)
    verify_structure(package)
    rows = {(r["sheet"], r["cell"]): r for r in blueprint(package)}
    computed: dict = {}

    def value(cell):
        shown = package.value(*cell)
        xml = package.sheets[cell[0]].cells.get(cell[1])
        if shown is None and xml is not None and xml.formula is not None:  # saved without cached values
            if not computed:
                computed.update(evaluate(package))
            shown = computed.get(cell)
        return shown

    def number(cell, what: str, optional: bool = False):
        got = value(cell)
        if optional and (got is None or got in ("", NOT_MEANINGFUL, NOT_VALUED)):
            return None  # no valuation made yet (the blend is empty) or none that means anything

        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise xlsx.WorkbookError(f"{path.name}: {cell[0]}!{cell[1]} ({what}) shows {got!r}, not a number; "
                                     "fix the model (or refresh it) before using its estimates")
        return float(got)

    def single(name):
        return package.name_cells(name)[0]

    def year_of(cell) -> dict:
        row = rows.get(cell)
        if row is None:
            raise xlsx.WorkbookError(f"{path.name}: {cell[0]}!{cell[1]} is not in the template's blueprint; rebuild the template")
        return row

    # Forecast years are where the template put formulas, not typed figures: the blueprint says so.
    published = published_cells(package, list(rows.values()))
    forecast = [year_of(c)["year"] for c in published["revenue"] if year_of(c)["kind"] != "input"]
    years = {year: {} for year in forecast}
    for key, cells in published.items():
        for cell in cells:
            year = year_of(cell)["year"]
            if year in years:
                years[year][key] = number(cell, f"{key} {year}")

    ticker = value(single(TICKER))
    if not isinstance(ticker, str) or not ticker.strip():
        raise xlsx.WorkbookError(f"{path.name}: the ticker cell is empty; a model's estimates are filed under its ticker")
    raw_date = value(single(PRICE_DATE))
    try:
        if isinstance(raw_date, (int, float)) and not isinstance(raw_date, bool):
            price_date = xlsx.from_excel_date(raw_date)
        else:
            price_date = dt.date.fromisoformat(str(raw_date).strip())
    except (ValueError, OverflowError):
        raise xlsx.WorkbookError(f"{path.name}: the price date shows {raw_date!r}, not a date") from None
    rating = value(single(RATING))
    for what, text, column in (("ticker", ticker, versions_table.c.ticker), ("rating", rating, versions_table.c.rating)):
        if isinstance(text, str) and len(text.strip()) > column.type.length:
            raise xlsx.WorkbookError(f"{path.name}: the {what} {text[:40]!r} is longer than {column.type.length} "
                                     "characters; that is not a ticker or a rating")
    estimates = Estimates(
        ticker=ticker.strip(), source=path.name, years=years,
        price=number(single(PRICE), "price"), price_date=price_date,
        target_price=number(single(TARGET_PRICE), "target price", optional=True),
        rating=str(rating) if rating not in (None, "") else None,
        template_version=template_version(package), sha256=hashlib.sha256(raw).hexdigest())
    return estimates, package


# ------------------------------------------------------------------------------------------------
# The store
# ------------------------------------------------------------------------------------------------
def _redact(text: str) -> str:
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", text)


def _as_url(setting: str, base: Path) -> str:
    """A database URL as given, or a path to a SQLite file (relative to `base`) named like one."""
    setting = setting.strip()
    if "://" in setting or not setting.lower().endswith(SQLITE_SUFFIXES):
        return setting  # open_store says whether it is a database URL
    path = Path(setting).expanduser()
    return "sqlite:///" + str(path if path.is_absolute() else (base / path).resolve())


def store_url(explicit: str | None = None, model: Path | None = None, package: xlsx.Package | None = None) -> str:
    """Which store: `--db`, else the workbook's `Estimates DB` setting, else estimates.sqlite
    beside the model (or in the current folder when no model is involved).

    A workbook travels between analysts, so its own setting is obeyed only where it cannot send
    the firm's estimates anywhere unasked: a SQLite file in the model's folder (or below it).
    A server, an in-memory database or a file elsewhere is refused with the `--db` that would
    confirm it; the analyst's `--db` is always obeyed."""
    if explicit:
        return _as_url(explicit, Path.cwd())
    setting = conf(package).get(CONF_KEY) if package is not None else None
    if isinstance(setting, str) and setting.strip():
        base = model.parent.resolve() if model else Path.cwd().resolve()
        url = _as_url(setting, base)
        why = _leaves_the_folder(url, base)
        if why:
            name = model.name if model else "the workbook"
            raise EstimatesError(f"{name}: its xlwings.conf 'Estimates DB' names {_shown_url(url)}, {why}; a setting "
                                 "stored in a workbook does not choose where estimates go: if that is where they belong, "
                                 f"confirm it with --db {_shown_url(setting.strip())}")
        return url
    return _as_url(DEFAULT_STORE, model.parent.resolve() if model else Path.cwd())


def _shown_url(url: str) -> str:
    return _redact(" ".join(url.split()))[:200]


def _in_memory(parsed) -> bool:
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _leaves_the_folder(url: str, folder: Path) -> str | None:
    """Why a store URL taken from a workbook would send data outside `folder`, or None."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        return "which is not a database URL"
    if parsed.get_backend_name() != "sqlite":
        return "a database server"
    if _in_memory(parsed) or str(parsed.database).startswith("file:"):
        return "an in-memory or URI database"
    where = Path(parsed.database)
    where = (where if where.is_absolute() else folder / where).resolve()
    if where != folder and folder not in where.parents:
        return "a file outside the model's folder"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return _redact(text.splitlines()[0] if text else type(exc).__name__)


class Store:
    """An opened, migrated estimates store. Use `open_store` to get one."""

    def __init__(self, engine: sa.Engine, shown: str):
        self.engine = engine
        self.shown = shown

    # -- writing ---------------------------------------------------------------------------------
    def publish(self, estimates: Estimates, now: dt.datetime | None = None) -> PublishResult:
        """Record `estimates` as the ticker's next version, in one transaction; the same file
        again (same SHA-256) returns the version already stored and writes nothing."""
        now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        for _attempt in range(3):  # two publishers racing for the same version number: the loser retries
            try:
                with self.engine.begin() as conn:
                    existing = conn.execute(sa.select(versions_table).where(
                        versions_table.c.model_sha256 == estimates.sha256)).mappings().first()
                    if existing is not None:
                        return PublishResult(self._load(conn, existing), False, self.shown)
                    latest = conn.execute(sa.select(sa.func.max(versions_table.c.version)).where(
                        versions_table.c.ticker == estimates.ticker)).scalar()
                    if latest is not None and (isinstance(latest, bool) or not isinstance(latest, int)):
                        raise _DamagedRow(f"{estimates.ticker} has a version {str(latest)[:20]!r} that is not a whole number")
                    version = (latest or 0) + 1
                    new_id = conn.execute(versions_table.insert().values(
                        ticker=estimates.ticker, version=version, model_sha256=estimates.sha256,
                        model_file=estimates.source[:255], template_version=estimates.template_version,
                        price=estimates.price, price_date=estimates.price_date, target_price=estimates.target_price,
                        rating=estimates.rating, published_at=now,
                        warning=estimates.warning[:255] if estimates.warning else None)).inserted_primary_key[0]
                    rows = [{"version_id": new_id, "year": year, "line": key, "value": value}
                            for year, lines in estimates.years.items() for key, value in lines.items()]
                    if rows:
                        conn.execute(figures_table.insert(), rows)
                stored = replace(estimates, version=version, published_at=now, source=f"{estimates.ticker}@{version}")
                return PublishResult(stored, True, self.shown)
            except sa_exc.IntegrityError:
                continue
            except sa_exc.SQLAlchemyError as exc:
                raise EstimatesError(f"estimates store {self.shown}: nothing written ({_first_line(exc)})") from None
            except (ValueError, TypeError, OverflowError) as exc:  # _DamagedRow, or a column the driver cannot convert
                raise EstimatesError(f"estimates store {self.shown}: nothing written; a damaged row ({_first_line(exc)}), "
                                     "written by something else than `publish` (repair or remove that row)") from None
        raise EstimatesError(f"estimates store {self.shown}: another publish kept taking the next version number; "
                             "nothing written, try again")

    # -- reading ---------------------------------------------------------------------------------
    def tickers(self) -> list[str]:
        with self._reading() as conn:
            return list(conn.execute(sa.select(versions_table.c.ticker).distinct().order_by(versions_table.c.ticker)).scalars())

    def versions(self, ticker: str) -> list[int]:
        with self._reading() as conn:
            found = list(conn.execute(sa.select(versions_table.c.version).where(versions_table.c.ticker == ticker)
                                      .order_by(versions_table.c.version)).scalars())
            bad = [v for v in found if isinstance(v, bool) or not isinstance(v, int)]
            if bad:
                raise _DamagedRow(f"{ticker} has a version {str(bad[0])[:20]!r} that is not a whole number")
            return found

    def load(self, ticker: str, which: str | int) -> Estimates:
        """Version `which` of `ticker`: a number, "latest" or "previous"."""
        numbers = self.versions(ticker)
        ref = f"{ticker}@{which}"
        if not numbers:
            held = ", ".join(self.tickers()) or "none yet"
            raise EstimatesError(f"{ref}: no published estimates for {ticker} in {self.shown} (it holds: {held})")
        if which == "latest":
            version = numbers[-1]
        elif which == "previous":
            if len(numbers) < 2:
                raise EstimatesError(f"{ref}: {ticker} has only one published version (@{numbers[0]}), so no previous one")
            version = numbers[-2]
        else:
            version = int(which)
            if version not in numbers:
                raise EstimatesError(f"{ref}: no such version in {self.shown}; {ticker} has "
                                     f"@{numbers[0]}" + (f" to @{numbers[-1]}" if len(numbers) > 1 else ""))
        with self._reading() as conn:
            row = conn.execute(sa.select(versions_table).where(versions_table.c.ticker == ticker,
                                                               versions_table.c.version == version)).mappings().one()
            return self._load(conn, row)

    @contextmanager
    def _reading(self):
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise EstimatesError(f"estimates store {self.shown}: cannot read it ({_first_line(exc)})") from None
        except _DamagedRow as exc:
            raise EstimatesError(f"estimates store {self.shown}: a damaged row: {exc}; the store was written by something else than "
                                 "`publish` (repair or remove that row)") from None
        except (ValueError, TypeError, OverflowError) as exc:  # a column the driver cannot convert (SQLite keeps any text)
            raise EstimatesError(f"estimates store {self.shown}: a damaged row ({_first_line(exc)}); the store was "
                                 "written by something else than `publish` (repair or remove that row)") from None

    @staticmethod
    def _load(conn, row) -> Estimates:
        """The version in `row` with its figures; _DamagedRow when a value is not what publish writes."""
        where = f"{row['ticker']}@{row['version']}"
        years: dict = {}
        for year, key, value in conn.execute(
                sa.select(figures_table.c.year, figures_table.c.line, figures_table.c.value)
                .where(figures_table.c.version_id == row["id"]).order_by(figures_table.c.year)):
            years.setdefault(str(year), {})[str(key)] = _stored_number(value, f"{where} {key} {year}")
        published = row["published_at"]
        if not isinstance(published, dt.datetime) or not isinstance(row["price_date"], dt.date) \
                or not isinstance(row["version"], int) or isinstance(row["version"], bool):
            raise _DamagedRow(f"{where} has a version, price date or publishing time that is not one")
        if published.tzinfo is None:  # SQLite keeps no zone; we always store UTC
            published = published.replace(tzinfo=dt.timezone.utc)
        target = row["target_price"]
        warning = row.get("warning")  # a nullable column since migration 0002
        return Estimates(ticker=str(row["ticker"]), source=where, years=years,
                         price=_stored_number(row["price"], f"{where} price"), price_date=row["price_date"],
                         target_price=None if target is None else _stored_number(target, f"{where} target price"),
                         rating=None if row["rating"] is None else str(row["rating"]),
                         template_version=str(row["template_version"]), sha256=str(row["model_sha256"]),
                         version=row["version"], published_at=published,
                         warning=None if warning is None else str(warning))


class _DamagedRow(ValueError):
    """A row of the store that `publish` cannot have written; the message names it."""


def _stored_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _DamagedRow(f"{what} is {str(value)[:40]!r}, not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _DamagedRow(f"{what} is not a finite number")
    return number


@contextmanager
def open_store(url: str, create: bool = True):
    """The store at `url`, its schema migrated to this version; EstimatesError (one line) if the
    URL is not a database URL, its driver is missing, the server cannot be reached, or the
    store was migrated by a newer add-in. `create=False` refuses a SQLite file that is not there."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise EstimatesError(f"{_redact(url)!r} is not a database URL (e.g. sqlite:///estimates.sqlite or "
                             "postgresql+psycopg://user@host/research)") from None
    shown = parsed.render_as_string(hide_password=True)
    if _in_memory(parsed):
        raise EstimatesError(f"estimates store {shown}: an in-memory database keeps nothing once the command ends; "
                             "name a SQLite file or a database server with --db")
    if parsed.get_backend_name() == "sqlite":
        where = Path(parsed.database)
        if not create and not where.is_file():
            raise EstimatesError(f"no estimates store at {where}: publish a model first, or name the store with --db")
        if not where.parent.is_dir():
            raise EstimatesError(f"estimates store {shown}: the folder {where.parent} does not exist")
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
    except (sa_exc.ArgumentError, ImportError) as exc:
        raise EstimatesError(f"estimates store {shown}: no database driver for {parsed.drivername} ({_first_line(exc)})") from None
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except sa_exc.SQLAlchemyError as exc:
        engine.dispose()
        raise EstimatesError(f"estimates store {shown}: cannot open it ({_first_line(exc)})") from None
    except CommandError as exc:
        engine.dispose()
        raise EstimatesError(f"estimates store {shown}: its schema is not one this add-in knows ({_first_line(exc)}); "
                             "upgrade the add-in") from None
    try:
        yield Store(engine, shown)
    finally:
        engine.dispose()


def publish(model_path: str | Path, db_url: str | None = None, now: dt.datetime | None = None) -> PublishResult:
    """Record a model file's estimates in the store. The model is read and checked first, so a
    broken model or an unreachable store writes nothing. A price older than the workbook's
    'Quotes Max Age Days' (default 5) on the day of publishing is published with a warning, which
    the store records beside the version and the result carries."""
    path = Path(model_path)
    estimates, package = _read(path)
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    estimates = replace(estimates, warning=stale_price_warning(estimates, package, now.date()))
    with open_store(store_url(db_url, path, package)) as store:
        return store.publish(estimates, now)


def stale_price_warning(estimates: Estimates, package: xlsx.Package, today: dt.date) -> str | None:
    """"price 40.20 is from 2025-12-18, 352 days before 2026-12-05 (limit 5 days): …", or None."""
    from .quotes import parse_max_age
    from .refresh import CONF_MAX_AGE

    limit = parse_max_age(conf(package).get(CONF_MAX_AGE), f"{package.path.name}: xlwings.conf 'Quotes Max Age Days'")
    age = (today - estimates.price_date).days
    if age <= limit:
        return None
    return (f"the price {show(estimates.price, 'price')} is from {estimates.price_date}, {age} days before {today} (limit "
            f"{limit} days, xlwings.conf 'Quotes Max Age Days'): the estimates were published on an old price; refresh "
            "the model first")


def render_publish(result: PublishResult) -> str:
    e = result.estimates
    when = e.published_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if e.published_at else ""
    if not result.created:
        return (f"already published: this file is {e.source} (same SHA-256 {e.sha256[:12]}…, published {when}); "
                f"nothing written to {result.store}")
    years = list(e.years)
    span = f"{years[0]}–{years[-1]}" if years else "no forecast years"
    return (f"published {e.source} ({span}, target price {_fmt('target_price', e.target_price)}, "
            f"rating {e.rating or EMPTY}, price {_fmt('price', e.price)} on {e.price_date}) to {result.store}")


# ------------------------------------------------------------------------------------------------
# Revisions
# ------------------------------------------------------------------------------------------------
REF = re.compile(r"^(?P<ticker>[^@\s]+)@(?P<which>\d+|latest|previous)$")
BOTH, NEW, DROPPED = "both", "new", "dropped"
STATUS_LABELS = {BOTH: "", NEW: "新增年度", DROPPED: "删除年度"}

@dataclass(frozen=True)
class RevisionRow:
    """One line of 盈利预测调整表. `year` is "" for target price and rating; `change` and
    `change_pct` are None where either side is missing or not a number (and `change_pct` where
    the old value is zero); `change_pct` is a fraction, relative to |old|."""
    key: str
    label: str
    year: str
    old: float | str | None
    new: float | str | None
    change: float | None
    change_pct: float | None
    status: str = BOTH                          # BOTH, NEW (year only in the new estimates) or DROPPED


def _row(key, label, year, old, new, status=BOTH) -> RevisionRow:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    change = new - old if numbers else None
    pct = change / abs(old) if numbers and old else None
    return RevisionRow(key, label, year, old, new, change, pct, status)


def revision_table(old: Estimates, new: Estimates) -> list[RevisionRow]:
    """Old vs new estimates: every yearly line for every forecast year (years only on one side
    marked NEW or DROPPED), then target price and rating."""
    years = list(old.years) + [y for y in new.years if y not in old.years]
    rows = []
    for key, _role, _required, label, _fmt in YEARLY:
        if not any(key in lines for side in (old, new) for lines in side.years.values()):
            continue  # a layout without this line (no recurring profit)
        for year in years:
            status = BOTH if year in old.years and year in new.years else (NEW if year in new.years else DROPPED)
            rows.append(_row(key, label, year, old.years.get(year, {}).get(key),
                             new.years.get(year, {}).get(key), status))
    for key, label, _fmt_name in SCALARS:
        rows.append(_row(key, label, "", getattr(old, key), getattr(new, key)))
    return rows


def _fmt(key: str, value) -> str:
    return show(value, FORMAT_OF[key])


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, left: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return text + gap if left else gap + text


def _side(e: Estimates) -> str:
    if e.published_at is not None:
        return f"{e.source} (published {e.published_at.astimezone(dt.timezone.utc):%Y-%m-%d})"
    return e.source


def render_revisions(old: Estimates, new: Estimates, rows: list[RevisionRow] | None = None) -> str:
    """The table as text for the terminal (no pandas): 指标, 年度, 调整前, 调整后, 变动, 变动%."""
    rows = revision_table(old, new) if rows is None else rows
    header = ("指标", "年度", "调整前", "调整后", "变动", "变动%", "")
    body = []
    for r in rows:
        change = "" if r.change is None else ("+" if r.change > 0 else "") + _fmt(r.key, r.change)
        pct = "" if r.change_pct is None else f"{r.change_pct * 100:+.1f}%"
        if r.change is None and r.key == "rating" and r.old != r.new:
            change = "调整"
        body.append((r.label, r.year, _fmt(r.key, r.old), _fmt(r.key, r.new), change, pct, STATUS_LABELS[r.status]))
    widths = [max(_width(line[i]) for line in [header] + body) for i in range(len(header))]
    out = [f"盈利预测调整 {new.ticker}: {_side(old)} → {_side(new)}"]
    for line in [header] + body:
        cells = [_pad(c, w, left=i in (0, 1, 6)) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def load_estimates(old: str, new: str, db_url: str | None = None) -> tuple[Estimates, Estimates]:
    """OLD and NEW, each a model file or TICKER@N / TICKER@latest / TICKER@previous from the store."""
    sides: list = []
    models = []                                   # (path, package): the first one says where its store is
    for text in (old, new):
        path = Path(text)
        if path.exists() or path.is_symlink():
            estimates, package = _read(path)
            models.append((path, package))
            sides.append(estimates)
        elif REF.match(text.strip()):
            sides.append(REF.match(text.strip()))
        else:
            raise EstimatesError(f"{text}: no such model file, and not a published version "
                                 "(TICKER@N, TICKER@latest or TICKER@previous, e.g. 1810.HK@latest)")
    if any(isinstance(s, re.Match) for s in sides):
        with open_store(store_url(db_url, *(models[0] if models else (None, None))), create=False) as store:
            sides = [store.load(s["ticker"], s["which"]) if isinstance(s, re.Match) else s for s in sides]
    if sides[0].ticker != sides[1].ticker:
        raise EstimatesError(f"{sides[0].source} is {sides[0].ticker} and {sides[1].source} is {sides[1].ticker}: "
                             "revisions compare one company's estimates")
    return sides[0], sides[1]
