"""`python -m addin <command>`: thin handlers over the model, the workbook and the refresh.

A user's mistake ends in one readable line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from workbook.company import DEFAULT_COMPANY, CompanyDataError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix; its message is the one line they see."""


def _show(args) -> int:
    from .show import render
    from workbook.company import load
    from workbook.model import build_model
    from workbook.report import findings, load_report, report_path_for

    company = load(args.data)
    model = build_model(company)
    report_file = report_path_for(company)
    found = findings(company, load_report(report_file)) if report_file.is_file() else None
    print(render(model, found, english=args.english))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m addin", description="Equity-research model: Python UDFs for an Excel template.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    show = commands.add_parser("show", help="print the summary table, the three statements, the ratios, the rating and the checks",
                               description="Print the model computed from a company data file.",
                               epilog="example: python -m addin show --data workbook/data/xiaomi_1810hk.toml")
    show.add_argument("--data", default=str(DEFAULT_COMPANY), help="company data file (default: the embedded Xiaomi data)")
    show.add_argument("--english", action="store_true", help="English labels")
    show.set_defaults(handler=_show)

    build = commands.add_parser("build", help="write the macro-enabled Excel template",
                                description="Build the .xlsm template: statements, drivers, ratios, rating, checks, "
                                            "the VBA project and the Refresh button.",
                                epilog="example: python -m addin build -o out/xiaomi_model.xlsm")
    build.add_argument("-o", "--output", help="where to write the .xlsm (default: out/<company>_model.xlsm)")
    build.add_argument("--data", default=str(DEFAULT_COMPANY), help="company data file (default: the embedded Xiaomi data)")
    build.set_defaults(handler=_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, CompanyDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_OK
