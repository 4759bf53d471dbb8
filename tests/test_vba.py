"""The VBA project read back by an independent reader (oletools' olevba) and the contract
between the workbook's formulas, the VBA wrappers and the Python functions."""
from __future__ import annotations

import inspect
import re
import zipfile
from pathlib import Path

import olefile
import pytest
import xlwings
from hypothesis import given, settings
from hypothesis import strategies as st
from oletools.olevba import VBA_Parser, decompress_stream

import udfs
from workbook import vbaproject
from workbook.vba_modules import REFRESH_MACRO, SOURCE_DIR, XLWINGS_DIR, crlf, project_modules, strip_class_header, xlwings_dll_version
from conftest import ROOT, examples

TEMPLATE = ROOT / "workbook" / "xiaomi_1810hk_model.xlsm"


@pytest.fixture(scope="module")
def vba_bin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vba") / "vbaProject.bin"
    with zipfile.ZipFile(TEMPLATE) as book:
        path.write_bytes(book.read("xl/vbaProject.bin"))
    return path


@pytest.fixture(scope="module")
def extracted(vba_bin) -> dict:
    parser = VBA_Parser(str(vba_bin))
    modules = {stream.split("/")[-1]: code for _, stream, _, code in parser.extract_macros()}
    parser.close()
    return modules


@pytest.fixture(scope="module")
def codenames():
    with zipfile.ZipFile(TEMPLATE) as book:
        sheets = [n for n in book.namelist() if re.match(r"xl/worksheets/sheet\d+\.xml$", n)]
        return [re.search(r'codeName="([^"]+)"', book.read(n).decode()).group(1) for n in sorted(sheets, key=lambda n: int(re.findall(r"\d+", n)[0]))]


def test_every_module_reads_back_byte_for_byte(extracted, codenames):
    expected = {m.name: m.code for m in project_modules(codenames)}
    assert set(extracted) == set(expected)
    for name, code in expected.items():
        assert extracted[name] == code, name


def test_modules_come_from_their_sources(extracted):
    assert extracted["ER_Refresh"] == crlf((SOURCE_DIR / "ER_Refresh.bas").read_text(encoding="cp1252"))
    assert extracted["ThisWorkbook"] == crlf((SOURCE_DIR / "ThisWorkbook.cls").read_text(encoding="cp1252"))
    assert extracted["xlwings"] == crlf((XLWINGS_DIR / "xlwings.bas").read_text(encoding="cp1252"))
    assert extracted["Dictionary"] == strip_class_header((XLWINGS_DIR / "addin" / "Dictionary.cls").read_text(encoding="cp1252"))


def _wrappers(code: str) -> dict[str, list[str]]:
    found = {}
    for name, args in re.findall(r"^Function (\w+)\(([^)]*)\)", code, flags=re.M):
        found[name] = [a.replace("Optional ", "").strip() for a in args.split(",") if a.strip()]
    return found


def _formula_calls(book: Path) -> list[tuple[str, int]]:
    """(function, number of arguments) of every ER_ call in the template's formulas, nested
    calls included, counting only the commas at the call's own depth."""
    calls = []
    with zipfile.ZipFile(book) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                for formula in re.findall(r"<f>(.*?)</f>", z.read(name).decode("utf-8")):
                    for match in re.finditer(r"\b(ER_[A-Z_]+)\(", formula):
                        depth, count, i, quoted = 1, 0, match.end(), False
                        empty = formula[i:i + 1] == ")"
                        while depth and i < len(formula):
                            ch = formula[i]
                            if ch == '"':
                                quoted = not quoted
                            elif not quoted and ch == "(":
                                depth += 1
                            elif not quoted and ch == ")":
                                depth -= 1
                            elif not quoted and ch == "," and depth == 1:
                                count += 1
                            i += 1
                        calls.append((match.group(1), 0 if empty else count + 1))
    return calls


def test_formulas_wrappers_and_python_agree(extracted):
    wrappers = _wrappers(extracted["xlwings_udfs"])
    python = udfs.excel_functions()
    assert set(wrappers) == set(python)
    for name, function in python.items():
        params = list(inspect.signature(function).parameters.values())
        assert wrappers[name] == [p.name for p in params], name  # same order the VBA passes them
        assert f'XLPy.CallUDF("udfs.xl", "{name}", Array({", ".join(p.name for p in params)})' in extracted["xlwings_udfs"]
    calls = _formula_calls(TEMPLATE)
    assert len(calls) > 200
    for name, count in calls:
        params = list(inspect.signature(python[name]).parameters.values())
        required = [p for p in params if p.default is inspect.Parameter.empty]
        assert len(required) <= count <= len(params), (name, count)


def test_every_function_registered_once_under_a_unique_name():
    from udfs import xl
    from udfs.functions import all_functions
    names = [f.excel_name for f in all_functions()]
    assert len(names) == len(set(names)) and all(n.startswith("ER_") for n in names)
    assert sorted(udfs.excel_functions()) == sorted(names)
    for name in names:
        assert getattr(xl, name) is udfs.excel_functions()[name] and getattr(xl, name).__name__ == name


def test_button_runs_a_sub_that_exists(extracted):
    with zipfile.ZipFile(TEMPLATE) as z:
        vml = "".join(z.read(n).decode() for n in z.namelist() if n.endswith(".vml"))
    assert re.findall(r"<x:FmlaMacro>\[0\]!(\w+)</x:FmlaMacro>", vml) == [REFRESH_MACRO]
    assert any(re.search(rf"^Sub {REFRESH_MACRO}\(\)", code, flags=re.M) for code in extracted.values())
    assert 'RunPython "import addin.refresh; addin.refresh.main()"' in extracted["ER_Refresh"]
    import addin.refresh
    assert callable(addin.refresh.main)


def test_workbook_open_registers_function_help(extracted):
    assert re.search(r"^Private Sub Workbook_Open\(\)\r\n    RegisterFunctionHelp", extracted["ThisWorkbook"], flags=re.M)
    help_code = extracted["ER_FunctionHelp"]
    for name in udfs.excel_functions():
        assert f'Macro:=book & "{name}"' in help_code


def test_standalone_dll_version_is_the_installed_xlwings(extracted):
    from workbook.vba_modules import Module, STANDARD
    assert xlwings_dll_version(Module("xlwings", STANDARD, extracted["xlwings"])) == xlwings.__version__
    pinned = re.search(r'"xlwings==([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert xlwings.__version__ == pinned


def test_project_is_source_only_and_well_formed(vba_bin):
    ole = olefile.OleFileIO(str(vba_bin))
    assert ole.openstream("VBA/_VBA_PROJECT").read() == bytes([0xCC, 0x61, 0xFF, 0xFF, 0x00, 0x00, 0x00])
    project = ole.openstream("PROJECT").read().decode("cp1252")
    for key in ("CMG", "DPB", "GC"):
        assert re.search(rf'^{key}="[0-9A-F]+"', project, flags=re.M)
    assert vbaproject.decrypt(re.search(r'GC="([0-9A-F]+)"', project).group(1)) == b"\xff"  # visible
    assert vbaproject.decrypt(re.search(r'DPB="([0-9A-F]+)"', project).group(1)) == b"\x00"  # no password
    dir_stream = bytes(decompress_stream(bytearray(ole.openstream("VBA/dir").read())))
    assert dir_stream.endswith(b"\x10\x00\x00\x00\x00\x00")
    _assert_red_black(ole)
    ole.close()


def _assert_red_black(ole):
    """MS-CFB 2.6.4: each storage's children form a red-black tree in the specified order."""
    entries = ole.direntries

    def walk(sid, lo=None):
        if sid == olefile.NOSTREAM:
            return 1
        node = entries[sid]
        key = (len(node.name), node.name.upper())
        if lo is not None:
            assert key > lo
        left = walk(node.sid_left, lo)
        right = walk(node.sid_right, key)
        for child in (node.sid_left, node.sid_right):
            if child != olefile.NOSTREAM and node.color == 0:
                assert entries[child].color == 1, "red node with a red child"
        assert left == right, "unequal black heights"
        return left + (node.color == 1)

    for entry in entries:
        if entry is not None and entry.sid_child != olefile.NOSTREAM:
            walk(entry.sid_child)


def test_decrypts_a_real_project_from_xlwings():
    """Our decryption reads the CMG/DPB/GC that Excel wrote into xlwings' own template."""
    with zipfile.ZipFile(XLWINGS_DIR / "quickstart_standalone.xlsm") as z:
        project = olefile.OleFileIO(z.read("xl/vbaProject.bin")).openstream("PROJECT").read().decode("cp1252")
    values = dict(re.findall(r'^(CMG|DPB|GC)="([0-9A-F]+)"', project, flags=re.M))
    assert vbaproject.decrypt(values["CMG"]) == bytes(4)
    assert vbaproject.decrypt(values["DPB"]) == b"\x00"
    assert vbaproject.decrypt(values["GC"]) == b"\xff"


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=20_000) | st.text(alphabet="Dim x As Long\r\n'()=+-", max_size=20_000).map(str.encode))
def test_compression_round_trips_through_olevba(data):
    packed = vbaproject.compress(data)
    assert bytes(decompress_stream(bytearray(packed))) == data
    assert vbaproject.decompress(packed) == data


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(0, 255), st.binary(min_size=1, max_size=40))
def test_encryption_round_trips(seed, data):
    assert vbaproject.decrypt(vbaproject.encrypt("{5CF9CDAB-B77B-4FE4-BD7E-D29900070E1B}", data, seed)) == data
