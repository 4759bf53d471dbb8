"""LibreOffice headless, as the tests start it: every conversion of a call in one soffice process
(several files, one start), a profile of the caller's own (two processes sharing a profile hand
their work to each other or fail), and the template as LibreOffice re-saves it made once per run
and shared by the modules that read it (conftest's `libreoffice_resave`)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
# A conversion takes seconds; this only stops a hung LibreOffice from hanging the suite.
HANG_GUARD_SECONDS = 300
XLSM = "xlsm:Calc MS Excel 2007 VBA XML"


def convert(sources: list[Path], target: str, outdir: Path, profile: Path) -> list[Path]:
    """Convert every file of `sources` to `target` (a --convert-to argument) into `outdir`, in one
    LibreOffice process using the profile folder `profile`: the converted files, in order."""
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", target,
                    "--outdir", str(outdir), *map(str, sources)], check=True, capture_output=True, timeout=HANG_GUARD_SECONDS)
    extension = target.split(":")[0]
    return [outdir / f"{Path(source).stem}.{extension}" for source in sources]
