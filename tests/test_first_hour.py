"""The README's first page works as written (issue 24): in a fresh clone, its set-up command
`make run` builds the environment, and every command of the daily loop, read from the README's own
fenced block and run exactly as written (`source .venv/bin/activate` puts the console script
`er-model` on PATH), exits 0. The clone is of the committed tree, so this proves what a new analyst
gets, not the working copy."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
SECTION = "## 第一小时"


def first_page_blocks() -> list[str]:
    """The fenced sh blocks of the README's first-hour section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def commands(block: str) -> list[str]:
    """A block's command lines (comments and blank lines are not commands)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_first_page_fits_one_screen_and_holds_the_two_set_up_commands():
    text = README.read_text(encoding="utf-8")
    assert text.index(SECTION) < 200, "the first hour opens the README"
    section = text[text.index(SECTION):text.index("\n## ", text.index(SECTION) + 1)]
    assert len(section.splitlines()) <= 45
    setup, loop = first_page_blocks()
    assert [c.split("#")[0].strip() for c in commands(setup)] == ["make run", "make test"]
    loop_commands = commands(loop)
    assert loop_commands[0].startswith("source .venv/bin/activate")
    used = {c.split()[1] for c in loop_commands[1:]}
    assert all(c.startswith("er-model ") for c in loop_commands[1:])
    assert {"build", "refresh", "check", "export", "publish"} <= used
    assert "examples/quotes.csv" in loop and (ROOT / "examples" / "quotes.csv").is_file()
    for words in ("这是什么", "What this is", "帮助", "Help", "打开模板", "Open the template", ".venv/bin/er-model",
                  "pip install -e ."):
        assert words in section, words


@pytest.mark.long
@pytest.mark.slow  # builds a virtual environment in a fresh clone
def test_the_first_hour_runs_as_written_in_a_fresh_clone(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    if (ROOT.parent / "shared").exists():  # the notes beside the repository, as in a checkout
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.setdefault("PYTHON", shutil.which("python3") or sys.executable)
    setup, loop = first_page_blocks()
    make_run = commands(setup)[0].split("#")[0].strip()
    done = subprocess.run(["bash", "-c", make_run], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (clone / "out" / "xiaomi_1810hk_model.xlsm").is_file()

    script = "set -e -x\n" + loop  # each command must exit 0; -x names the one that did not
    done = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RESULT: OK" in done.stdout
    for made in ("my_model.xlsm", "my_model_live.xlsx", "estimates.sqlite"):
        assert (clone / made).is_file(), made
    # the other way the page names: the console script by its path, no activation
    direct = subprocess.run([str(clone / ".venv" / "bin" / "er-model"), "--help"], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=120)
    assert direct.returncode == 0 and "refresh" in direct.stdout


def test_the_internals_live_in_docs_linked_from_the_readme():
    """Issue 24: the README is the analyst's page; the internals (how the model is built, import,
    editions, performance, proofs) are files under docs/, each linked from it, and every relative
    link of the README and the docs reaches a file of the repository."""
    readme = README.read_text(encoding="utf-8")
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 5
    for page in pages:
        assert f"(docs/{page.name})" in readme, f"docs/{page.name} is not linked from the README"
    for internal in ("## How the model is built", "## Performance", "## Robustness", "## Three editions"):
        assert internal not in readme, internal
    for source in [README, *pages]:
        for target in re.findall(r"\]\(((?!https?:|#)[^)#]+)", source.read_text(encoding="utf-8")):
            assert (source.parent / target).exists(), (source.name, target)
