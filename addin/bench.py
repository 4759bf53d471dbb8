"""`python -m addin bench`: what the add-in costs, measured on the embedded sample model.

Every figure is the median of repeated runs with its spread (min-max); each comparison's
reference is measured in the same run, so the ratio holds on a noisy machine. Prints a table
and writes JSON. Usable from a script: `run(quick=False) -> dict`.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbook.files import check_output, write_output

TARGETS = {"engine_ms": 5.0, "udf_us_max": 20.0, "refresh_s": 0.5, "refresh_vs_formulas": 5.0, "batch_100_s": 30.0,
           "refresh_peak_mb": 150.0, "grid_7x7_ms": 100.0, "import_s": 5.0}
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seed"
NOTES = Path(__file__).resolve().parents[2] / "shared" / "notes"     # the import's development corpus


def sample_args() -> dict:
    """Each registered function's sample call, from its registration (udfs/registry.py)."""
    from udfs.functions import all_functions
    return {f.excel_name: f.sample for f in all_functions()}


def _stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _per_call_us(fn, args, calls: int, repeat: int) -> list[float]:
    def loop():
        for _ in range(calls):
            fn(*args)
    return [t / calls * 1e6 for t in _time(loop, repeat)]


def _quotes(folder: Path) -> Path:
    """Today's quote for the sample company: its own price and FX moved by 2%."""
    from workbook.company import load
    company = load()
    price, fx_rate = company.scalar_inputs["price"] * 1.02, company.scalar_inputs["fx_rate"] * 1.005
    path = folder / "quotes.csv"
    path.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                    f"{company.facts['ticker']},{price:.2f},{company.facts['quote_currency']},{dt.date.today()},"
                    f"{fx_rate:.4f},,bench\n", encoding="utf-8")
    return path


def run(quick: bool = False, out: Path | None = None, force: bool = False) -> dict:
    """Every figure; with `out`, also written there as JSON (an existing file only with `force`,
    refused before anything is measured)."""
    import udfs
    from workbook.build import build
    from workbook.company import load
    from workbook.model import build_model
    from workbook.xlcalc import Evaluator
    from workbook import xlsx

    from .refresh import refresh_file, refresh_many

    if out:
        check_output(out, force)
    repeat = 3 if quick else 7
    results: dict = {"quick": quick, "python": sys.version.split()[0], "when": dt.datetime.now().isoformat(timespec="seconds")}
    functions = udfs.excel_functions()

    # UDF calls, against a bare Python call of the same arity.
    def reference(*args):
        return args
    calls = 500 if quick else 5000
    ref = _per_call_us(reference, (1.0, 2.0), calls, repeat)
    results["reference_call_us"] = _stats(ref)
    udf = {}
    samples_by_name = sample_args()
    for name, fn in sorted(functions.items()):
        samples = _per_call_us(fn, samples_by_name[name], calls, repeat)
        udf[name] = {**_stats(samples), "vs_reference": statistics.median(samples) / statistics.median(ref)}
    results["udf_us"] = udf
    # The per-call target is for one cell's answer; an array function answers a whole grid
    # (ER_DCF_GRID: 49 valuations) and is measured as a grid below.
    arrays = {name for name in udf if isinstance(functions[name](*samples_by_name[name]), list)}
    results["array_functions"] = sorted(arrays)
    results["udf_us_max"] = max(v["median"] for n, v in udf.items() if n not in arrays)

    # Engine and build.
    company = load()
    build_model(company)
    results["engine_ms"] = _stats([t * 1000 for t in _time(lambda: build_model(company), repeat * 3)])
    work = Path(tempfile.mkdtemp(prefix="er-bench-"))
    try:
        template = work / "model.xlsm"
        results["build_s"] = _stats(_time(lambda: build(template, company), repeat))

        # UDF calls in one full recalculation of the template.
        package = xlsx.read(template)
        counter = Evaluator(package)
        count = {"n": 0}
        for name, fn in list(counter.functions.items()):
            def counted(*a, _fn=fn):
                count["n"] += 1
                return _fn(*a)
            counter.functions[name] = counted
        counter.run()
        results["udf_calls_per_recalc"] = count["n"]
        results["formula_cells"] = sum(1 for s in package.sheets.values() for c in s.cells.values() if c.formula)

        # Headless refresh, against formulas and LibreOffice on the same file.
        quotes = _quotes(work)

        def timed_refresh(source: Path) -> float:
            """One headless refresh of a fresh copy of `source`, timed without the copy."""
            target = work / "r.xlsm"
            shutil.copy(source, target)
            start = time.perf_counter()
            refresh_file(target, str(quotes), max_age_days=30)
            return time.perf_counter() - start
        refresh_s = [timed_refresh(template) for _ in range(repeat)]
        results["refresh_s"] = _stats(refresh_s)

        def formulas_eval():
            os.environ.setdefault("TQDM_DISABLE", "1")  # formulas draws progress bars into the table otherwise
            import formulas
            # formulas keeps one function table per process: bind ours for this run only, so a
            # caller in the same process (a test, a notebook) finds the table as it was.
            functions_table = formulas.get_functions()
            before = dict(functions_table)
            try:
                functions_table.update(functions)
                formulas.ExcelModel().loads(str(template)).finish().calculate()
            finally:
                functions_table.clear()
                functions_table.update(before)
        results["formulas_s"] = _stats(_time(formulas_eval, 1 if quick else 3))
        results["refresh_vs_formulas"] = results["formulas_s"]["median"] / results["refresh_s"]["median"]
        soffice = shutil.which("soffice")
        if soffice:
            def convert():
                subprocess.run([soffice, f"-env:UserInstallation=file://{work}/lo", "--headless", "--convert-to", "xlsx",
                                "--outdir", str(work / "lo-out"), str(template)], check=True, capture_output=True, timeout=300)
            convert()  # first start creates the profile
            results["libreoffice_s"] = _stats(_time(convert, 1 if quick else 3))
            results["refresh_vs_libreoffice"] = results["libreoffice_s"]["median"] / results["refresh_s"]["median"]

        # The floor of a refresh: reading and writing the same package with nothing evaluated.
        def io_floor():
            target = work / "floor.xlsm"
            start = time.perf_counter()
            package = xlsx.read(template)
            xlsx.write(package, {}, target)
            return time.perf_counter() - start
        results["io_floor_s"] = _stats([io_floor() for _ in range(repeat)])
        results["refresh_vs_floor"] = results["refresh_s"]["median"] / results["io_floor_s"]["median"]

        # A file another program wrote: the template as LibreOffice re-saves it, refreshed.
        if soffice:
            resaved_dir = work / "resaved"
            subprocess.run([soffice, f"-env:UserInstallation=file://{work}/lo", "--headless", "--convert-to",
                            "xlsm:Calc MS Excel 2007 VBA XML", "--outdir", str(resaved_dir), str(template)],
                           check=True, capture_output=True, timeout=300)
            resaved = resaved_dir / template.name
            results["refresh_foreign_s"] = _stats([timed_refresh(resaved) for _ in range(repeat)])

        # Sensitivity grids: the closed-form 7x7 DCF grid as one call, and EPS by two drivers with
        # the whole model re-run per point (5x5).
        from workbook.model import default_sensitivity, driver_sensitivity
        dcf_grid = functions["ER_DCF_GRID"]
        fcff = [[40000.0, 46000.0, 52000.0]]
        axis = [[0.07 + 0.005 * i] for i in range(7)]
        growth = [[0.01 + 0.005 * j for j in range(7)]]
        results["grid_7x7_ms"] = _stats([t * 1000 for t in _time(
            lambda: dcf_grid(fcff, axis, growth, False, 75000.0, 400.0, 26045.0, 0.9049), repeat * 3)])
        axes = default_sensitivity(company)
        if axes:
            a, xs, b, ys = axes
            year = company.forecast_years[0].label
            results["driver_grid_5x5_ms"] = _stats([t * 1000 for t in _time(
                lambda: driver_sensitivity(company, a, xs, b, ys, "val_eps", year), repeat)])

        # A broker note to data files and a model, per note (the seeds and the import's corpus),
        # each run into a folder of its own.
        from workbook.importer import import_note
        notes = (sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []) + \
            (sorted(p for p in NOTES.glob("*.md") if p.name != "README.md") if NOTES.is_dir() and not quick else [])
        if notes:
            imports = work / "imports"
            imports.mkdir()
            per_note = []
            for note in notes:
                per_note.append(max(_time(lambda: import_note(note, Path(tempfile.mkdtemp(dir=imports))), 1 if quick else 2)))
            results["import_s"] = {"median": statistics.median(per_note), "min": min(per_note), "max": max(per_note),
                                   "runs": len(per_note)}

        # Batch refresh of a folder on both cores.
        copies = 8 if quick else 100
        folder = work / "batch"
        folder.mkdir()
        for i in range(copies):
            shutil.copy(template, folder / f"m{i:03d}.xlsm")
        files = sorted(folder.glob("*.xlsm"))
        start = time.perf_counter()
        outcomes = refresh_many(files, str(quotes), max_age_days=30, workers=2)
        elapsed = time.perf_counter() - start
        failed = [o for o in outcomes if o.error]
        if failed:
            raise RuntimeError(f"batch refresh failed: {failed[0].error}")
        results["batch_files"] = copies
        results["batch_s"] = elapsed
        results["batch_100_s"] = elapsed * 100 / copies

        # Peak memory of one refresh, in a fresh process.
        target = work / "mem.xlsm"
        shutil.copy(template, target)
        # VmHWM is the peak of this process image; ru_maxrss would include the forked parent's pages.
        script = ("import re, resource, sys; from addin.refresh import refresh_file; "
                  "refresh_file(sys.argv[1], sys.argv[2], max_age_days=30); "
                  "status = open('/proc/self/status').read() if sys.platform.startswith('linux') else ''; "
                  "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', status); "
                  "print(hwm.group(1) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        out_kb = subprocess.run([sys.executable, "-c", script, str(target), str(quotes)], check=True, capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        results["refresh_peak_mb"] = int(out_kb) / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["targets"] = {k: {"target": v, "met": _met(k, results)} for k, v in TARGETS.items()}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_output(out, json.dumps(results, indent=2, ensure_ascii=False), force=force)
    return results


def _value(key: str, results: dict) -> float:
    value = results[key]
    return value["median"] if isinstance(value, dict) else value


def _met(key: str, results: dict) -> bool:
    if key == "import_s":
        return key not in results or results[key]["max"] <= TARGETS[key]
    if key not in results:
        return True  # a figure this machine cannot measure (no LibreOffice): nothing to miss
    value = _value(key, results)
    return value >= TARGETS[key] if key == "refresh_vs_formulas" else value <= TARGETS[key]


def render(r: dict) -> str:
    def spread(s, scale=1.0, unit="", places=2):
        return f"{s['median'] * scale:.{places}f}{unit} [{s['min'] * scale:.{places}f}–{s['max'] * scale:.{places}f}]"

    udf = r["udf_us"]
    slowest = max((n for n in udf if n not in r.get("array_functions", ())), key=lambda n: udf[n]["median"])
    rows = [
        ("UDF call, per call (slowest: " + slowest + ")", spread(udf[slowest], unit=" µs"), f"< {TARGETS['udf_us_max']:g} µs",
         f"{udf[slowest]['vs_reference']:.1f}x a bare Python call"),
        ("UDF call, per call (median over functions)", f"{statistics.median(v['median'] for v in udf.values()):.2f} µs", "", ""),
        ("Reference: bare Python call", spread(r["reference_call_us"], unit=" µs", places=3), "", ""),
        ("UDF calls in one full recalculation", f"{r['udf_calls_per_recalc']} ({r['formula_cells']} formula cells)", "", ""),
        ("Engine: whole model", spread(r["engine_ms"], unit=" ms"), f"< {TARGETS['engine_ms']:g} ms", ""),
        ("Template build", spread(r["build_s"], unit=" s", places=3), "", ""),
        ("Headless refresh, one file", spread(r["refresh_s"], unit=" s", places=3), f"< {TARGETS['refresh_s']:g} s", ""),
        ("  formulas re-evaluation, same file", spread(r["formulas_s"], unit=" s", places=3), "",
         f"refresh {r['refresh_vs_formulas']:.1f}x faster (target >= {TARGETS['refresh_vs_formulas']:g}x)"),
    ]
    if "libreoffice_s" in r:
        rows.append(("  LibreOffice headless conversion", spread(r["libreoffice_s"], unit=" s", places=3), "",
                     f"refresh {r['refresh_vs_libreoffice']:.1f}x faster"))
    rows.append(("  I/O floor: read and write the package", spread(r["io_floor_s"], unit=" s", places=3), "",
                 f"refresh {r['refresh_vs_floor']:.1f}x the floor"))
    if "refresh_foreign_s" in r:
        rows.append(("  refresh of the LibreOffice re-save", spread(r["refresh_foreign_s"], unit=" s", places=3), "", ""))
    rows.append(("DCF grid 7x7, one call (ER_DCF_GRID)", spread(r["grid_7x7_ms"], unit=" ms", places=3),
                 f"< {TARGETS['grid_7x7_ms']:g} ms", ""))
    if "driver_grid_5x5_ms" in r:
        rows.append(("EPS by two drivers 5x5, model re-run per point", spread(r["driver_grid_5x5_ms"], unit=" ms", places=1),
                     "", ""))
    if "import_s" in r:
        rows.append((f"Import of a note, slowest of {r['import_s']['runs']}", f"{r['import_s']['max']:.2f} s",
                     f"< {TARGETS['import_s']:g} s", "text to data files, calibration and model"))
    rows += [
        (f"Batch refresh, {r['batch_files']} files, 2 workers", f"{r['batch_s']:.2f} s (= {r['batch_100_s']:.1f} s per 100)",
         f"< {TARGETS['batch_100_s']:g} s per 100", ""),
        ("Peak memory, one refresh process", f"{r['refresh_peak_mb']:.0f} MB", f"< {TARGETS['refresh_peak_mb']:g} MB", ""),
    ]
    width = max(len(a) for a, *_ in rows)
    lines = [f"{'figure':<{width}}  {'median [min–max]':<34} {'target':<16} note", "-" * (width + 80)]
    lines += [f"{a:<{width}}  {b:<34} {c:<16} {d}" for a, b, c, d in rows]
    met = [k for k, v in r["targets"].items() if v["met"]]
    missed = [k for k, v in r["targets"].items() if not v["met"]]
    lines.append(f"targets met: {', '.join(met) or 'none'}" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return "\n".join(lines)
