"""workbook/files.py: whole-file writes land completely or not at all, with the user's permissions."""
from __future__ import annotations

import os

import pytest

from workbook.files import atomic_path, atomic_write


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_text_is_written_as_given_with_the_umask_applied(tmp_path, umask_027):
    target = tmp_path / "a.toml"
    atomic_write(target, "x = 1\r\ny = \"é\"\n")
    assert target.read_bytes() == "x = 1\r\ny = \"é\"\n".encode("utf-8")
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["a.toml"]


def test_an_explicit_mode_is_still_limited_by_the_umask(tmp_path, umask_027):
    target = atomic_write(tmp_path / "run.sh", b"#!/bin/sh\n", mode=0o777)
    assert os.stat(target).st_mode & 0o777 == 0o750


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.xlsm"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.xlsm"]


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path):
    with atomic_path(tmp_path / "out.xlsx") as temp:
        assert temp.parent == tmp_path and temp.name.startswith(".out.xlsx.")
        temp.write_bytes(b"new")
    assert (tmp_path / "out.xlsx").read_bytes() == b"new"
