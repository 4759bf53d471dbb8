"""Shared fixtures: the report's printed figures (the golden file) and the default model."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from udfs import registry
from udfs.tomlparse import tomllib

# A bug inside a worksheet function must fail a test, not hide behind #VALUE!.
registry.strict(True)

# Hypothesis: a quick profile for a local run, a thorough one when CI is set. A test that needs
# more examples than the profile's asks for them with `examples(n)`. Neither times an example
# (no deadline, no too-slow health check): how fast this machine is must never fail a test. CI
# draws the same examples on every run (derandomize), so a red CI is reproducible and never luck;
# a developer's run draws new ones each time and keeps what failed in .hypothesis/.
_UNTIMED = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, **_UNTIMED)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, **_UNTIMED)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def examples(on_ci: int) -> int:
    """A test's own example count: `on_ci` under the CI profile, and scaled with the loaded
    profile otherwise (a tenth on "dev", at least the profile's own count, never more than `on_ci`)."""
    loaded, ci = settings.default.max_examples, settings.get_profile("ci").max_examples
    return min(on_ci, max(loaded, on_ci * loaded // ci))

ROOT = Path(__file__).resolve().parents[1]
# pytest-xdist (`--dist loadgroup`) hands tests to the workers one by one, except the tests of a
# group, which all run on one worker: a module whose tests share an expensive fixture is a group
# (its own pytestmark), and so are the modules that evaluate a template with `formulas` (seconds a
# load, shared through the session fixtures below), all on one worker.
ON_THE_FORMULAS_WORKER = pytest.mark.xdist_group("formulas")
# The two broker notes the product is specified by live beside the repository (../shared/seed),
# not in it: the notes' text is not ours to copy. A clone without them skips what reads their text
# and says why; CI has them, and there a missing note fails instead of skipping.
SEEDS = ROOT.parent / "shared" / "seed"
XIAOMI_SEED = SEEDS / "000_d6c95b1446eba4f9.txt"
KYSEC_SEED = SEEDS / "001_kysec_300592SZ_20260427.txt"
needs_seeds = pytest.mark.skipif(not (XIAOMI_SEED.is_file() and KYSEC_SEED.is_file()) and not os.environ.get("CI"),
                                 reason=f"the seed notes are not at {SEEDS} (they live beside the repository)")
GOLDEN_FILE = ROOT / "workbook" / "data" / "xiaomi_1810hk.report.toml"
GOLDEN = tomllib.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
YEARS = GOLDEN["source"]["years"]
STATEMENT_TABLES = ("summary", "income", "balance", "cashflow")

# Tolerances of the acceptance criteria, by what a printed line is.
MONEY_TOLERANCE = 1.0         # 百万
EPS_TOLERANCE = 0.01          # 元
GROWTH_TOLERANCE_PP = 0.1     # percentage points


def golden_cells():
    """(table, key, year, printed value, decimals, percent) for every printed cell."""
    for table in STATEMENT_TABLES:
        for row in GOLDEN[table]:
            for year, value in zip(YEARS, row["values"]):
                yield table, row["key"], year, float(value), int(row.get("decimals", 0)), bool(row.get("percent"))


@pytest.fixture(scope="session")
def default_company():
    """The default company, under a name no module overrides (some modules' own `company` is
    another one): what the session's default template is built from."""
    from workbook.company import load
    return load()


@pytest.fixture(scope="session")
def company(default_company):
    return default_company


@pytest.fixture(scope="session")
def model(company):
    from workbook.model import build_model
    return build_model(company)


@pytest.fixture(scope="session")
def report_findings(company):
    from workbook.report import findings, load_report
    return findings(company, load_report(GOLDEN_FILE))


@pytest.fixture(scope="session")
def built(tmp_path_factory, default_company):
    """The default company's template, built once for the modules that evaluate it."""
    from workbook.build import build
    return build(tmp_path_factory.mktemp("built") / "model.xlsm", default_company)


@pytest.fixture(scope="session")
def template(built):
    from workbook_reader import Template
    return Template(built)


@pytest.fixture(scope="session")
def evaluated(built):
    """The default template loaded into `formulas` (seconds of work), once per worker; calculating
    with changed inputs leaves it as it was, so every module shares it."""
    from formulas_bridge import Evaluated
    return Evaluated(built)


KYSEC_DATA = ROOT / "workbook" / "data" / "kysec_300592sz.toml"
SHIPPED_TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"


@pytest.fixture(scope="session")
def kysec_company():
    from workbook.company import load
    return load(KYSEC_DATA)


@pytest.fixture(scope="session")
def kysec_built(tmp_path_factory, kysec_company):
    """The second company's template, built once for the modules that evaluate it."""
    from workbook.build import build
    return build(tmp_path_factory.mktemp("kysec_built") / "model.xlsm", kysec_company)


@pytest.fixture(scope="session")
def kysec_evaluated(kysec_built):
    from formulas_bridge import Evaluated
    return Evaluated(kysec_built)


@pytest.fixture(scope="session")
def libreoffice_resave(tmp_path_factory):
    """The shipped template as LibreOffice re-saves it (.xlsm, VBA kept): one conversion for the
    whole run, shared by every worker. Read it; copy it before changing it."""
    from libreoffice import SOFFICE, XLSM, convert
    from once_per_run import made_once, run_folder
    if SOFFICE is None:
        pytest.skip("LibreOffice not installed here")
    made = made_once(run_folder(tmp_path_factory), "libreoffice_resave",
                     lambda folder: convert([SHIPPED_TEMPLATE], XLSM, folder / "out", folder / "profile"))
    return made / "out" / SHIPPED_TEMPLATE.name


SHIPPED_TEMPLATES = {"xiaomi": SHIPPED_TEMPLATE, "kysec": ROOT / "workbook" / "kysec_300592sz_model.xlsm"}


@pytest.fixture(scope="session")
def shipped_editions(tmp_path_factory) -> dict[str, Path]:
    """Both committed templates and the native edition of each ("xiaomi", "kysec", "xiaomi native",
    "kysec native"), made once per run for every worker. Read them; copy one before changing it."""
    from once_per_run import made_once, run_folder

    def make(folder: Path) -> None:
        from addin.native import export_native
        for template in SHIPPED_TEMPLATES.values():
            shutil.copy(template, folder / template.name)
            export_native(folder / template.name, folder / f"{template.stem}_live.xlsx")
    folder = made_once(run_folder(tmp_path_factory), "shipped_editions", make)
    return {**{name: folder / template.name for name, template in SHIPPED_TEMPLATES.items()},
            **{f"{name} native": folder / f"{template.stem}_live.xlsx" for name, template in SHIPPED_TEMPLATES.items()}}


@pytest.fixture(scope="session")
def shipped_pdfs(tmp_path_factory, shipped_editions) -> dict[str, Path]:
    """`shipped_editions` as LibreOffice prints them to PDF: one soffice call for the four files,
    once per run for every worker (the print, LibreOffice and valuation-sheet tests read them)."""
    from libreoffice import SOFFICE, convert
    from once_per_run import made_once, run_folder
    if SOFFICE is None and not os.environ.get("CI"):
        pytest.skip("LibreOffice not installed here; `make test` installs it, and CI always has it")
    sources = list(shipped_editions.values())
    folder = made_once(run_folder(tmp_path_factory), "shipped_pdfs",
                       lambda made: convert(sources, "pdf", made / "out", made / "profile"))
    return {name: folder / "out" / f"{path.stem}.pdf" for name, path in shipped_editions.items()}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The longest tests first (marked `long`), so that no worker starts one near the end while
    the other has finished: pytest-xdist hands out the groups first (most tests first), then the
    other tests in this order. Grouped tests keep their order (a module's fixtures are made once
    while its tests run together).

    A group's tests share an expensive fixture on one worker only when pytest-xdist could mark
    them (their node id ends in @group): where it cannot (pytest 9.2 with pytest-xdist 3.8), the
    groups are spread silently and every worker makes the fixtures again. Refuse to run then."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("long") and not item.get_closest_marker("xdist_group") else 1)
    if not getattr(config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid.rsplit("]", 1)[-1]]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup could not group {len(lost)} tests (first: {lost[0]}): this pytest and "
                                "pytest-xdist do not work together; install the versions pyproject.toml names")


def pytest_sessionfinish(session):
    """The run's shared servers stop when the whole run ends: in the xdist controller (a worker
    that finishes early must not stop a server the others still use), or in a run without xdist."""
    if hasattr(session.config, "workerinput") or not hasattr(session.config, "_tmp_path_factory"):
        return
    from once_per_run import stop_postgres
    try:
        folder = session.config._tmp_path_factory.getbasetemp()
    except OSError:
        return
    stop_postgres(folder)
