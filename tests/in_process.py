"""The command line run in the test's own process, answering like `python -m addin ARGS` run as a
child: its exit code and what it printed on stdout and stderr, as a CompletedProcess.

A child process costs an interpreter start and a fresh import of the product for each call, about
half a second of CPU, and the suite makes dozens of such calls whose subject is the command's
answer, not the interpreter. The entry point itself (`python -m addin`: the environment check,
the exit status a shell sees, a closed pipe, special files that could block a read) keeps its
tests that start a real process: test_cli.py and test_refresh_truth.py.

The streams are real files, as a child's captured pipes are (a file number, no terminal), and the
working folder is the caller's `cwd` for the call's duration: each pytest-xdist worker runs one
test at a time in its own process, so changing it cannot reach another test."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import ROOT


def run_cli(*args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    from addin.cli import main
    argv = [str(a) for a in args]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out, tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        before = Path.cwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exit_:   # argparse's usage errors and --help end this way
                    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                    if not isinstance(exit_.code, (int, type(None))):
                        print(exit_.code, file=sys.stderr)
        finally:
            os.chdir(before)
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(["python", "-m", "addin", *argv], code, out.read(), err.read())
