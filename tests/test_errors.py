"""One error hierarchy: every error a user can cause is a ModelError, and the command line turns
any ModelError into one line and a non-zero exit."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from addin import cli
from udfs.errors import ModelError

# Exceptions used as signals inside one module and never let out of it, each caught where raised.
INTERNAL_SIGNALS = {
    "udfs.registry.Reject",          # the guard turns it into the Excel error value it carries
    "addin.native.NotExpressible",   # native export falls back to the UDF for that formula
}


def _public_error_classes():
    found = []
    for package in ("udfs", "workbook", "addin"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__") or ".migrations" in info.name:
                continue  # running them is their import; alembic scripts need alembic's context
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, BaseException)
                        and value.__module__ == module.__name__ and not name.startswith("_")):
                    found.append(value)
    return found


def test_every_public_error_class_is_a_model_error():
    classes = _public_error_classes()
    names = {f"{c.__module__}.{c.__name__}" for c in classes}
    # The classes the command line used to list one by one must be among those found.
    assert {"workbook.xlsx.WorkbookError", "workbook.company.CompanyDataError", "addin.quotes.QuoteError",
            "addin.source.RollError", "addin.estimates.EstimatesError", "workbook.spec.LayoutError",
            "workbook.tomlfile.TomlError", "workbook.importer.ImportFailed", "workbook.notes.source.NoteError",
            "addin.cli.UserError"} <= names
    strays = sorted(n for c, n in zip(classes, (f"{c.__module__}.{c.__name__}" for c in classes))
                    if not issubclass(c, ModelError) and n not in INTERNAL_SIGNALS)
    assert strays == []


def test_model_errors_stay_value_errors_where_they_were():
    # Callers that caught ValueError around these before the hierarchy still catch them.
    from addin.quotes import QuoteError
    from workbook.company import CompanyDataError
    from workbook.xlsx import WorkbookError
    assert all(issubclass(c, ValueError) for c in (QuoteError, CompanyDataError, WorkbookError))


class _Arbitrary(ModelError):
    """A ModelError no handler knows by name."""


@pytest.mark.parametrize("error", [_Arbitrary("the thing: cannot be done"),
                                   cli.UserError("the thing: cannot be done")])
def test_cli_turns_any_model_error_into_one_line(monkeypatch, capsys, error):
    def handler(args):
        raise error
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _FixedHandler(parser, handler))
    assert cli._run(["show"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err == "error: the thing: cannot be done\n"


def test_cli_lets_a_bug_keep_its_traceback(monkeypatch):
    def handler(args):
        raise KeyError("a bug, not a user's mistake")
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _FixedHandler(parser, handler))
    with pytest.raises(KeyError):
        cli._run(["show"])


class _FixedHandler:
    """The real parser, with every command routed to one test handler."""
    def __init__(self, parser, handler):
        self.parser, self.handler = parser, handler

    def parse_args(self, argv):
        args = self.parser.parse_args(argv)
        args.handler = self.handler
        return args
