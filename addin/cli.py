"""`python -m addin <command>`: thin handlers over the model, the workbook and the refresh.

A user's mistake ends in one readable line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from udfs.errors import ModelError
from workbook.company import DEFAULT_COMPANY

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(ModelError):
    """A problem the user can fix; its message is the one line they see."""


def _show(args) -> int:
    from .show import render
    from workbook.company import load
    from workbook.model import build_model
    from workbook.report import findings, load_report, report_path_for

    company = load(args.data)
    try:
        model = build_model(company, scenario=args.scenario)
    except ValueError as exc:
        raise UserError(f"--scenario: {exc}") from None
    report_file = report_path_for(company)
    found = findings(company, load_report(report_file)) if report_file.is_file() else None
    print(render(model, found, english=args.english))
    if args.sensitivity:
        from .show import sensitivity_table
        print("\n" + sensitivity_table(model))
    return EXIT_OK if model.balanced else EXIT_FAILED


def _build(args) -> int:
    from pathlib import Path

    from workbook.build import build
    from workbook.company import load

    company = load(args.data)
    output = Path(args.output) if args.output else Path("out") / f"{company.path.stem}_model.xlsm"
    if output.suffix.lower() != ".xlsm":
        raise UserError(f"{output}: the template carries macros, so its name must end in .xlsm")
    if output.is_dir():
        raise UserError(f"{output}: is a folder; give a file name ending in .xlsm")
    try:
        path = build(output, company)
    except PermissionError:
        raise UserError(f"{output}: cannot write there (is the file open in Excel, or the folder read-only?)") from None
    print(f"built {path.resolve()}")
    return EXIT_OK


def _whole_number(what: str, low: int, high: int, hint: str):
    """An argparse type: a whole number of `what` between `low` and `high`, else one line."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a whole number of {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} {what}: {hint}")
        return value
    return parse


_workers = _whole_number("processes", 1, 1024, "give 1 or more (at most the number of cores is used)")
_days = _whole_number("days", 0, 36_500, "give 0 to 36500")


def _date(text: str):
    import datetime as dt
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-27") from None


def _refresh(args) -> int:
    from pathlib import Path

    from .modelfile import regular_file
    from .refresh import model_files, refresh_many, worker_count

    target = Path(args.model)
    if not target.exists():
        raise UserError(f"{target}: no such file or folder")
    files = model_files(target)
    if not files:
        raise UserError(f"{target}: no .xlsm model files in this folder")
    single = not target.is_dir()
    if single:
        regular_file(target)  # a FIFO, a device or an oversized file: refused before anything runs

    def progress(i, total, path, error, changed):
        if single:
            return
        status = f"FAILED: {error}" if error else f"ok ({changed} cells)"
        print(f"[{i}/{total}] {path.name}: {status}", flush=True)

    outcomes = refresh_many(files, args.quotes, args.as_of, args.max_age_days, workers=worker_count(args.workers, len(files)),
                            progress=progress, accept_move=args.accept_move)
    if single:
        outcome = outcomes[0]
        if outcome.error and not outcome.written:
            raise UserError(outcome.error)
        backup = f", backup {outcome.backup.name}" if outcome.backup else ""
        if outcome.error:                      # written, but the refreshed model's checks fail
            print(f"error: {outcome.error}", file=sys.stderr)
            print(f"refreshed {outcome.path}: {outcome.changed} cells updated{backup}; CHECKS FAIL")
            return EXIT_FAILED
        print(f"refreshed {outcome.path}: {outcome.changed} cells updated{backup}")
        return EXIT_OK
    refused = sum(1 for o in outcomes if o.error and not o.written)
    failing = sum(1 for o in outcomes if o.error and o.written)
    ok = len(outcomes) - refused - failing
    print(f"refreshed {ok} of {len(outcomes)} models"
          + (f"; {refused} refused" if refused else "")
          + (f"; {failing} written with failing checks" if failing else ""))
    return EXIT_FAILED if refused or failing else EXIT_OK


def _check(args) -> int:
    from .audit import audit, render
    from .modelfile import regular_file

    result = audit(regular_file(args.model))
    print(render(result))
    return EXIT_FAILED if result.failed else EXIT_OK


def _export(args) -> int:
    from .modelfile import regular_file
    from .share import export

    regular_file(args.model)
    path = export(args.model, args.output, native=args.native)
    print(f"exported {'native-formula live edition' if args.native else 'values-only copy'} {path.resolve()}")
    return EXIT_OK


def _new(args) -> int:
    return _build(args)


def _diff(args) -> int:
    from .modelfile import regular_file
    from .share import diff, render_diff

    regular_file(args.old), regular_file(args.new)
    print(render_diff(diff(args.old, args.new)))
    return EXIT_OK


def _publish(args) -> int:
    from .estimates import publish, render_publish

    print(render_publish(publish(args.model, args.db)))
    return EXIT_OK


def _revisions(args) -> int:
    from .estimates import load_estimates, render_revisions

    print(render_revisions(*load_estimates(args.old, args.new, args.db)))
    return EXIT_OK


def _roll(args) -> int:
    from .modelfile import regular_file
    from .roll import render, roll

    regular_file(args.model)
    result = roll(args.model, args.actuals, args.output, accept_unbalanced=args.accept_unbalanced)
    print(render(result))
    return EXIT_FAILED if result.checks_failed else EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other mistake."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def _bench(args) -> int:
    from pathlib import Path

    from .bench import render, run

    results = run(quick=args.quick, out=Path(args.json))
    print(render(results))
    print(f"wrote {Path(args.json).resolve()}")
    return EXIT_OK


def _import(args) -> int:
    from pathlib import Path

    from workbook.importer import ImportFailed, import_note
    try:
        result = import_note(args.note, args.output, stem=args.name)
    except ImportFailed as exc:
        text = str(exc)
        raise UserError(text if str(args.note) in text or Path(args.note).name in text else f"{args.note}: {text}") from None
    print(f"imported {args.note} with layout {result.layout.name}"
          + (f" (inferred: {result.layout_written})" if result.layout_written else "")
          + f": {result.shown_as_printed} printed cells shown as printed, {result.explained} explained by findings, "
          f"{result.unexplained} unexplained; model {result.model_path}; report {result.text_path}")
    if not result.balanced:
        raise UserError(f"{args.note}: the model built from the note does not balance; see {result.text_path}")
    if result.unexplained:
        raise UserError(f"{args.note}: {result.unexplained} printed cells differ from the model without an explanation; "
                        f"see {result.text_path}")
    return 0


def _lite(args) -> int:
    from .lite import write_lite

    written = write_lite(args.output, force=args.force)
    names = " and ".join(path.name for path in written)
    print(f"wrote xlwings Lite edition {written[0].parent.resolve()}: paste {names} into the xlwings Lite editor")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m addin", description="Equity-research model: Python UDFs for an Excel template.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    show = commands.add_parser("show", help="print the summary table, the three statements, the ratios, the rating and the checks",
                               description="Print the model computed from a company data file.",
                               epilog="example: python -m addin show --data workbook/data/kysec_300592sz.toml")
    show.add_argument("--data", default=str(DEFAULT_COMPANY), help="company data file (default: the embedded sample company)")
    show.add_argument("--english", action="store_true", help="English labels")
    show.add_argument("--scenario", choices=("base", "bear", "bull"), help="the driver set to show (default: the file's)")
    show.add_argument("--sensitivity", action="store_true",
                      help="also the valuation EPS of the first forecast year by two drivers, the model re-run per point")
    show.set_defaults(handler=_show)

    build = commands.add_parser("build", help="write the macro-enabled Excel template",
                                description="Build the .xlsm template: statements, drivers, ratios, rating, checks, "
                                            "the VBA project and the Refresh button.",
                                epilog="example: python -m addin build -o out/model.xlsm")
    build.add_argument("-o", "--output", help="where to write the .xlsm (default: out/<company>_model.xlsm)")
    build.add_argument("--data", default=str(DEFAULT_COMPANY), help="company data file (default: the embedded sample company)")
    build.set_defaults(handler=_build)

    refresh = commands.add_parser("refresh", help="new market inputs into a model file (or every .xlsm in a folder), recomputed in place",
                                  description="Refresh price, price date, FX and benchmark level from a quote source, recompute "
                                              "every value, re-run the checks and stamp the time. Only those cells change; "
                                              "the previous version is kept as MODEL.xlsm.YYYYMMDD-HHMMSS.bak (the last "
                                              "xlwings.conf 'Backups' versions, default 5). Exit status 1 when the "
                                              "quote is refused or the refreshed model's checks fail (the file is still "
                                              "written and the first cause cell is named).",
                                  epilog="examples: python -m addin refresh out/MODEL.xlsm --quotes today.csv\n"
                                         "          python -m addin refresh models/ --quotes today.csv",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    refresh.add_argument("model", help="a model .xlsm, or a folder of them")
    refresh.add_argument("--quotes", help="quote source: a CSV file (ticker,price,currency,price_date,fx_to_reporting,"
                                          "benchmark_level,source) or file:PATH; default: the workbook's setting, else the embedded file")
    refresh.add_argument("--as-of", type=_date, help="judge staleness against this date (default: today)")
    refresh.add_argument("--max-age-days", type=_days, help="refuse quotes older than this many days (default: xlwings.conf "
                                                           "'Quotes Max Age Days', else 5)")
    refresh.add_argument("--accept-move", action="store_true",
                         help="accept a price or FX far from the model's last one (a split, a real crash), after checking it")
    refresh.add_argument("--workers", type=_workers, default=2,
                         help="processes for a folder (default 2; never more than the cores or the files)")
    refresh.set_defaults(handler=_refresh)

    check = commands.add_parser("check", help="audit a model file: checks, report findings, overrides, unknown functions, version",
                                description="Print the integrity checks, the report's self-disagreements, every number typed "
                                            "where the template has a formula, edited formulas, functions this version does not "
                                            "provide and the template version. Exit status 1 when anything failed.",
                                epilog="example: python -m addin check out/MODEL.xlsm")
    check.add_argument("model", help="a model .xlsm")
    check.set_defaults(handler=_check)

    export = commands.add_parser("export", help="write a values-only .xlsx copy (no macros, no formulas)",
                                 description="A copy for readers without Python or outside the firm: every formula replaced by "
                                             "its value, the VBA project and the button removed, formats, labels and charts kept.",
                                 epilog="example: python -m addin export out/MODEL.xlsm -o out/clean.xlsx")
    export.add_argument("model", help="a model .xlsm")
    export.add_argument("-o", "--output", required=True, help="the .xlsx to write")
    export.add_argument("--native", action="store_true",
                        help="the live edition instead: every ER_ function written as a native Excel formula, no macros")
    export.set_defaults(handler=_export)

    new = commands.add_parser("new", help="build a model for another company from its data file",
                              description="Build the template from a company data file in the documented format (README).",
                              epilog="example: python -m addin new --data workbook/data/my_company.toml -o out/my_company.xlsm")
    new.add_argument("--data", required=True, help="company data file (TOML)")
    new.add_argument("-o", "--output", required=True, help="the .xlsm to write")
    new.set_defaults(handler=_new)

    diff = commands.add_parser("diff", help="what changed between two versions of a model, and what it did",
                               description="List the drivers and inputs that differ between two model files and how revenue, "
                                           "profit, EPS, P/E and the rating moved.",
                               epilog="example: python -m addin diff monday.xlsm tuesday.xlsm")
    diff.add_argument("old", help="the earlier model .xlsm")
    diff.add_argument("new", help="the later model .xlsm")
    diff.set_defaults(handler=_diff)

    db_help = ("estimates store: a SQLAlchemy URL (postgresql+psycopg://user@host/research) or a SQLite file; default: "
               "the workbook's xlwings.conf 'Estimates DB', else estimates.sqlite beside the model")
    publish = commands.add_parser("publish", help="record a model's estimates in the estimates history",
                                  description="Record the model's forecast revenue, profit lines and EPS per year, target "
                                              "price, rating, price, template version and file hash as the ticker's next "
                                              "version. Publishing the same file again writes nothing.",
                                  epilog="example: python -m addin publish out/MODEL.xlsm")
    publish.add_argument("model", help="a model .xlsm")
    publish.add_argument("--db", help=db_help)
    publish.set_defaults(handler=_publish)

    revisions = commands.add_parser("revisions", help="盈利预测调整: old vs new estimates, from model files or the history",
                                    description="Revenue, profit lines, EPS, target price and rating, old vs new, absolute "
                                                "and % change, per forecast year. OLD and NEW are model files or published "
                                                "versions: TICKER@N, TICKER@latest, TICKER@previous.",
                                    epilog="examples: python -m addin revisions 1810.HK@previous 1810.HK@latest\n"
                                           "          python -m addin revisions 1810.HK@latest out/MODEL.xlsm",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    revisions.add_argument("old", help="the earlier estimates: a model .xlsm or TICKER@N")
    revisions.add_argument("new", help="the later estimates: a model .xlsm or TICKER@N")
    revisions.add_argument("--db", help=db_help + " (without a model file: estimates.sqlite in this folder)")
    revisions.set_defaults(handler=_revisions)

    roll = commands.add_parser("roll", help="results day: turn the first forecast year into a reported one and add a year",
                               description="Write a new model one year on: the first forecast year becomes reported with "
                                           "the figures of an actuals file, one forecast year is added (its drivers carried "
                                           "from the last forecast year, marked for review), every other driver stays on "
                                           "its year, the analyst's inputs and numbers typed over formulas are carried, and "
                                           "a 盈利预测调整 sheet compares old and new estimates.",
                               epilog="example: python -m addin roll out/MODEL.xlsm --actuals fy2025.toml -o out/MODEL_2026.xlsm")
    roll.add_argument("model", help="the model .xlsm to roll (it is not changed)")
    roll.add_argument("--actuals", required=True, help="the reported year's statements: TOML with [company] ticker and "
                                                       "[actual.\"YEAR\"] holding every reported line")
    roll.add_argument("-o", "--output", required=True, help="the rolled model .xlsm to write")
    roll.add_argument("--accept-unbalanced", action="store_true",
                      help="take a reported balance sheet that does not balance, recording the finding in the model")
    roll.set_defaults(handler=_roll)

    bench = commands.add_parser("bench", help="measure UDF calls, the engine, build, refresh and batch refresh",
                                description="Benchmark on the embedded sample model: medians and spreads over repeated runs, "
                                            "references measured in the same run.",
                                epilog="example: python -m addin bench --json out/bench.json")
    bench.add_argument("--quick", action="store_true", help="fewer repeats and a batch of 8 files (a smoke run)")
    bench.add_argument("--json", default="out/bench.json", help="where to write the figures as JSON (default out/bench.json)")
    bench.set_defaults(handler=_bench)

    imp = commands.add_parser("import", help="turn a broker note's text into layout, company, report files and a model",
                              description="Reads a broker note converted to text (tab-separated tables, or Markdown with "
                                          "HTML tables), writes NAME.report.toml, NAME.toml (and NAME.layout.toml for a "
                                          "layout the project does not know), calibrates and builds NAME.xlsm.",
                              epilog="example: python -m addin import note.txt -o models/")
    imp.add_argument("note", help="the note as text")
    imp.add_argument("-o", "--output", required=True, help="folder to write into")
    imp.add_argument("--name", help="file name stem (default: ticker and date)")
    imp.set_defaults(handler=_import)

    lite = commands.add_parser("lite", help="write main.py and requirements.txt: the ER_ functions in xlwings Lite",
                               description="Write the xlwings Lite edition of the functions: a self-contained main.py (the "
                                           "pure core embedded, one function per ER_ function, with argument help) and its "
                                           "requirements.txt, to paste into the xlwings Lite editor (Excel on Windows, Mac "
                                           "and the web, no local Python).",
                               epilog="example: python -m addin lite -o out/lite")
    lite.add_argument("-o", "--output", required=True, help="folder to write main.py and requirements.txt into")
    lite.add_argument("--force", action="store_true", help="overwrite main.py / requirements.txt if they exist")
    lite.set_defaults(handler=_lite)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Everything it prints goes through the terminal sanitiser; a reader that
    closes the pipe early (`show | head`) ends the command quietly."""
    from .terminal import SanitisedStream

    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SanitisedStream(stdout), SanitisedStream(stderr)
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout(stdout)
        return EXIT_OK
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _silence_stdout(stdout) -> None:
    """The reader went away: further writes (and the interpreter's final flush) go nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        raise
    except ModelError as exc:  # UserError and every file, data, quote and template error alike
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILED
