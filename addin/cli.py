"""`python -m addin <command>`: thin handlers over the model, the workbook and the refresh.

The commands and their arguments are data, in commands.toml; `build_parser` turns them into
argparse and gives each command this module's handler `_<command>`.

A user's mistake ends in one readable line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from udfs.errors import ModelError
from workbook.company import DEFAULT_COMPANY
from workbook.tomlfile import read_toml

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
COMMANDS_FILE = Path(__file__).with_name("commands.toml")


class UserError(ModelError):
    """A problem the user can fix; its message is the one line they see."""


def _reading(*paths) -> None:
    """Warn (stderr, one line each) when a file this command only reads is open in Excel, WPS or
    LibreOffice: the command sees the file as last saved, not the edits on screen."""
    from workbook.files import reading_note

    for path in paths:
        note = reading_note(path) if path else None
        if note:
            print(f"warning: {note}", file=sys.stderr)


def _kept(path: Path, existed: bool) -> str:
    """", previous version kept as NAME.bak" after a forced replacement, else ""."""
    from workbook.files import backups, output_target

    if not existed:
        return ""
    kept = backups(output_target(path))
    return f" (the previous file is kept as {kept[-1].name})" if kept else ""


def _show(args) -> int:
    from .show import render
    from workbook.company import load
    from workbook.model import ScenarioError, build_model
    from workbook.report import findings, load_report, report_path_for

    _reading(args.data)
    _not_a_workbook(Path(args.data), "show --data reads a company data file (.toml, such as workbook/data/*.toml)")
    company = load(args.data)
    try:
        model = build_model(company, scenario=args.scenario)
    except ScenarioError as exc:  # any other mistake in the data is one line of its own (ModelError)
        raise UserError(f"--scenario: {exc}") from None
    report_file = report_path_for(company)
    found = findings(company, load_report(report_file)) if report_file.is_file() else None
    print(render(model, found, english=args.english))
    if args.sensitivity:
        from .show import sensitivity_table
        print("\n" + sensitivity_table(model))
    return EXIT_OK if model.balanced else EXIT_FAILED


def _build(args) -> int:
    from workbook.build import build
    from workbook.company import load
    from workbook.files import output_file

    company = load(args.data)
    output = Path(args.output) if args.output else Path("out") / f"{company.path.stem}_model.xlsm"
    if output.suffix.lower() != ".xlsm":
        raise UserError(f"{output}: the template carries macros, so its name must end in .xlsm")
    if output.is_dir():
        raise UserError(f"{output}: is a folder; give a file name ending in .xlsm")
    existed = output.exists()
    try:
        with output_file(output, args.force) as temp:
            build(temp, company)
    except PermissionError:
        raise UserError(f"{output}: cannot write there (is the file open in Excel, or the folder read-only?)") from None
    print(f"built {output.resolve()}{_kept(output, existed)}")
    return EXIT_OK


def _not_a_workbook(path: Path, what: str) -> None:
    """A spreadsheet given where a text data file belongs: say which file is meant, not "not UTF-8"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return  # the reader says what is wrong with it
    if head.startswith(b"PK\x03\x04"):
        raise UserError(f"{path}: is an Excel workbook (or another zip package), not a text data file; {what}. "
                        f"To audit a model workbook: python -m addin check {path}")


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
_count = _whole_number("models", 1, 100_000, "give 1 to 100000")
_seconds = _whole_number("seconds", 1, 600, "give 1 to 600")


def _date(text: str):
    import datetime as dt
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-27") from None


def _scenario(text: str) -> str:
    """A scenario as the scenario cell takes it: case and spaces do not matter (BULL is bull)."""
    return text.strip().lower()


# What commands.toml may name as an argument's `type` and `computed_default`.
_ARGUMENT_TYPES = {"date": _date, "days": _days, "seconds": _seconds, "workers": _workers, "count": _count,
                  "scenario": _scenario}
_COMPUTED_DEFAULTS = {"default_company": str(DEFAULT_COMPANY)}


def _refresh(args) -> int:
    from .modelfile import regular_file
    from .refresh import BatchSummary, model_files, refresh_many, worker_count

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

    workers = worker_count(args.workers, len(files))
    started = time.perf_counter()
    outcomes = refresh_many(files, args.quotes, args.as_of, args.max_age_days, workers=workers,
                            progress=progress, accept_move=args.accept_move, accept_older=args.accept_older,
                            quotes_timeout=args.quotes_timeout)
    elapsed = time.perf_counter() - started
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
    summary = BatchSummary.of(outcomes)
    for line in summary.lines():
        print(line)
    print(f"{len(outcomes)} models in {elapsed:.1f} s on {workers} worker process{'es' if workers > 1 else ''}")
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

    _reading(args.model)
    result = audit(regular_file(args.model))
    print(render(result))
    return EXIT_FAILED if result.failed else EXIT_OK


def _export(args) -> int:
    from .modelfile import regular_file
    from .share import export

    regular_file(args.model)
    _reading(args.model)
    existed = Path(args.output).exists()
    path = export(args.model, args.output, native=args.native, force=args.force)
    print(f"exported {'native-formula live edition' if args.native else 'values-only copy'} {path.resolve()}"
          f"{_kept(path, existed)}")
    return EXIT_OK


def _new(args) -> int:
    return _build(args)


def _diff(args) -> int:
    from .modelfile import regular_file
    from .share import diff, render_diff

    regular_file(args.old), regular_file(args.new)
    _reading(args.old, args.new)
    print(render_diff(diff(args.old, args.new)))
    return EXIT_OK


def _publish(args) -> int:
    from .estimates import publish, render_publish

    _reading(args.model)
    result = publish(args.model, args.db)
    if result.created and result.estimates.warning:
        print(f"warning: {result.estimates.warning} (recorded with {result.estimates.source})", file=sys.stderr)
    print(render_publish(result))
    return EXIT_OK


def _revisions(args) -> int:
    from .estimates import DROPPED, load_estimates, render_revisions, revision_table
    from .results import render_results, results_for

    _reading(*(side for side in (args.old, args.new) if Path(side).exists()))
    old, new = load_estimates(args.old, args.new, args.db)
    results = results_for(old, args.new) if Path(args.new).is_file() else None
    if results is None:
        print(render_revisions(old, new))
        return EXIT_OK
    rows, forecast_year = results  # a roll pair: the year NEW reports, against OLD's forecast of it, comes first
    print(render_results(rows, forecast_year, old.source, new.source))
    print(render_revisions(old, new, [r for r in revision_table(old, new) if not (r.year == forecast_year and r.status == DROPPED)]))
    return EXIT_OK


def _roll(args) -> int:
    from .modelfile import regular_file
    from .roll import render, roll, write_template

    regular_file(args.model)
    _reading(args.model, args.actuals)
    existed = Path(args.output).exists()
    if args.template:
        path, to_fill, given = write_template(args.model, args.output, force=args.force, actuals=args.actuals)
        filled = f", {given} filled from {args.actuals}" if args.actuals else ""
        print(f"wrote {path}: the actuals file to fill ({to_fill} lines to fill{filled}); then roll with --actuals "
              f"{path.name}" + _kept(Path(args.output), existed))
        return EXIT_OK
    if not args.actuals:
        raise UserError("roll needs --actuals FY.toml (or akshare:); --template -o FY.toml writes the file to fill")
    result = roll(args.model, args.actuals, args.output, accept_unbalanced=args.accept_unbalanced, force=args.force)
    print(render(result) + _kept(Path(args.output), existed))
    return EXIT_FAILED if result.checks_failed else EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other mistake."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def _bench(args) -> int:
    from .bench import render, run

    results = run(quick=args.quick, out=Path(args.json), universe_files=args.universe, force=args.force)
    print(render(results))
    print(f"wrote {Path(args.json).resolve()}")
    return EXIT_OK


def _import(args) -> int:
    from workbook.importer import ImportFailed, import_note
    _reading(args.note)
    try:
        result = import_note(args.note, args.output, stem=args.name, force=args.force)
    except ImportFailed as exc:
        text = str(exc)
        raise UserError(text if str(args.note) in text or Path(args.note).name in text else f"{args.note}: {text}") from None
    print(f"imported {args.note} with layout {result.layout.name}"
          + (f" (inferred: {result.layout_written})" if result.layout_written else "")
          + f": {result.shown_as_printed} printed cells shown as printed, {result.explained} explained by findings, "
          f"{result.unexplained} unexplained; model {result.model_path}; report {result.text_path}")
    missing = result.facts.get("missing", [])
    if missing:
        print(f"not printed by the note, left empty in the model: {', '.join(missing)} (see the report for what to fill)")
    if not result.balanced:
        raise UserError(f"{args.note}: the model built from the note does not balance; see {result.text_path}")
    if result.unexplained:
        raise UserError(f"{args.note}: {result.unexplained} printed cells differ from the model without an explanation; "
                        f"see {result.text_path}")
    return 0


def _calibrate(args) -> int:
    from workbook.calibrate import calibrate, to_toml, toml_value, write_drivers
    from workbook.tomlfile import read_toml

    report_path = Path(args.report)
    _reading(report_path)
    _not_a_workbook(report_path, "calibrate reads a report file (NAME.report.toml, as `import` writes it)")
    report = read_toml(report_path)
    source = report.get("source")
    if not (isinstance(source, dict) and isinstance(source.get("years"), list)):
        looks = (" (it looks like a company data file: pass that with --company, and the report file first)"
                 if isinstance(report.get("company"), dict) else "")
        raise UserError(f"{report_path}: not a report file; a report (NAME.report.toml, as `import` writes it) has a "
                        f"[source] table with the note's years{looks}")
    company_path = Path(args.company) if args.company else report_path.with_name(report_path.name.replace(".report.", "."))
    if company_path == report_path or not company_path.is_file():
        raise UserError(f"{company_path}: no such company data file; name it with --company COMPANY.toml")
    if args.write:  # the company file is the output: refused now if open elsewhere, before the fit
        from workbook.files import check_output
        check_output(company_path, force=True)
    else:
        _reading(company_path)
    implied: dict = {}  # the last reported figures the forecast implies (the last DPS)
    try:
        drivers = calibrate(report, company_path, reported=implied)
    except ModelError:
        raise
    except (KeyError, IndexError, TypeError) as exc:  # a report file edited by hand: say what it lacks
        raise UserError(f"{report_path}: the report file is damaged or incomplete ({type(exc).__name__}: {exc}); "
                        "import the note again to rewrite it") from None
    except RuntimeError as exc:  # the fit did not settle
        raise UserError(f"{report_path}: {exc}") from None
    if args.write:
        write_drivers(company_path, drivers, implied)
        figures = f" and {len(implied)} reported figures the forecast implies" if implied else ""
        print(f"wrote {len(drivers)} drivers{figures} into {company_path}{_kept(company_path, True)}")
    else:
        print(to_toml(drivers))
        for (key, year), value in sorted(implied.items()):
            print(f"# [actual.\"{year}\"] {key} = {toml_value(value)}")
    return EXIT_OK


def _lite(args) -> int:
    from .lite import write_lite

    written = write_lite(args.output, force=args.force)
    names = " and ".join(path.name for path in written)
    print(f"wrote xlwings Lite edition {written[0].parent.resolve()}: paste {names} into the xlwings Lite editor")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The parser commands.toml describes; each command runs this module's `_<command>`."""
    spec = read_toml(COMMANDS_FILE)
    parser = _Parser(prog=spec["prog"], description=spec["description"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name, command in spec["command"].items():
        formatter = argparse.RawDescriptionHelpFormatter if command.get("as_written") else argparse.HelpFormatter
        sub = commands.add_parser(name, help=command["help"], description=command["description"],
                                  epilog=command["epilog"], formatter_class=formatter)
        for argument in command.get("argument", []):
            flags, options = _argument_options(argument, spec["shared"])
            sub.add_argument(*flags, **options)
        sub.set_defaults(handler=globals()[f"_{name}"])
    return parser


def _argument_options(argument: dict, shared: dict) -> tuple[list[str], dict]:
    """An argument's flags and add_argument options: its [shared] declaration, if it names one,
    with its own fields in place of the shared ones."""
    options = {**(shared[argument["shared"]] if "shared" in argument else {}), **argument}
    options.pop("shared", None)
    flags = options.pop("flags")
    if "help_suffix" in options:
        options["help"] += options.pop("help_suffix")
    if "type" in options:
        options["type"] = _ARGUMENT_TYPES[options["type"]]
    if "computed_default" in options:
        options["default"] = _COMPUTED_DEFAULTS[options.pop("computed_default")]
    return flags, options


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
