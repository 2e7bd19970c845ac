"""Real registry traffic through the VIP, from the client's netns (the registry stack only):
skopeo pushes and pulls of small OCI images built here, and a writer committing numbered rows
to PostgreSQL.  Each loop records what was acknowledged and when, so a failover's cost can be
counted: the first successful pull after the fault, the pulls that failed, and pushes or rows
acknowledged and then missing.

``Traffic`` is one client; ``Load`` runs its three loops in threads between ``start`` and
``stop``; ``Load.report(t_fault)`` counts, after ``Load.verify()`` looked for what was acked.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKOPEO_TIMEOUT_S = 20.0
PSQL_TIMEOUT_S = 10.0
DB_READY_WITHIN_S = 30.0
REPO = "lab/traffic"
TABLE = "lab_writes"


def run(
    argv: list[str], timeout: float, env: dict[str, str] | None = None, tail: int = 2000
) -> tuple[int, str]:
    """Run ``argv``; on timeout kill its process group.  Returns (rc, the last ``tail``
    characters of stdout+stderr; 0: all)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, f"timeout after {timeout:g} s: {(out or '')[-300:]}"
    return proc.returncode, (out or "")[-tail:] if tail else (out or "")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(dest: Path, n: int) -> Path:
    """An OCI image layout at ``dest``: one layer with ``payload.bin`` (unique to ``n`` and to
    this call), its config and manifest.  No Docker needed."""
    payload = f"harbor-ha lab image {n} {time.time_ns()}\n".encode() + os.urandom(512)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_sha(raw.getvalue())]},
        "config": {"Cmd": ["/payload.bin"]},
    }).encode()  # fmt: skip
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(layer), "size": len(layer)}],
    }).encode()  # fmt: skip
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (layer, config, manifest):
        (blobs / _sha(blob).removeprefix("sha256:")).write_bytes(blob)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": _sha(manifest), "size": len(manifest)}],
    }  # fmt: skip
    (dest / "index.json").write_text(json.dumps(index))
    return dest


class Traffic:
    """skopeo and psql as a user runs them, in ``netns`` against ``vip`` (TLS verified against
    the lab CA in ``ca_dir``)."""

    def __init__(self, netns: str, vip: str, ca_dir: Path, workdir: Path) -> None:
        self.netns, self.vip, self.ca_dir, self.workdir = netns, vip, ca_dir, workdir
        self.last_error = ""  # the output's tail of the last push that failed
        workdir.mkdir(parents=True, exist_ok=True)

    def ref(self, n: int) -> str:
        return f"{self.vip}:443/{REPO}:{n}"

    def _in_netns(self, argv: list[str], timeout: float, tail: int = 2000) -> tuple[int, str]:
        env = {"PGCONNECT_TIMEOUT": "3"}
        return run(["ip", "netns", "exec", self.netns, *argv], timeout, env, tail=tail)

    def push(self, n: int) -> str | None:
        """Push a fresh image as tag ``n``; its manifest digest once the registry acknowledged
        it (skopeo exit 0), else None."""
        src = oci_layout(self.workdir / f"push-{n}", n)
        digest = self.workdir / f"push-{n}.digest"
        rc, out = self._in_netns(
            ["skopeo", "copy", "--retry-times", "0", "--dest-cert-dir", str(self.ca_dir),
             "--digestfile", str(digest), f"oci:{src}", f"docker://{self.ref(n)}"],
            SKOPEO_TIMEOUT_S, tail=400,
        )  # fmt: skip
        if rc != 0 or not digest.exists():
            self.last_error = f"exit {rc}: {out.strip()}"
            return None
        return digest.read_text().strip()

    def pull(self, n: int, tag: str = "") -> str | None:
        """Pull tag ``n`` (manifest and blobs, into a dir); its manifest digest, or None."""
        dest = self.workdir / f"pull-{n}-{time.time_ns()}"
        try:
            rc, _ = self._in_netns(
                ["skopeo", "copy", "--retry-times", "0", "--src-cert-dir", str(self.ca_dir),
                 f"docker://{self.ref(n)}", f"dir:{dest}"],
                SKOPEO_TIMEOUT_S,
            )  # fmt: skip
            if rc != 0:
                return None
            return _sha((dest / "manifest.json").read_bytes())
        finally:
            subprocess.run(["rm", "-rf", str(dest)], check=False)

    def manifest_digest(self, n: int) -> str | None:
        """Tag ``n``'s manifest digest (``skopeo inspect --raw``: no blobs), or None."""
        rc, out = self._in_netns(
            ["skopeo", "inspect", "--raw", "--retry-times", "2", "--cert-dir",
             str(self.ca_dir), f"docker://{self.ref(n)}"],
            SKOPEO_TIMEOUT_S, tail=0,
        )  # fmt: skip
        return _sha(out.encode()) if rc == 0 else None

    def psql(self, sql: str, timeout: float = PSQL_TIMEOUT_S, tail: int = 2000) -> tuple[bool, str]:
        rc, out = self._in_netns(
            ["psql", "-h", self.vip, "-U", "postgres", "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-c", sql],
            timeout, tail,
        )  # fmt: skip
        return rc == 0, out

    def create_table(self, within_s: float = DB_READY_WITHIN_S) -> float:
        """Create the writer's table, retrying for ``within_s`` (Harbor's health checks its
        database on loopback; the writer's path through the VIP is the lab's own); the seconds
        it waited."""
        t0 = time.monotonic()
        while True:
            ok, out = self.psql(f"CREATE TABLE IF NOT EXISTS {TABLE} (n integer PRIMARY KEY)")
            waited = time.monotonic() - t0
            if ok:
                return round(waited, 3)
            if waited > within_s:
                raise RuntimeError(f"create table (for {waited:.1f} s): {out}")
            time.sleep(0.5)

    def insert(self, n: int) -> bool:
        """Commit row ``n`` (one autocommit transaction); True once PostgreSQL acknowledged."""
        ok, _ = self.psql(f"INSERT INTO {TABLE} (n) VALUES ({n}) ON CONFLICT DO NOTHING")
        return ok

    def rows(self) -> set[int]:
        # the whole output (tail=0): the default tail cut the first rows of a long table
        # (the data row's 621 rows "lost" 173, all from its beginning)
        ok, out = self.psql(f"SELECT n FROM {TABLE}", tail=0)
        if not ok:
            raise RuntimeError(f"select: {out}")
        return {int(x) for x in out.split()}


@dataclass
class Log:
    """One loop's record: (time.time(), ok) per attempt, and what was acknowledged."""

    attempts: list[tuple[float, bool]] = field(default_factory=list)
    acked: dict[int, tuple[float, str]] = field(default_factory=dict)  # n -> (at, digest)


class Load:
    """A pusher, a puller (of one image pushed at start) and a row writer, each in a thread,
    each pausing ``every_s`` between attempts."""

    def __init__(self, traffic: Traffic, *, first: int = 1, every_s: float = 0.2) -> None:
        self.t, self.every_s = traffic, every_s
        self.pushes, self.pulls, self.writes = Log(), Log(), Log()
        self.pull_starts: list[float] = []  # when each pull of self.pulls.attempts began
        self._next = first  # numbering of pushes and rows (unique across Loads on one lab)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.base = 0
        self.base_digest = ""
        self.db_wait_s = 0.0  # how long start() waited for PostgreSQL through the VIP

    def start(self) -> None:
        """Push the image the puller pulls and make the table (both must work: the lab is
        healthy), then start the loops."""
        self.base = self._take()
        digest = self.t.push(self.base)
        if digest is None:
            raise RuntimeError(
                f"push of {self.t.ref(self.base)} failed on a healthy lab: {self.t.last_error}"
            )
        self.base_digest = digest
        self.db_wait_s = self.t.create_table()
        for fn in (self._push_loop, self._pull_loop, self._write_loop):
            th = threading.Thread(target=fn, daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=SKOPEO_TIMEOUT_S + 5)

    @property
    def next_number(self) -> int:
        return self._next

    def _take(self) -> int:
        n = self._next
        self._next += 1
        return n

    def _push_loop(self) -> None:
        while not self._stop.is_set():
            n = self._take()
            digest = self.t.push(n)
            at = time.time()
            self.pushes.attempts.append((at, digest is not None))
            if digest is not None:
                self.pushes.acked[n] = (at, digest)
            self._stop.wait(self.every_s)

    def _pull_loop(self) -> None:
        while not self._stop.is_set():
            began = time.time()
            digest = self.t.pull(self.base)
            self.pulls.attempts.append((time.time(), digest == self.base_digest))
            self.pull_starts.append(began)
            self._stop.wait(self.every_s)

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            n = self._take()
            ok = self.t.insert(n)
            at = time.time()
            self.writes.attempts.append((at, ok))
            if ok:
                self.writes.acked[n] = (at, "")
            self._stop.wait(self.every_s)

    def missing_pushes(
        self, window: tuple[float, float] | list[tuple[float, float]] | None = None
    ) -> list[int]:
        """Acknowledged pushes that do not pull back with their digest: every one acked inside
        ``window`` (time.time() bounds; or any of a list of windows; None: all) is pulled in
        full; the others by manifest only (``skopeo inspect --raw``), which is much cheaper."""
        windows = [window] if isinstance(window, tuple) else window
        missing = []
        for n, (at, digest) in sorted(self.pushes.acked.items()):
            if windows is None or any(lo <= at <= hi for lo, hi in windows):
                got = self.t.pull(n)
            else:
                got = self.t.manifest_digest(n)
            if got != digest:
                missing.append(n)
        return missing

    def missing_rows(self) -> list[int]:
        rows = self.t.rows()
        return sorted(n for n in self.writes.acked if n not in rows)

    def first_pull(self, t_fault: float) -> tuple[float | None, int]:
        """See :func:`first_good_pull` (over the pulls recorded so far)."""
        pulls = [(began, at, ok) for began, (at, ok) in
                 zip(self.pull_starts, self.pulls.attempts, strict=False)]  # fmt: skip
        return first_good_pull(pulls, t_fault)

    def pulled_since(self, t: float) -> bool:
        """Whether a pull that began at or after ``t`` (time.time()) succeeded.  The puller is
        one thread: a pull begun before a failover may hang through it (until skopeo's
        timeout) and fail after later checks; one begun after the taker serves cannot."""
        pulls = zip(self.pull_starts, self.pulls.attempts, strict=False)
        return any(began >= t and ok for began, (_, ok) in list(pulls))

    def report(
        self, t_fault: float, missing_pushes: list[int], missing_rows: list[int]
    ) -> dict[str, Any]:
        """The failover's cost for the client, counted from the fault at ``t_fault``."""
        first_s, failed = self.first_pull(t_fault)
        return {
            "first_pull_s": first_s,
            "pulls_failed": failed,
            "pushes_acked": len(self.pushes.acked),
            "pushes_failed": sum(1 for _, ok in self.pushes.attempts if not ok),
            "pushes_missing": len(missing_pushes),
            "rows_committed": len(self.writes.acked),
            "rows_failed": sum(1 for _, ok in self.writes.attempts if not ok),
            "rows_missing": len(missing_rows),
        }


def first_good_pull(
    pulls: list[tuple[float, float, bool]], t_fault: float
) -> tuple[float | None, int]:
    """Of ``pulls`` (began, ended, ok) in the order they ran: the seconds from ``t_fault`` to
    the end of the first successful pull after the failover's outage, i.e. after the last
    failed pull that began after ``t_fault`` (None: no success since), and how many pulls that
    began after ``t_fault`` failed.  A pull that still succeeds on the old master after the
    fault (its registry runs until the demotion stops it, or until the VIP moves) does not
    end the outage that follows it."""
    after = [(at, ok) for began, at, ok in pulls if began >= t_fault]
    failed = [i for i, (_, ok) in enumerate(after) if not ok]
    start = failed[-1] + 1 if failed else 0
    first_ok = next((at for at, ok in after[start:] if ok), None)
    return (None if first_ok is None else round(first_ok - t_fault, 3)), len(failed)


def pg_recovery(docker_host: str) -> dict[str, Any]:
    """PostgreSQL's last start in harbor-db on that node, from its log (``docker logs -t``):
    whether it ran crash recovery, and the seconds from "starting PostgreSQL" to "ready to
    accept connections"."""
    rc, out = run(["docker", "-H", docker_host, "logs", "-t", "harbor-db"], 30, tail=0)
    if rc != 0:
        return {"recovery": None, "start_to_ready_s": None, "error": out[-200:]}
    lines = out.splitlines()
    starts = [i for i, line in enumerate(lines) if "starting PostgreSQL" in line]
    if not starts:
        return {"recovery": None, "start_to_ready_s": None, "error": "no start in the log"}
    last = lines[starts[-1] :]
    ready = next((line for line in last if "ready to accept connections" in line), None)
    recovery = any("automatic recovery in progress" in line for line in last)

    def stamp(line: str) -> float:
        iso = line.split(" ", 1)[0]
        whole, _, frac = iso.rstrip("Z").partition(".")
        t = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
        return t + float("0." + (frac or "0"))

    took = None if ready is None else round(stamp(ready) - stamp(last[0]), 3)
    return {"recovery": recovery, "start_to_ready_s": took}
