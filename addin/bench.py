"""`python -m addin bench`: what the add-in costs, each figure against its floor or reference
measured in the same run.

- The I/O floor: reading the refreshed model's package (every member inflated and checked, the
  workbook and every sheet parsed) and writing it back with nothing evaluated. A market-only
  refresh (a refreshed model, a new quote) and a refresh after a driver change are measured
  against it, interleaved with it run by run so that a busy machine weighs on both alike.
- `formulas` and LibreOffice recalculating the same file, against the market-only refresh.
- The engine (the whole model in Python, in CPU time: see `run`), an import per note (the slowest of the seeds and the
  development notes), the UDF calls, the template build, the sensitivity grids.
- A coverage universe: 1,000 copies of the refreshed model with varied drivers, refreshed from
  one quotes file as `refresh DIR/` does, in a fresh process with 2 workers, timed, with each
  worker's peak resident memory; then refreshed again with the next day's quote.

Every figure is the median of repeated runs with its spread (min-max). The machine's load is
recorded beside the figures. Prints a table and writes JSON. From a script: `run(quick=False)`.
"""
from __future__ import annotations

import datetime as dt
import gc
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from udfs.errors import ModelError
from workbook.files import check_output, write_output

# Target per figure; the ratios against a reference are "at least", everything else "at most".
TARGETS = {"udf_us_max": 20.0, "engine_ms": 3.0, "refresh_vs_floor": 1.5, "driver_refresh_vs_floor": 2.5,
           "refresh_vs_formulas": 30.0, "refresh_vs_libreoffice": 10.0, "import_s": 3.0, "universe_1000_s": 120.0,
           "universe_peak_mb": 100.0, "grid_7x7_ms": 100.0}
AT_LEAST = {"refresh_vs_formulas", "refresh_vs_libreoffice"}
UNIVERSE_FILES, UNIVERSE_WORKERS = 1000, 2
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS, NOTES = SHARED / "seed", SHARED / "notes"
ROOT = Path(__file__).resolve().parents[1]


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


def _cpu_and_wall(fn, repeat: int) -> tuple[list[float], list[float]]:
    """Milliseconds per run of `fn`: the process's CPU time and the wall time, run by run."""
    cpu, wall = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return cpu, wall


def _per_call_us(fn, args, calls: int, repeat: int) -> list[float]:
    def loop():
        for _ in range(calls):
            fn(*args)
    return [t / calls * 1e6 for t in _time(loop, repeat)]


def _quotes(folder: Path, move: float = 1.02, day: dt.date | None = None) -> Path:
    """A quotes file for the sample company: its own price moved by `move`, FX by half as much."""
    from workbook.company import load
    company = load()
    price = company.scalar_inputs["price"] * move
    fx_rate = company.scalar_inputs["fx_rate"] * (1 + (move - 1) / 2)
    path = folder / f"quotes-{move:.4f}.csv"
    path.write_text("ticker,price,currency,price_date,fx_to_reporting,benchmark_level,source\n"
                    f"{company.facts['ticker']},{price:.2f},{company.facts['quote_currency']},{day or dt.date.today()},"
                    f"{fx_rate:.4f},,bench\n", encoding="utf-8")
    return path


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _driver_cells(package) -> list[tuple[str, str, float]]:
    """(sheet, cell, value) of the forecast drivers of the rate kind, from the blueprint."""
    from addin.template import blueprint
    out = []
    for row in blueprint(package):
        if row["kind"] == "input" and row["key"].startswith("d_") and row["year"].endswith("E"):
            value = package.value(row["sheet"], row["cell"])
            if isinstance(value, float) and 0 < abs(value) < 1:
                out.append((row["sheet"], row["cell"], value))
    return out


def _with_drivers(package, cells: dict, target: Path) -> None:
    """A copy of `package` with values typed into cells of one sheet ({(sheet, ref): value}), as
    an analyst saving in a program that leaves the cached values alone."""
    from workbook import xlsx
    by_sheet: dict = {}
    for (sheet, ref), value in cells.items():
        by_sheet.setdefault(sheet, {})[ref] = value
    xlsx.write(package, {package.sheets[s].path: xlsx.rewrite_sheet_bytes(package.sheets[s], c, frozenset(c))
                         for s, c in by_sheet.items()}, target)


_UNIVERSE_SCRIPT = """
import json, sys, time
from pathlib import Path
from addin.refresh import BatchSummary, model_files, refresh_many
files = model_files(Path(sys.argv[1]))
start = time.perf_counter()
outcomes = refresh_many(files, sys.argv[2], max_age_days=30, workers=int(sys.argv[3]))
elapsed = time.perf_counter() - start
summary = BatchSummary.of(outcomes)
print(json.dumps({"files": len(files), "seconds": elapsed, "refreshed": summary.refreshed,
                  "refused": {k: len(v) for k, v in summary.refused.items()}, "failing": len(summary.failing),
                  "peak_kb": sorted(summary.peak_kb_by_worker.values(), reverse=True)}))
"""


def _universe(folder: Path, quotes: Path, workers: int) -> dict:
    """`refresh DIR/` of the folder in a fresh process, as the command line runs it."""
    run = subprocess.run([sys.executable, "-c", _UNIVERSE_SCRIPT, str(folder), str(quotes), str(workers)], cwd=ROOT,
                         capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def run(quick: bool = False, out: Path | None = None, universe_files: int | None = None, force: bool = False) -> dict:
    """Every figure; with `out`, also written there as JSON (an existing file only with `force`,
    refused before anything is measured)."""
    import udfs
    from workbook import xlsx
    from workbook.build import build
    from workbook.company import load
    from workbook.model import build_model
    from workbook.xlcalc import Evaluator

    from .refresh import refresh_file

    if importlib.util.find_spec("formulas") is None:   # a reference the product does not install
        raise ModelError("the bench times the refresh against the `formulas` package, which only the test tools install: "
                         "run `make test` once, or `pip install -e \".[test]\"` in the project's environment")
    if out:
        check_output(out, force)
    repeat = 3 if quick else 7
    results: dict = {"quick": quick, "python": sys.version.split()[0], "when": dt.datetime.now().isoformat(timespec="seconds"),
                     "cores": os.cpu_count(), "load_before": _load()}
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

    # The engine: CPU time of this process per run, the figure the target is for; wall time
    # beside it. A run takes a few milliseconds, less than one time slice of the scheduler, so
    # on a shared 2-core machine a run's wall time is mostly other processes' slices (three
    # runnable processes doubled or quadrupled it while its CPU time stayed within 10%).
    # Collected first, so that what ran before leaves no garbage for the timed runs to collect;
    # the collector stays on, so what the engine's own allocations cost is counted. The first run
    # (the formulas made callable once per process) is reported beside it.
    company = load()
    start = time.process_time()
    build_model(company)
    results["engine_first_ms"] = (time.process_time() - start) * 1000
    gc.collect()
    cpu_ms, wall_ms = _cpu_and_wall(lambda: build_model(company), repeat * 5)
    results["engine_ms"], results["engine_wall_ms"] = _stats(cpu_ms), _stats(wall_ms)
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

        # The model as a research department holds it: refreshed before. Its first refresh
        # recomputes everything (no record yet) and runs the sensitivity table.
        first = work / "first.xlsm"
        quotes = [_quotes(work, 1.0 + 0.01 * (i + 1)) for i in range(repeat + 1)]

        def first_refresh():
            shutil.copy(template, first)
            start = time.perf_counter()
            refresh_file(first, str(quotes[0]), max_age_days=30)
            return time.perf_counter() - start
        results["first_refresh_s"] = _stats([first_refresh() for _ in range(repeat)])
        base = first.read_bytes()
        base_package = xlsx.read(first)
        drivers = _driver_cells(base_package)

        # The floor, a market-only refresh and a refresh after a driver change, run by run.
        floor_in, floor_out, market, driven = (work / n for n in ("floor.xlsm", "floor-out.xlsm", "market.xlsm", "driven.xlsm"))
        floor_s, market_s, driven_s, recomputed = [], [], [], {"market": [], "driver": []}
        for i in range(repeat):
            floor_in.write_bytes(base)
            start = time.perf_counter()
            xlsx.write(xlsx.read(floor_in), {}, floor_out)
            floor_s.append(time.perf_counter() - start)

            market.write_bytes(base)
            start = time.perf_counter()
            result = refresh_file(market, str(quotes[i + 1]), max_age_days=30)
            market_s.append(time.perf_counter() - start)
            recomputed["market"].append((result.recomputed, result.table_recomputed))

            sheet, cell, value = drivers[i % len(drivers)]
            _with_drivers(base_package, {(sheet, cell): value + 0.01 * (i + 1)}, driven)
            start = time.perf_counter()
            result = refresh_file(driven, str(quotes[i + 1]), max_age_days=30)
            driven_s.append(time.perf_counter() - start)
            recomputed["driver"].append((result.recomputed, result.table_recomputed))
            for stale in work.glob("*.bak"):
                stale.unlink()
        results["io_floor_s"], results["refresh_s"], results["driver_refresh_s"] = map(_stats, (floor_s, market_s, driven_s))
        results["refresh_vs_floor"] = results["refresh_s"]["median"] / results["io_floor_s"]["median"]
        results["driver_refresh_vs_floor"] = results["driver_refresh_s"]["median"] / results["io_floor_s"]["median"]
        results["recomputed"] = {kind: {"cells": statistics.median(c for c, _ in runs), "of": result.formula_cells,
                                        "table_rerun": sum(1 for _, t in runs if t), "runs": len(runs)}
                                 for kind, runs in recomputed.items()}

        # formulas and LibreOffice recalculating the same file.
        def formulas_eval():
            os.environ.setdefault("TQDM_DISABLE", "1")  # formulas draws progress bars into the table otherwise
            import formulas
            # formulas keeps one function table per process: bind ours for this run only, so a
            # caller in the same process (a test, a notebook) finds the table as it was.
            functions_table = formulas.get_functions()
            before = dict(functions_table)
            try:
                functions_table.update(functions)
                formulas.ExcelModel().loads(str(first)).finish().calculate()
            finally:
                functions_table.clear()
                functions_table.update(before)
        results["formulas_s"] = _stats(_time(formulas_eval, 1 if quick else 3))
        results["refresh_vs_formulas"] = results["formulas_s"]["median"] / results["refresh_s"]["median"]
        results["driver_refresh_vs_formulas"] = results["formulas_s"]["median"] / results["driver_refresh_s"]["median"]
        soffice = shutil.which("soffice") or shutil.which("libreoffice")
        if soffice:
            def convert(target: str, folder: Path, source: Path = first) -> Path:
                subprocess.run([soffice, f"-env:UserInstallation=file://{work}/lo", "--headless", "--convert-to", target,
                                "--outdir", str(folder), str(source)], check=True, capture_output=True, timeout=300)
                return folder / f"{source.stem}.{target.split(':')[0]}"
            convert("xlsx", work / "lo-out")  # the first start creates the profile
            results["libreoffice_s"] = _stats(_time(lambda: convert("xlsx", work / "lo-out"), 1 if quick else 3))
            results["refresh_vs_libreoffice"] = results["libreoffice_s"]["median"] / results["refresh_s"]["median"]
            results["driver_refresh_vs_libreoffice"] = results["libreoffice_s"]["median"] / results["driver_refresh_s"]["median"]

            # A file another program wrote: the refreshed model as LibreOffice re-saves it (no record survives).
            resaved = convert("xlsm:Calc MS Excel 2007 VBA XML", work / "resaved")
            saved_bytes = resaved.read_bytes()

            def foreign():
                resaved.write_bytes(saved_bytes)
                start = time.perf_counter()
                refresh_file(resaved, str(quotes[-1]), max_age_days=30)
                return time.perf_counter() - start
            results["refresh_foreign_s"] = _stats([foreign() for _ in range(repeat)])

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

        # A broker note to data files and a model, per note: the seeds and the development notes.
        results["import_s"] = _imports(work / "imports", 1 if quick else 2, seeds_only=quick)

        # The coverage universe: copies of the refreshed model with varied drivers, refreshed as
        # `refresh DIR/` does, then again the next day (the market-only morning).
        files = universe_files or (20 if quick else UNIVERSE_FILES)
        folder = work / "universe"
        folder.mkdir()
        start = time.perf_counter()
        for i in range(files):
            varied = {(s, c): v * (1 + 0.2 * ((i * 7 + k) % 11 - 5) / 5) for k, (s, c, v) in enumerate(drivers[:4])}
            _with_drivers(base_package, varied, folder / f"m{i:04d}.xlsm")
        results["universe_generated_s"] = time.perf_counter() - start
        for key, quote in (("universe", quotes[1]), ("universe_market", _quotes(work, 1.035))):
            done = _universe(folder, quote, UNIVERSE_WORKERS)
            done["per_1000_s"] = done["seconds"] * UNIVERSE_FILES / max(done["files"], 1)
            results[key] = done
            for stale in folder.glob("*.bak"):
                stale.unlink()
        results["universe_1000_s"] = results["universe"]["per_1000_s"]
        results["universe_peak_mb"] = max(max(results[k]["peak_kb"], default=0) for k in ("universe", "universe_market")) / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["load_after"] = _load()
    results["targets"] = {k: {"target": v, "met": _met(k, results)} for k, v in TARGETS.items()}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_output(out, json.dumps(results, indent=2, ensure_ascii=False), force=force)
    return results


def _imports(folder: Path, repeat: int, seeds_only: bool = False) -> dict:
    """Seconds per note to import it (text to layout, company and report files, calibration and a
    model), the median of `repeat` runs, for every seed and development note found (the seeds
    only for a quick run)."""
    from workbook.importer import ImportFailed, import_note
    notes = sorted(SEEDS.glob("*.txt")) + ([] if seeds_only else sorted(NOTES.glob("*.md"))) if SHARED.is_dir() else []
    notes = [n for n in notes if n.name.lower() != "readme.md"]
    per_note, failed = {}, {}
    for i, note in enumerate(notes):
        times = []
        for r in range(repeat):
            target = folder / f"{i}-{r}"
            target.mkdir(parents=True)
            start = time.perf_counter()
            try:
                import_note(note, target)
            except ImportFailed as exc:
                failed[note.name] = str(exc)[:160]
            times.append(time.perf_counter() - start)
        per_note[note.name] = statistics.median(times)
    if not per_note:
        return {}
    slowest = max(per_note, key=per_note.get)
    return {"median": statistics.median(per_note.values()), "min": min(per_note.values()), "max": per_note[slowest],
            "runs": len(per_note), "slowest": slowest, "per_note": per_note, "failed": failed}


def _value(key: str, results: dict) -> float:
    value = results[key]
    if key == "import_s":
        return value["max"]
    return value["median"] if isinstance(value, dict) else value


def _met(key: str, results: dict) -> bool:
    if key not in results or results[key] in ({}, None):
        return True  # a figure this machine cannot measure (no LibreOffice, no notes): nothing to miss
    value = _value(key, results)
    return value >= TARGETS[key] if key in AT_LEAST else value <= TARGETS[key]


def render(r: dict) -> str:
    def spread(s, scale=1.0, unit="", places=2):
        return f"{s['median'] * scale:.{places}f}{unit} [{s['min'] * scale:.{places}f}–{s['max'] * scale:.{places}f}]"

    def target(key, unit=""):
        mark = "met" if r["targets"][key]["met"] else "MISSED"
        return f"{'>=' if key in AT_LEAST else '<='} {TARGETS[key]:g}{unit} {mark}"

    udf = r["udf_us"]
    slowest = max((n for n in udf if n not in r.get("array_functions", ())), key=lambda n: udf[n]["median"])
    floor = r["io_floor_s"]["median"]
    rows = [
        ("I/O floor: read the refreshed model (every part) and write it back", spread(r["io_floor_s"], unit=" s", places=3),
         "", "the reference of the next two"),
        ("Refresh, market only (refreshed model, new quote)", spread(r["refresh_s"], unit=" s", places=3),
         target("refresh_vs_floor", "x"), f"{r['refresh_vs_floor']:.2f}x the floor; {r['recomputed']['market']['cells']:g} "
         f"of {r['recomputed']['market']['of']} formula cells recomputed, table re-run "
         f"{r['recomputed']['market']['table_rerun']}/{r['recomputed']['market']['runs']}"),
        ("Refresh after a driver change", spread(r["driver_refresh_s"], unit=" s", places=3),
         target("driver_refresh_vs_floor", "x"), f"{r['driver_refresh_vs_floor']:.2f}x the floor; "
         f"{r['recomputed']['driver']['cells']:g} cells recomputed, table re-run "
         f"{r['recomputed']['driver']['table_rerun']}/{r['recomputed']['driver']['runs']}"),
        ("First refresh (no record: everything recomputed)", spread(r["first_refresh_s"], unit=" s", places=3), "",
         f"{r['first_refresh_s']['median'] / floor:.2f}x the floor"),
        ("formulas re-evaluating the same file", spread(r["formulas_s"], unit=" s", places=3),
         target("refresh_vs_formulas", "x"), f"market refresh {r['refresh_vs_formulas']:.1f}x faster, after a driver "
         f"change {r['driver_refresh_vs_formulas']:.1f}x"),
    ]
    if "libreoffice_s" in r:
        rows.append(("LibreOffice headless, converting the same file", spread(r["libreoffice_s"], unit=" s", places=3),
                     target("refresh_vs_libreoffice", "x"), f"market refresh {r['refresh_vs_libreoffice']:.1f}x faster, "
                     f"after a driver change {r['driver_refresh_vs_libreoffice']:.1f}x"))
    if "refresh_foreign_s" in r:
        rows.append(("Refresh of the model as LibreOffice re-saves it", spread(r["refresh_foreign_s"], unit=" s", places=3),
                     "", "no record survives: everything recomputed"))
    rows += [
        ("Engine: whole model in Python, CPU time", spread(r["engine_ms"], unit=" ms"), target("engine_ms", " ms"),
         f"wall time {spread(r['engine_wall_ms'], unit=' ms')} (other processes' time slices included); "
         f"first run of the process {r['engine_first_ms']:.1f} ms" if "engine_wall_ms" in r else ""),
        (f"UDF call, slowest ({slowest})", spread(udf[slowest], unit=" µs"), target("udf_us_max", " µs"),
         f"{udf[slowest]['vs_reference']:.0f}x a bare Python call ({r['reference_call_us']['median']:.3f} µs)"),
        ("UDF calls in one full recalculation", f"{r['udf_calls_per_recalc']} ({r['formula_cells']} formula cells)", "", ""),
        ("Template build", spread(r["build_s"], unit=" s", places=3), "", ""),
        ("DCF grid 7x7, one call (ER_DCF_GRID)", spread(r["grid_7x7_ms"], unit=" ms", places=3), target("grid_7x7_ms", " ms"), ""),
    ]
    if "driver_grid_5x5_ms" in r:
        rows.append(("EPS by two drivers 5x5, model re-run per point", spread(r["driver_grid_5x5_ms"], unit=" ms", places=1),
                     "", ""))
    if r.get("import_s"):
        imp = r["import_s"]
        failed = f"; {len(imp['failed'])} refused" if imp["failed"] else ""
        rows.append((f"Import of a note, slowest of {imp['runs']} ({imp['slowest']})", f"{imp['max']:.2f} s (median {imp['median']:.2f})",
                     target("import_s", " s"), f"text to data files, calibration and model{failed}"))
    for key, label in (("universe", "Universe: copies with varied drivers, first refresh"),
                       ("universe_market", "Universe: the next day, market only")):
        u = r[key]
        rows.append((f"{label} ({u['files']} files, {UNIVERSE_WORKERS} workers)",
                     f"{u['seconds']:.1f} s (= {u['per_1000_s']:.1f} s per 1,000)",
                     target("universe_1000_s", " s") if key == "universe" else "",
                     f"{u['refreshed']} refreshed, {sum(u['refused'].values())} refused, {u['failing']} failing checks; "
                     f"peak memory per worker {', '.join(f'{kb / 1024:.0f} MB' for kb in u['peak_kb'])}"))
    rows.append(("Peak memory per worker, either universe run", f"{r['universe_peak_mb']:.0f} MB", target("universe_peak_mb", " MB"), ""))
    width = max(len(a) for a, *_ in rows)
    lines = [f"{'figure':<{width}}  {'median [min–max]':<34} {'target':<18} note", "-" * (width + 100)]
    lines += [f"{a:<{width}}  {b:<34} {c:<18} {d}" for a, b, c, d in rows]
    met = [k for k, v in r["targets"].items() if v["met"]]
    missed = [k for k, v in r["targets"].items() if not v["met"]]
    lines.append(f"machine: {r['cores']} cores, load average {r['load_before']} before, {r['load_after']} after")
    lines.append(f"targets met: {', '.join(met) or 'none'}" + (f"; MISSED: {', '.join(missed)}" if missed else ""))
    return "\n".join(lines)
