#!/usr/bin/python3
"""rbd — TEST STAND-IN FOR KRBD (NOT krbd, NOT for production).

This machine's kernel has no rbd (krbd) module, so the real
``rbd device map`` fails ("failed to load rbd kernel module").  This script
stands in for the ``rbd`` CLI in harbor-ha's tests: it implements the krbd
subcommands with rbd-fuse + a loop device, and passes EVERY other subcommand
(info, status, lock, create, ...) to the real /usr/bin/rbd unchanged (exec).

Implemented (output shaped like the real rbd's):
  rbd [common args] device map [-o exclusive[,...]] [--exclusive] POOL/IMAGE   (also `rbd map`)
      starts `rbd-fuse -f <common args> -p POOL -r IMAGE MNT` in its own session
      (it outlives this command, like a kernel mapping), `losetup -f --show MNT/IMAGE`,
      prints the loop device (/dev/loopN).  With `exclusive` it takes the image's
      exclusive lock at map time: it reads sector 0 and writes the same bytes back
      (O_DIRECT + fsync; librbd acquires the lock on the first write), then checks
      with `rbd lock ls` that the lock owner is this mapping's rbd-fuse; if not, the
      map fails like krbd: "rbd: map failed: (30) Read-only file system".
      Differences from krbd, documented: rbd-fuse (librbd) hands the lock over
      cooperatively when another client requests it (krbd -o exclusive refuses);
      the sector-0 rewrite is a read-modify-write of 512 bytes nobody else may
      write while we hold the lock (ext4 does not use them).
  rbd [common args] device unmap [-o force] DEV|POOL/IMAGE   (also `rbd unmap`)
      without force: fails with (16) Device or resource busy if DEV is mounted.
      Teardown survives a fenced (poisoned) FUSE mount: losetup -d (the
      loop is found with `losetup -l -n -O NAME,BACK-FILE`; nothing under the FUSE
      mount is ever stat'ed), `timeout 10 fusermount -u MNT`; if still mounted
      (busy: forced unmap; or poisoned): SIGTERM rbd-fuse by its recorded PID (it
      closes the image: watch and lock released) and wait 3 s, then write 1 to
      /sys/fs/fuse/connections/N/abort (if fusectl is mounted), kill -9 it,
      `umount -l MNT`.
  rbd [common args] device list|ls [--format json]   (also `rbd showmapped`)
  Blocklisting, as krbd: once this mapping's client address (its image watcher, found at map
      time) is in the OSD blocklist, every further I/O fails with EIO.  rbd-fuse's librbd may
      instead hang the I/O forever (seen: a fenced ext4 whose journal commit never returned,
      so its umount never did); a watcher process per mapping (`rbd _watch ID`, own session)
      asks the monitors for the blocklist every WATCH_INTERVAL_S through one librados
      connection and, when the address is listed, kill -9's rbd-fuse: the FUSE connection
      closes, pending and later requests fail, the loop device returns EIO.  It exits when
      rbd-fuse is gone or the mapping is torn down.
  rbd _teardown ID   (test-fixture helper: force teardown of state entry ID, even half-made)

Common args passed to rbd-fuse and to the internal real-rbd calls:
  --id/--user, -n/--name, -m/--mon-host, -c/--conf, --keyring/-k, --cluster.

State: one directory per mapping under $HHTEST_RBD_STATE (default
/run/harbor-ha-test-rbd): give each simulated node its own directory.  Files:
spec, pool, image, owner (PID of the map command), fuse_pid, loop, mapped (done).
Runs with the system /usr/bin/python3 (stdlib only), outside any venv.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REAL_RBD = os.environ.get("HHTEST_REAL_RBD", "/usr/bin/rbd")
RBD_FUSE = os.environ.get("HHTEST_RBD_FUSE", "/usr/bin/rbd-fuse")
STATE = Path(os.environ.get("HHTEST_RBD_STATE", "/run/harbor-ha-test-rbd"))
CMD_TIMEOUT_S = 20.0
MOUNT_WAIT_S = 20.0
WATCH_INTERVAL_S = 1.0

COMMON_WITH_VALUE = {
    "--id",
    "--user",
    "-n",
    "--name",
    "-m",
    "--mon-host",
    "--mon_host",
    "-c",
    "--conf",
    "--keyring",
    "-k",
    "--cluster",
}
OURS = {
    ("device", "map"),
    ("device", "unmap"),
    ("device", "list"),
    ("device", "ls"),
    ("map",),
    ("unmap",),
    ("showmapped",),
    ("_teardown",),
    ("_watch",),
}


def err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def run(argv: list[str], timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout} s")


# ------------------------------------------------------------------ parsing
class Args:
    def __init__(self, argv: list[str]) -> None:
        self.common: list[str] = []
        self.options: list[str] = []
        self.fmt = "plain"
        self.pool: str | None = None
        self.image: str | None = None
        self.pos: list[str] = []
        i = 0
        while i < len(argv):
            a = argv[i]
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if a in COMMON_WITH_VALUE:
                self.common += [a, nxt]
                i += 2
                continue
            if "=" in a and a.split("=", 1)[0] in COMMON_WITH_VALUE:
                self.common.append(a)
            elif a in ("-o", "--options"):
                self.options += [o for o in nxt.split(",") if o]
                i += 2
                continue
            elif a.startswith("--options="):
                self.options += [o for o in a.split("=", 1)[1].split(",") if o]
            elif a == "--format":
                self.fmt = nxt
                i += 2
                continue
            elif a.startswith("--format="):
                self.fmt = a.split("=", 1)[1]
            elif a in ("-p", "--pool"):
                self.pool = nxt
                i += 2
                continue
            elif a == "--image":
                self.image = nxt
                i += 2
                continue
            elif a in ("-t", "--device-type"):
                i += 2
                continue
            elif a == "--exclusive":
                self.options.append("exclusive")
            elif a.startswith("-") and a != "-":
                pass  # --pretty-format, --no-progress, ...: harmless here
            else:
                self.pos.append(a)
            i += 1

    def command(self) -> tuple[str, ...] | None:
        for n in (2, 1):
            if tuple(self.pos[:n]) in OURS:
                return tuple(self.pos[:n])
        return None


def parse_spec(spec: str, pool: str | None) -> tuple[str, str, str]:
    """POOL/[NS/]IMAGE -> (pool, namespace, image)."""
    parts = spec.split("/")
    if len(parts) == 1:
        return pool or "rbd", "", parts[0]
    if len(parts) == 2:
        return parts[0], "", parts[1]
    return parts[0], parts[1], parts[2]


# ------------------------------------------------------------- mount facts
def mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [line.split() for line in f]


def unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def fuse_mount(mnt: Path) -> list[str] | None:
    for fields in mountinfo():
        if unescape(fields[4]) == str(mnt):
            return fields
    return None


def device_mounted(dev: str) -> bool:
    """Is DEV (a block device) mounted anywhere? By major:minor, without touching the FUSE fs."""
    try:
        st = os.stat(dev)
    except OSError:
        return False
    mm = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return any(fields[2] == mm for fields in mountinfo())


def loops() -> dict[str, str]:
    """loop device -> backing file, from `losetup -l -n -O NAME,BACK-FILE` (no stat on it)."""
    res = run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"])
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out[parts[0]] = parts[1].strip()
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_is_our_fuse(pid: int, mnt: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmd) and cmd[0].endswith(b"rbd-fuse") and str(mnt).encode() in cmd


# -------------------------------------------------------------------- state
def entries() -> list[Path]:
    if not STATE.is_dir():
        return []
    return sorted(
        (p for p in STATE.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def read(entry: Path, name: str) -> str:
    try:
        return (entry / name).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def new_entry() -> Path:
    STATE.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        entry = STATE / str(n)
        try:
            entry.mkdir()
            return entry
        except FileExistsError:
            n += 1


def gc() -> None:
    """Tear down half-made mappings whose map command died (killed by a timeout)."""
    for entry in entries():
        if (entry / "mapped").exists():
            continue
        owner = read(entry, "owner")
        if owner.isdigit() and pid_alive(int(owner)):
            continue
        teardown(entry)


def listed() -> list[dict[str, str]]:
    out = []
    for entry in entries():
        if not (entry / "mapped").exists():
            continue
        out.append(
            {
                "id": entry.name,
                "pool": read(entry, "pool"),
                "namespace": read(entry, "namespace"),
                "name": read(entry, "image"),
                "snap": "-",
                "device": read(entry, "loop"),
            }
        )
    return out


# ------------------------------------------------------------------ teardown
def kill_fuse(pid: int | None, mnt: Path) -> bool:
    """kill -9 our rbd-fuse (checked by cmdline) if alive; True once it is gone."""
    if pid is None:
        return True
    if pid_alive(pid) and pid_is_our_fuse(pid, mnt):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def teardown(entry: Path) -> bool:
    """Remove one mapping, surviving a poisoned FUSE mount. True when fully gone."""
    mnt = entry / "mnt"
    image = read(entry, "image")
    back = str(mnt / image) if image else None
    stop_watcher(entry)
    # 1. detach the loop device(s) backed by our image file (found without stat'ing it)
    for dev, file in loops().items():
        if back is not None and (file == back or file.startswith(back + " ")):
            run(["losetup", "-d", dev], timeout=10)
    # 2. unmount the FUSE fs politely (rbd-fuse then exits by itself)
    pid_s = read(entry, "fuse_pid")
    pid = int(pid_s) if pid_s.isdigit() else None
    if fuse_mount(mnt) is not None:
        run(["timeout", "10", "fusermount", "-u", str(mnt)], timeout=15)
    fields = fuse_mount(mnt)
    if fields is None:
        deadline = time.monotonic() + 5
        while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        # 3. busy (forced) or poisoned: ask rbd-fuse to exit (SIGTERM: it closes the
        # image, releasing its watch and lock, like krbd's forced unmap); if it does
        # not within 3 s, abort the FUSE connection, kill -9 it, lazy umount.
        # fusectl may not be mounted (we do not mount it: global state); killing
        # rbd-fuse aborts the connection too (its /dev/fuse descriptor closes).
        if pid is not None and pid_alive(pid) and pid_is_our_fuse(pid, mnt):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        minor = fields[2].split(":")[1]
        if Path("/sys/fs/fuse/connections").is_mount():
            try:
                Path(f"/sys/fs/fuse/connections/{minor}/abort").write_text("1")
            except OSError as exc:
                err(f"rbd: abort of FUSE connection {minor} failed: {exc}")
        kill_fuse(pid, mnt)
        run(["umount", "-l", "--no-canonicalize", str(mnt)], timeout=15)
    if not kill_fuse(pid, mnt):
        err(f"rbd: rbd-fuse pid {pid} did not exit")
        return False
    if fuse_mount(mnt) is not None:
        err(f"rbd: {mnt} is still mounted")
        return False
    names = ("mapped", "loop", "fuse_pid", "owner", "spec", "pool", "namespace", "image",
             "client_addr", "common", "watch_pid", "watch_error")  # fmt: skip
    for name in names:
        (entry / name).unlink(missing_ok=True)
    for d in (mnt, entry):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            err(f"rbd: cannot remove {d}: {exc}")
            return False
    return True


# ------------------------------------------------------- blocklist watcher
def pid_is_our_watcher(pid: int, entry: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"_watch" in cmd and str(entry).encode() in cmd


def stop_watcher(entry: Path) -> None:
    """kill -9 the mapping's blocklist watcher (checked by cmdline) and wait for it."""
    pid_s = read(entry, "watch_pid")
    if not pid_s.isdigit():
        return
    pid = int(pid_s)
    if pid_alive(pid) and pid_is_our_watcher(pid, entry):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def start_watcher(entry: Path) -> None:
    """The mapping's blocklist watcher, in its own session (it outlives the map command)."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "_watch", str(entry)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (entry / "watch_pid").write_text(str(proc.pid))


def rados_handle(common: list[str]) -> object:
    """A librados handle configured from the rbd common args (connected by the caller)."""
    import rados  # type: ignore[import-not-found]  # python3-rados, system Python

    conffile, name, conf = "", None, {}
    i = 0
    while i < len(common):
        a = common[i]
        if "=" in a and a.split("=", 1)[0] in COMMON_WITH_VALUE:
            a, value = a.split("=", 1)
            i += 1
        else:
            value = common[i + 1] if i + 1 < len(common) else ""
            i += 2
        if a in ("-c", "--conf"):
            conffile = value
        elif a in ("--id", "--user"):
            name = f"client.{value}"
        elif a in ("-n", "--name"):
            name = value
        elif a in ("-m", "--mon-host", "--mon_host"):
            conf["mon_host"] = value
        elif a in ("-k", "--keyring"):
            conf["keyring"] = value
    conf["rados_mon_op_timeout"] = "5"
    return rados.Rados(conffile=conffile, name=name, conf=conf)


def blocklisted(handle: object, addr: str) -> bool | None:
    """Is ``addr`` in the OSD blocklist?  None when the monitors did not answer."""
    cmd = json.dumps({"prefix": "osd blocklist ls", "format": "json"})
    ret, out, _ = handle.mon_command(cmd, b"", timeout=5)  # type: ignore[attr-defined]
    if ret != 0:
        return None
    # Newer monitors answer two arrays, one after the other: the addresses, then the ranges.
    text, pos, decoder = out.decode(errors="replace").strip(), 0, json.JSONDecoder()
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return None
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if isinstance(value, list) and any(
            isinstance(e, dict) and e.get("addr") == addr for e in value
        ):
            return True
    return False


def do_watch(entry: Path) -> int:
    """Kill -9 the mapping's rbd-fuse once its client address is blocklisted (module doc)."""
    addr = read(entry, "client_addr")
    pid_s = read(entry, "fuse_pid")
    if not addr or not pid_s.isdigit():
        return 0
    pid = int(pid_s)
    mnt = entry / "mnt"
    handle: object | None = None
    while pid_alive(pid) and (entry / "mapped").exists():
        try:
            if handle is None:
                handle = rados_handle(json.loads(read(entry, "common") or "[]"))
                handle.connect(timeout=10)  # type: ignore[attr-defined]
            if blocklisted(handle, addr):
                if pid_is_our_fuse(pid, mnt):
                    os.kill(pid, signal.SIGKILL)
                return 0
        except Exception as exc:  # the monitors away, a half-made handle: try again later
            (entry / "watch_error").write_text(f"{type(exc).__name__}: {exc}\n")
            handle = None
            time.sleep(5)
        time.sleep(WATCH_INTERVAL_S)
    return 0


# ---------------------------------------------------------------- commands
def real_json(args: Args, *cmd: str) -> object:
    res = run([REAL_RBD, *args.common, *cmd, "--format", "json"])
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip() or f"rbd {' '.join(cmd)}: exit {res.returncode}")
    return json.loads(res.stdout)


def watcher_addrs(args: Args, spec: str) -> set[str]:
    data = real_json(args, "status", spec)
    assert isinstance(data, dict)
    return {str(w["address"]) for w in data.get("watchers", [])}


def do_map(args: Args, rest: list[str]) -> int:
    if not rest and args.image is None:
        err("rbd: image name was not specified")
        return 22
    pool, ns, image = parse_spec(rest[0] if rest else str(args.image), args.pool)
    spec = f"{pool}/{ns}/{image}" if ns else f"{pool}/{image}"
    exclusive = "exclusive" in args.options
    gc()
    # Fails like the real rbd (missing image, no access) before anything is started.
    res = run([REAL_RBD, *args.common, "status", spec, "--format", "json"])
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        return res.returncode
    before = {str(w["address"]) for w in json.loads(res.stdout).get("watchers", [])}

    entry = new_entry()
    (entry / "owner").write_text(str(os.getpid()))
    for name, value in (("spec", spec), ("pool", pool), ("namespace", ns), ("image", image)):
        (entry / name).write_text(value)
    mnt = entry / "mnt"
    mnt.mkdir()
    argv = [RBD_FUSE, "-f", *args.common, "-p", pool]
    if ns:
        argv += ["--namespace", ns]
    argv += ["-r", image, str(mnt)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (entry / "fuse_pid").write_text(str(proc.pid))

    def fail(msg: str, code: int) -> int:
        err(msg)
        teardown(entry)
        return code

    deadline = time.monotonic() + MOUNT_WAIT_S
    while fuse_mount(mnt) is None:
        if proc.poll() is not None:
            return fail(
                f"rbd: rbd-fuse exited with {proc.returncode}\nrbd: map failed: (5) "
                "Input/output error",
                5,
            )
        if time.monotonic() > deadline:
            return fail(
                "rbd: rbd-fuse did not mount in time\nrbd: map failed: (110) Connection timed out",
                110,
            )
        time.sleep(0.05)
    res = run(["losetup", "-f", "--show", str(mnt / image)])
    if res.returncode != 0:
        return fail(
            f"rbd: losetup failed: {res.stderr.strip()}\nrbd: map failed: (5) Input/output error", 5
        )
    dev = res.stdout.strip()
    (entry / "loop").write_text(dev)
    try:
        ours = watcher_addrs(args, spec) - before
    except (RuntimeError, ValueError) as exc:
        return fail(f"rbd: {exc}\nrbd: map failed: (5) Input/output error", 5)
    if exclusive:
        try:
            fd = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
            try:
                buf = mmap.mmap(-1, 4096)  # page-aligned buffer for O_DIRECT
                os.preadv(fd, [buf], 0)
                os.pwritev(fd, [buf], 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            locks = real_json(args, "lock", "ls", spec)
            owners = {str(lk["address"]) for lk in locks} if isinstance(locks, list) else set()
            if len(ours) != 1 or owners != ours:
                raise RuntimeError(f"lock owners {sorted(owners)}, this mapping {sorted(ours)}")
        except (OSError, RuntimeError, ValueError) as exc:
            return fail(
                f"rbd: failed to acquire exclusive lock: {exc}\nrbd: sysfs write failed"
                "\nrbd: map failed: (30) Read-only file system",
                30,
            )
    if len(ours) == 1:
        (entry / "client_addr").write_text(next(iter(ours)))
        (entry / "common").write_text(json.dumps(args.common))
    (entry / "mapped").write_text(entry.name)
    if len(ours) == 1:
        start_watcher(entry)
    print(dev)
    return 0


def find_entry(target: str, pool: str | None) -> Path | None:
    for entry in entries():
        if not (entry / "mapped").exists():
            continue
        if target in (read(entry, "loop"), entry.name):
            return entry
        p, ns, image = parse_spec(target, pool)
        if (p, ns, image) == (read(entry, "pool"), read(entry, "namespace"), read(entry, "image")):
            return entry
    return None


def do_unmap(args: Args, rest: list[str]) -> int:
    if not rest:
        err("rbd: unmap requires either image name or device path")
        return 22
    entry = find_entry(rest[0], args.pool)
    if entry is None:
        err(
            f"rbd: {rest[0]}: not a mapped image or snapshot\nrbd: unmap failed: (22) "
            "Invalid argument"
        )
        return 22
    force = "force" in args.options
    dev = read(entry, "loop")
    if not force and dev and device_mounted(dev):
        err("rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy")
        return 16
    if not teardown(entry):
        err("rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy")
        return 16
    return 0


def do_list(args: Args) -> int:
    gc()
    devs = listed()
    if args.fmt in ("json", "xml"):
        print(json.dumps(devs, separators=(",", ":")))
        return 0
    if not devs:
        return 0
    cols = ["id", "pool", "namespace", "image", "snap", "device"]
    rows = [[d["id"], d["pool"], d["namespace"], d["name"], d["snap"], d["device"]] for d in devs]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    for row in [cols, *rows]:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return 0


def main(argv: list[str]) -> int:
    args = Args(argv)
    cmd = args.command()
    if cmd is None:
        os.execv(REAL_RBD, [REAL_RBD, *argv])
    rest = args.pos[len(cmd) :]
    if cmd in (("device", "map"), ("map",)):
        return do_map(args, rest)
    if cmd in (("device", "unmap"), ("unmap",)):
        return do_unmap(args, rest)
    if cmd == ("_watch",):
        return do_watch(Path(rest[0])) if rest else 22
    if cmd == ("_teardown",):
        entry = STATE / rest[0] if rest else None
        if entry is None or not entry.is_dir():
            return 0
        return 0 if teardown(entry) else 1
    return do_list(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
