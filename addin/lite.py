"""The xlwings Lite edition of the functions: `python -m addin lite -o DIR`.

xlwings Lite runs Python inside Excel's add-in browser runtime (Pyodide; Windows, Mac and the
web), from a `main.py` and a `requirements.txt` pasted into its editor. This module writes both:

- `main.py` is self-contained. It carries the source of every `udfs` module the registry needs
  (found by following their imports from the modules that register functions; `udfs/xl.py`,
  the desktop layer, is never among them) and the package's data files (the rating schemes
  TOML). At import it writes them as a package into a fresh temporary folder of Pyodide's
  in-memory file system and imports it with the ordinary import system: the modules keep their
  own relative imports and `rating.py` reads its TOML beside itself, exactly as on the desktop,
  and nothing is evaluated from a string. Lite needs Pyodide 314 or newer (Python 3.14), so
  `tomllib` is in its standard library.
- One `@func` per registry entry, named as in Excel, with the registry's description as its
  docstring and an `@arg(..., doc=...)` per argument; each only calls `registry.guarded(name)`,
  the same guard the desktop layer and the headless evaluator call, so a Lite cell computes
  what a desktop cell computes.

Error values. The guard answers bad input with Excel's error text (`#VALUE!`, `#N/A`, ...).
In Lite these become real Excel errors: its return conversion turns a result string equal to
one of the seven error texts into the matching error (Office custom functions runtime 1.4+),
so `ISERROR` and `IFERROR` see them; labels such as `NM` and 无评级 stay text. In the other
direction every argument is declared with `err_to_str=True`, so an error cell arrives as its
text and the guard passes that same error on (without it Lite would pass None, which the guard
would read as an empty cell). The desktop UDF server, by contrast, can only show error text.

The output is deterministic (same registry and sources, same bytes): no time stamps, modules
and data files in sorted order, a content hash in the header to tell editions apart.
"""
from __future__ import annotations

import ast
import hashlib
import keyword
import sys
from pathlib import Path

from udfs import registry
from udfs.errors import TemplateError
from udfs.functions import all_functions
from udfs.registry import SERIES, ExcelFunction
from workbook.files import OutputError, check_output, write_output

CORE_PACKAGE = "udfs"
# The name the bundled core is imported under inside Lite: a workbook may hold other Python
# files, and a generic name such as `udfs` could be one of them.
BUNDLE_PACKAGE = "equity_research_udfs"
# The xlwings whose Lite decorators and conversions (err_to_str on arguments, error strings to
# Excel errors on return) the wrappers were written against; Lite installs it from PyPI.
LITE_REQUIREMENT = "xlwings>=0.37.8,<1.0"
OUTPUT_FILES = ("main.py", "requirements.txt")
_CORE_DIR = Path(registry.__file__).resolve().parent
_DATA_SUFFIXES = (".toml",)  # the package data pyproject ships with udfs
_EXTERNAL_ALLOWED = set(sys.stdlib_module_names)


class LiteError(TemplateError):
    """The Lite edition cannot be written; the message is the one line the user sees."""


# ------------------------------------------------------------------------------------------------
# The bundle: which core modules and data files main.py must carry.
# ------------------------------------------------------------------------------------------------
def _module_imports(tree: ast.Module):
    """Imports executed when the module is imported (module level, including `try` bodies and
    `if` blocks). A fallback in an `except` handler (`import tomli` for Python 3.10) is skipped:
    it never runs where the preferred import succeeds, as it does in Lite's Python 3.14."""
    def walk(statements):
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            elif isinstance(node, ast.Try):
                yield from walk(node.body)
                yield from walk(node.orelse)
                yield from walk(node.finalbody)
            elif isinstance(node, ast.If):
                yield from walk(node.body)
                yield from walk(node.orelse)
    yield from walk(tree.body)


def _core_dependencies(module: str, tree: ast.Module) -> set[str]:
    """The core modules (names inside the package, e.g. 'constants') that `module` imports;
    LiteError for an import Lite could not satisfy from the standard library."""
    found = set()
    for node in _module_imports(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.level != 1:
                raise LiteError(f"{CORE_PACKAGE}/{module}.py: relative import beyond the package cannot be bundled")
            found.update([node.module] if node.module else [alias.name for alias in node.names])
            continue
        names = [node.module] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        for name in names:
            top, _, rest = name.partition(".")
            if top == CORE_PACKAGE:
                if rest:
                    found.add(rest.partition(".")[0])
                elif isinstance(node, ast.ImportFrom):
                    found.update(alias.name for alias in node.names)
            elif top not in _EXTERNAL_ALLOWED and top != "__future__":
                raise LiteError(f"{CORE_PACKAGE}/{module}.py imports {name}, which xlwings Lite does not have; "
                                "the pure core must need only the standard library")
    return {name for name in found if (_CORE_DIR / f"{name}.py").is_file()}


def core_modules(functions: list[ExcelFunction] | None = None) -> list[str]:
    """The core modules main.py must carry for `functions` (default: the whole registry): the
    modules that register them and everything they import, sorted."""
    functions = all_functions() if functions is None else functions
    roots = {"registry"}
    for spec in functions:
        package, _, name = spec.impl.__module__.partition(".")
        if package != CORE_PACKAGE or "." in name:
            raise LiteError(f"{spec.excel_name} is implemented in {spec.impl.__module__}, outside the {CORE_PACKAGE} "
                            "package; only the pure core can be bundled for xlwings Lite")
        roots.add(name)
    seen: set[str] = set()
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _CORE_DIR / f"{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        pending.extend(sorted(_core_dependencies(name, tree) - seen))
    return sorted(seen)


def core_files(functions: list[ExcelFunction] | None = None) -> dict[str, str]:
    """File name inside the package → text, for every module and data file main.py carries."""
    files = {f"{name}.py": (_CORE_DIR / f"{name}.py").read_text(encoding="utf-8") for name in core_modules(functions)}
    for path in sorted(_CORE_DIR.iterdir()):
        if path.suffix in _DATA_SUFFIXES and path.is_file():
            files[path.name] = path.read_text(encoding="utf-8")
    return dict(sorted(files.items()))


# ------------------------------------------------------------------------------------------------
# Rendering main.py and requirements.txt.
# ------------------------------------------------------------------------------------------------
def _literal(text: str, indent: str) -> str:
    """`text` as a Python expression, one source line per line of text so the analyst can read
    the embedded modules in Lite's editor; repr() makes every line a correct literal."""
    lines = text.splitlines(keepends=True) or [""]
    return "(\n" + "".join(f"{indent}    {line!r}\n" for line in lines) + f"{indent})"


def _identifier(name: str, what: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise LiteError(f"{what} {name!r} is not a valid Python name; it cannot become an xlwings Lite function")
    return name


def _wrapper(spec: ExcelFunction) -> str:
    name = _identifier(spec.excel_name, "Excel function name")
    params, lines = [], ["@func"]
    for arg in spec.args:
        _identifier(arg.name, f"{spec.excel_name} argument")
        params.append(f"{arg.name}=None" if arg.optional else arg.name)
        # err_to_str: an error cell arrives as its text, so the guard passes that error on.
        # ndim=2: a row, a column or one cell all arrive as a list of rows, as on the desktop.
        options = ", ndim=2" if arg.kind == SERIES else ""
        lines.append(f"@arg({arg.name!r}, doc={arg.help!r}, err_to_str=True{options})")
    names = ", ".join(arg.name for arg in spec.args)
    lines += [f"def {name}({', '.join(params)}):",
              f"    {spec.description!r}",
              f"    return guarded({name!r})({names})",
              ""]
    return "\n".join(lines)


_HEADER = '''\
"""Equity-research functions (ER_*) for xlwings Lite: paste this file into the main.py tab of
the xlwings Lite editor and requirements.txt into its requirements.txt tab.

Generated by `python -m addin lite` from the project's pure core; do not edit by hand, generate
it again. Every function returns what the desktop template's function returns; an error text
(#VALUE!, #N/A, #DIV/0!, #NUM!) becomes a real Excel error in Lite, labels such as NM stay text.

Core modules: {modules}
Content hash: {digest}
"""
import importlib
import sys
import tempfile
from pathlib import Path

from xlwings import arg, func

_PACKAGE = {package!r}
# The pure core, file by file (module sources and the rating schemes data), as the project ships it.
_CORE_FILES = {{
'''

_LOADER = '''\
}}


def _install_core():
    """Write the core into a fresh folder of Pyodide's in-memory file system and import it with
    the ordinary import system (its relative imports and its data file then work unchanged)."""
    previous = sys.modules.get(_PACKAGE)
    if previous is not None:  # main.py runs again (edited or pasted anew): forget the old core
        sys.path[:] = [entry for entry in sys.path if entry != str(Path(previous.__file__).parent.parent)]
        for name in [m for m in sys.modules if m == _PACKAGE or m.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    root = Path(tempfile.mkdtemp(prefix="er_core_"))
    package = root / _PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text('"""The pure core, bundled for xlwings Lite."""\\n', encoding="utf-8")
    for name, text in _CORE_FILES.items():
        (package / name).write_text(text, encoding="utf-8")
    sys.path.insert(0, str(root))
    for name in {modules!r}:
        importlib.import_module(f"{{_PACKAGE}}.{{name}}")  # importing a module registers its functions
    return sys.modules[_PACKAGE]


_install_core()
_registry = sys.modules[_PACKAGE + ".registry"]
guarded = _registry.guarded
_WRAPPED = {wrapped!r}
if set(_registry.REGISTRY) != set(_WRAPPED):
    raise ImportError("the bundled core registers other functions than this file wraps: "
                      + ", ".join(sorted(set(_registry.REGISTRY) ^ set(_WRAPPED))) + "; generate main.py again")


'''


def render_main(functions: list[ExcelFunction] | None = None) -> str:
    """The text of main.py for `functions` (default: every registered function)."""
    functions = all_functions() if functions is None else functions
    if not functions:
        raise LiteError("no Excel functions are registered; nothing to write")
    files = core_files(functions)
    modules = [name[:-3] for name in files if name.endswith(".py")]
    digest = hashlib.sha256()
    for name, text in files.items():
        digest.update(name.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
    for spec in functions:
        digest.update(repr((spec.excel_name, spec.args, spec.description)).encode("utf-8"))
    body = "".join(f"    {name!r}: {_literal(text, '    ')},\n" for name, text in files.items())
    return (_HEADER.format(modules=", ".join(modules), digest=digest.hexdigest()[:16], package=BUNDLE_PACKAGE)
            + body
            + _LOADER.format(modules=modules, wrapped=[spec.excel_name for spec in functions])
            + "\n\n".join(_wrapper(spec) for spec in functions))


def render_requirements() -> str:
    return ("# xlwings Lite: the core needs only the standard library; xlwings provides @func and @arg.\n"
            f"{LITE_REQUIREMENT}\n")


# ------------------------------------------------------------------------------------------------
# Writing.
# ------------------------------------------------------------------------------------------------
def write_lite(out_dir: str | Path, force: bool = False) -> list[Path]:
    """Write DIR/main.py and DIR/requirements.txt; returns their paths. A non-empty file of those
    names is refused unless `force` (and then kept as a .bak), so is one open in an editor that
    locks it; nothing is written when anything is refused."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LiteError(f"{out_dir}: is a file; give a folder for main.py and requirements.txt")
    texts = {"main.py": render_main(), "requirements.txt": render_requirements()}
    targets = {name: out_dir / name for name in OUTPUT_FILES}
    replace = {}
    for name, path in targets.items():
        if path.is_dir():
            raise LiteError(f"{path}: is a folder; cannot write the file there")
        empty = path.is_file() and path.stat().st_size == 0  # an empty file holds nothing to lose
        replace[name] = force or empty
        try:
            check_output(path, replace[name])
        except OutputError as exc:
            raise LiteError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, path in targets.items():
        write_output(path, texts[name], force=replace[name])
    return list(targets.values())
