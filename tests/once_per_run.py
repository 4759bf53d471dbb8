"""What a test run makes once and every pytest-xdist worker shares: a folder per run (the run's
basetemp; each worker's own basetemp is a folder inside it), things made in it by the first
worker that asks, under a file lock, and the one PostgreSQL server of the run, stopped when the
run ends (conftest's pytest_sessionfinish)."""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_PORT = 5432  # names the unix socket only: the server listens on no TCP port
_DONE = ".made"


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this run shares (without xdist: the session's basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def worker_id() -> str:
    """"gw0", "gw1", … under xdist; "main" without it."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` (created if missing), held across processes until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def made_once(folder: Path, name: str, make) -> Path:
    """The folder `folder/name`, filled by `make(path)` in whichever worker asks first; the others
    wait on the lock and reuse it. A `make` that fails leaves nothing a later caller would trust."""
    target = folder / name
    with locked(folder / f"{name}.lock"):
        if not (target / _DONE).exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            make(target)
            (target / _DONE).touch()
    return target


# ------------------------------------------------------------------------------------------------
# PostgreSQL: one throwaway cluster per run, on a unix socket, shared by the workers.
# ------------------------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(re.findall(r"/(\d+)/bin", p)[0]))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: as root the suite runs it as the postgres system user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def postgres_socket(folder: Path) -> Path:
    """The run's PostgreSQL server (started by the first worker that needs it): the folder of its
    unix socket. Skips where PostgreSQL is not installed; fails, with its log, if it cannot start."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs it)")

    def start(record: Path) -> None:
        # The cluster lives in a folder of its own under the system temp folder: the postgres user
        # cannot enter the root-only folder pytest keeps its runs in.
        data = Path(tempfile.mkdtemp(prefix="er-pg-"))
        (record / "cluster.json").write_text(json.dumps({"data": str(data), "bin": str(bindir)}), encoding="utf-8")
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(data, owner.pw_uid, owner.pw_gid)
        log = data / "server.log"
        try:
            subprocess.run(_as_postgres() + [str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres",
                                             "-E", "UTF8", "--locale=C", "--no-sync"], check=True, capture_output=True, timeout=120)
            subprocess.run(_as_postgres() + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(log), "-w", "-t", "60",
                                             "-o", f"-k {data} -c listen_addresses='' -p {PG_PORT} -F", "start"],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            detail = log.read_text(errors="replace")[-500:] if log.exists() else exc.stderr.decode(errors="replace")[-500:]
            stop_postgres(folder, record)
            pytest.fail(f"could not start PostgreSQL: {detail}")

    record = made_once(folder, "postgres", start)
    return Path(json.loads((record / "cluster.json").read_text(encoding="utf-8"))["data"])


def stop_postgres(folder: Path, record: Path | None = None) -> None:
    """Stop the run's PostgreSQL server, if one was started, and remove its cluster."""
    cluster = (record or folder / "postgres") / "cluster.json"
    if not cluster.is_file():
        return
    found = json.loads(cluster.read_text(encoding="utf-8"))
    data, bindir = Path(found["data"]), Path(found["bin"])
    if (data / "db" / "postmaster.pid").exists():
        subprocess.run(_as_postgres() + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
    shutil.rmtree(data, ignore_errors=True)
    cluster.unlink()
