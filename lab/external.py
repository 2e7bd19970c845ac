"""The shared lab's external PostgreSQL and Redis: Debian's postgresql-15 and redis-server run
as plain processes in the lab's ``ext`` netns (their system services stay stopped:
scripts/setup), every node's Harbor pointed at them.  Their own HA is out of the lab's scope:
one of each, never faulted.

    pids = start_external(st, workdir)   # {"postgresql": PID, "redis": PID}, both answering
"""

from __future__ import annotations

import glob
import shutil
import time
from pathlib import Path

from lab.procs import LabError, alive, sh, spawn
from lab.state import LabState

PG_PORT = 5432
REDIS_PORT = 6379
READY_WITHIN_S = 60.0


def pg_bin(name: str) -> str:
    """A program of Debian's newest installed PostgreSQL (not on PATH: /usr/lib/postgresql/N)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise LabError(f"PostgreSQL's {name} is not installed (Debian's postgresql-15)")
    return found[-1]


def _in(netns: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}"]


def start_external(st: LabState, workdir: Path, address: str) -> dict[str, int]:
    """initdb (trust auth: the lab's netns only) + postgres listening on ``address``, and
    redis-server (no persistence) on ``address``, in ``{prefix}-ext``; both answering, or
    LabError.  PIDs (process group leaders) recorded in ``st.extra_pids`` as they start."""
    netns = f"{st.prefix}-ext"
    pgdata, sock = workdir / "pg", workdir / "pg-run"
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    for d in (pgdata, sock):
        d.mkdir(exist_ok=True)
        shutil.chown(d, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    sh(*as_pg, pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
       timeout=120)  # fmt: skip
    with (pgdata / "pg_hba.conf").open("a") as f:
        f.write("host all all 0.0.0.0/0 trust\n")
    st.extra_pids["postgresql"] = spawn(
        [*_in(netns), *as_pg, pg_bin("postgres"), "-D", str(pgdata),
         "-c", f"listen_addresses={address}", "-c", f"port={PG_PORT}",
         "-c", f"unix_socket_directories={sock}"],
        workdir / "postgresql.log",
    )  # fmt: skip
    st.save()
    st.extra_pids["redis"] = spawn(
        [*_in(netns), "redis-server", "--bind", address, "--port", str(REDIS_PORT),
         "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        workdir / "redis.log",
    )  # fmt: skip
    st.save()
    deadline = time.monotonic() + READY_WITHIN_S
    while True:
        pg = sh(*_in(netns), pg_bin("pg_isready"), "-q", "-h", address, "-p", str(PG_PORT),
                check=False, timeout=10)  # fmt: skip
        rd = sh(*_in(netns), "redis-cli", "-h", address, "-p", str(REDIS_PORT), "ping",
                check=False, timeout=10)  # fmt: skip
        if pg.returncode == 0 and "PONG" in rd.stdout:
            return dict(st.extra_pids)
        for what, pid in st.extra_pids.items():
            if what in ("postgresql", "redis") and not alive(pid):
                raise LabError(f"{what} in {netns} exited; see {workdir}/{what}.log")
        if time.monotonic() > deadline:
            raise LabError(f"PostgreSQL/Redis in {netns} not answering after {READY_WITHIN_S} s")
        time.sleep(0.5)
