"""The model's one error hierarchy: every error a user can cause and fix is a `ModelError`.

The command line catches `ModelError` once and prints its message as the one line the user sees;
anything else is a bug and keeps its traceback. The subclasses live beside the code that raises
them (`WorkbookError` in workbook/xlsx.py, `CompanyDataError` in workbook/company.py, ...); they
derive from the category classes below so a caller can catch a whole kind of problem.

Each category is also a `ValueError`, as every one of these errors was before the hierarchy
existed, so code that already catches `ValueError` around them keeps working.
"""
from __future__ import annotations


class ModelError(Exception):
    """A problem with the user's files, data or request; its message is one readable line."""


class FileError(ModelError, ValueError):
    """A workbook or other file that cannot be read or written as the model needs it."""


class DataError(ModelError, ValueError):
    """Data the model reads (company files, layouts, notes, formulas) that cannot be used."""


class QuoteSourceError(ModelError, ValueError):
    """A market quote that cannot be had or trusted."""


class TemplateError(ModelError, ValueError):
    """A template or the model's own generated artefacts that cannot be produced as asked."""


class InputError(DataError):
    """An argument that has no answer: an unknown rating scheme, segment method or scenario.

    Raised on purpose by the plain functions, so a Python caller reads the message; a worksheet
    function's guard shows it as #VALUE!. With `registry.Reject` (an argument Excel passed that
    the function cannot take) and undefined maths, it is an outcome the guard expects; a
    ValueError that Python itself raises is a bug, and in strict mode it fails the test that
    reaches it."""
