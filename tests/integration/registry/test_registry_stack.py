"""The Harbor-like stack of real programs on a real dockerd with an ext4 loop device as /data:
healthy through nginx's TLS, a real client's push and pull, committed rows, data surviving
``compose down``/``up`` and PostgreSQL's crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import signal
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lab.registry_stack.stack import RegistryStack
from tests.integration.registry.conftest import Dockerd, NetnsExecutor

pytestmark = pytest.mark.integration

HEALTHY_TIMEOUT_S = 120.0
PG_READY_TIMEOUT_S = 60.0
ROWS = 50
SKOPEO_TIMEOUT_S = 120.0


def _in_netns(d: Dockerd, argv: list[str], timeout: float) -> str:
    """Run ``argv`` inside the dockerd's netns (where the stack's loopback ports are)."""
    res = subprocess.run(
        ["nsenter", f"--net=/run/netns/{d.netns}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert res.returncode == 0, f"{argv[:3]}: exit {res.returncode}: {res.stderr[-2000:]}"
    return res.stdout


async def _health(stack: RegistryStack) -> dict[str, Any]:
    """GET /api/v2.0/health through nginx's TLS port, verifying the lab CA's certificate."""
    ctx = ssl.create_default_context(cafile=str(stack.ca_file))
    url = f"https://127.0.0.1:{stack.https_port}/api/v2.0/health"
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, ssl=ctx) as r:
        doc: dict[str, Any] = await r.json(content_type=None)
        return doc


async def _wait_healthy(
    stack: RegistryStack, netns_exec: NetnsExecutor
) -> tuple[float, dict[str, Any]]:
    """``compose up -d`` and wait until the health document and every container are healthy;
    returns the seconds it took and the last document."""
    start = time.monotonic()
    stack.up()
    doc: dict[str, Any] = {}
    while time.monotonic() - start < HEALTHY_TIMEOUT_S:
        try:
            doc = await netns_exec.run(lambda: _health(stack))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
            doc = {"error": repr(e)}
        states = stack.container_health()
        if doc.get("status") == "healthy" and all(s.endswith("/healthy") for s in states.values()):
            return time.monotonic() - start, doc
        await asyncio.sleep(0.2)
    raise AssertionError(f"not healthy in {HEALTHY_TIMEOUT_S} s: {doc} {stack.container_health()}")


def _tiny_image(d: Dockerd, workdir: Path) -> tuple[Path, bytes]:
    """A small image built here (one random file, ``docker import``), saved as a docker-archive;
    returns the archive and the file's content."""
    payload = secrets.token_bytes(64 * 1024)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    ref = f"lab/tiny:{secrets.token_hex(3)}"
    subprocess.run(
        ["docker", "-H", d.host, "import", "-", ref],
        input=layer.getvalue(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    archive = workdir / "tiny.tar"
    d.docker("save", "-o", str(archive), ref)
    d.docker("rmi", ref)
    return archive, payload


def _pull_payload(d: Dockerd, stack: RegistryStack, ref: str, dest: Path) -> tuple[str, bytes]:
    """skopeo copy the image back into ``dir:dest``; returns the manifest digest and the
    payload file read out of its layer."""
    _in_netns(d, ["skopeo", "copy", "--src-cert-dir", str(stack.client_cert_dir),
                  f"docker://{ref}", f"dir:{dest}"], SKOPEO_TIMEOUT_S)  # fmt: skip
    manifest_bytes = (dest / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    (layer,) = manifest["layers"]
    blob = (dest / layer["digest"].removeprefix("sha256:")).read_bytes()
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        member = tar.extractfile("payload.bin")
        assert member is not None
        payload = member.read()
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(), payload


def _crash_and_restart_db(d: Dockerd, stack: RegistryStack) -> tuple[float, str]:
    """SIGKILL harbor-db and ``docker start`` it (a no-op if its restart policy already did);
    returns the seconds from the kill to pg_isready, and the container's log."""
    started = stack.docker("inspect", "-f", "{{.State.StartedAt}}", "harbor-db").strip()
    start = time.monotonic()
    stack.docker("kill", "-s", "KILL", "harbor-db")
    while True:
        state = stack.docker("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}",
                             "harbor-db").split()  # fmt: skip
        if state[0] == "false" or state[1] != started:
            break
        assert time.monotonic() - start < 30, "harbor-db still running after SIGKILL"
        time.sleep(0.05)
    stack.docker("start", "harbor-db")
    while True:
        res = subprocess.run(
            ["docker", "-H", d.host, "exec", "harbor-db", "pg_isready", "-q",
             "-h", "127.0.0.1", "-U", "postgres"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
        if res.returncode == 0:
            break
        assert time.monotonic() - start < PG_READY_TIMEOUT_S, "PostgreSQL not ready after crash"
        time.sleep(0.05)
    recovery_s = time.monotonic() - start
    return recovery_s, _db_log(d)


@contextlib.contextmanager
def _held_session(d: Dockerd) -> Iterator[None]:
    """A client session open in PostgreSQL (as Harbor's core holds its pool) for the block."""
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{d.netns}", "psql", "-h", "127.0.0.1", "-U", "postgres",
         "-X", "-q", "-c", "SELECT pg_sleep(300)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "the held psql session ended at once"
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _db_log(d: Dockerd) -> str:
    res = subprocess.run(
        ["docker", "-H", d.host, "logs", "harbor-db"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return res.stdout + res.stderr


def _rows(stack: RegistryStack) -> list[int]:
    return [int(x) for x in stack.psql("SELECT n FROM writes ORDER BY n;").split()]


async def test_push_pull_rows_survive_down_up_and_db_crash(
    dockerd: Dockerd, registry_stack: RegistryStack, netns_exec: NetnsExecutor, fs_workdir: Path
) -> None:
    """Through nginx's TLS on 443 (lab CA verified) the stack reports Harbor's health shape all
    healthy; an image pushed with skopeo pulls back with the same manifest digest and payload;
    rows committed one by one to PostgreSQL 15 and the image are still there after
    ``compose down`` + ``up`` (the data lives on the ext4 mount, in Harbor's layout), and
    PostgreSQL was shut down cleanly by ``down`` though a client session was open (its next
    start runs no crash recovery) and listens on every address again though its config line
    was lost; after
    SIGKILL of harbor-db PostgreSQL runs crash recovery and every committed row is there."""
    stack = registry_stack
    up_s, doc = await _wait_healthy(stack, netns_exec)
    names = {c["name"]: c["status"] for c in doc["components"]}
    assert set(names) >= {"core", "database", "redis", "registry", "portal", "jobservice"}
    assert set(names.values()) == {"healthy"}, doc
    print(f"\ncompose up -> healthy (fresh data volume, initdb): {up_s:.1f} s")

    archive, payload = _tiny_image(dockerd, fs_workdir)
    ref = f"127.0.0.1:{stack.https_port}/lab/tiny:1"
    digest_file = fs_workdir / "push.digest"
    _in_netns(dockerd, ["skopeo", "copy", "--dest-cert-dir", str(stack.client_cert_dir),
                        "--digestfile", str(digest_file), f"docker-archive:{archive}",
                        f"docker://{ref}"], SKOPEO_TIMEOUT_S)  # fmt: skip
    pushed = digest_file.read_text().strip()
    pulled, pulled_payload = _pull_payload(dockerd, stack, ref, fs_workdir / "pull1")
    assert pulled == pushed
    assert pulled_payload == payload

    stack.psql("CREATE TABLE writes (n integer PRIMARY KEY, at timestamptz DEFAULT now());")
    stack.psql("".join(f"INSERT INTO writes (n) VALUES ({n});\n" for n in range(1, ROWS + 1)))
    assert _rows(stack) == list(range(1, ROWS + 1))
    for sub in ("registry/docker/registry/v2/repositories/lab/tiny", "database/PG_VERSION",
                "redis/appendonlydir"):  # fmt: skip
        assert (stack.data_dir / sub).exists(), sub

    with _held_session(dockerd):
        stack.down()
    assert stack.container_health() == {}
    # As after a stop between initdb and the entrypoint's appends (a demotion during the first
    # start): the next start must still listen on every address.
    conf = stack.data_dir / "database" / "postgresql.conf"
    lines = conf.read_text().splitlines(keepends=True)
    conf.write_text("".join(ln for ln in lines if not ln.startswith("listen_addresses = ")))
    up_again_s, _ = await _wait_healthy(stack, netns_exec)
    print(f"compose down, up -> healthy (existing data): {up_again_s:.1f} s")
    restart_log = _db_log(dockerd)
    assert "automatic recovery in progress" not in restart_log, restart_log[-2000:]
    assert "database system was shut down at" in restart_log, restart_log[-2000:]
    assert 'listening on IPv4 address "0.0.0.0"' in restart_log, restart_log[-2000:]
    assert _rows(stack) == list(range(1, ROWS + 1))
    again, again_payload = _pull_payload(dockerd, stack, ref, fs_workdir / "pull2")
    assert (again, again_payload) == (pushed, payload)

    stack.psql(
        "".join(f"INSERT INTO writes (n) VALUES ({n});\n" for n in range(ROWS + 1, 2 * ROWS + 1))
    )
    recovery_s, logs = _crash_and_restart_db(dockerd, stack)
    print(f"harbor-db SIGKILL -> (docker start) -> pg_isready: {recovery_s:.2f} s")
    assert "automatic recovery in progress" in logs
    assert _rows(stack) == list(range(1, 2 * ROWS + 1))
