"""`python -m addin COMMAND`. Before anything is imported, check that this Python has the packages
the commands need: a Python outside the project's environment then gets one line saying how to run
the commands, not a ModuleNotFoundError traceback from deep inside one of them."""
from __future__ import annotations

import importlib.util
import sys

# Import names of the runtime dependencies in pyproject.toml (test_cli checks the two agree).
REQUIRED = ("xlwings", "xlsxwriter", "openpyxl", "pandas", "sqlalchemy", "alembic", "tomli_w", "numpy", "scipy")
MIN_PYTHON = (3, 11)


def missing_packages() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def environment_problem() -> str | None:
    """One line saying why this Python cannot run the commands and what to do, or None."""
    fix = ("run the commands from the project's environment: `source .venv/bin/activate` then `er-model COMMAND`, or "
           "`.venv/bin/er-model COMMAND` (after `make run`; on Windows, `pip install -e .` in the project folder)")
    if sys.version_info < MIN_PYTHON:
        return f"this is Python {sys.version.split()[0]}; the model needs Python 3.11 or newer: {fix}"
    missing = missing_packages()
    if missing:
        return f"this Python ({sys.executable}) lacks the project's packages ({', '.join(missing)}): {fix}"
    return None


if __name__ == "__main__":
    problem = environment_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from .cli import main

    sys.exit(main())
