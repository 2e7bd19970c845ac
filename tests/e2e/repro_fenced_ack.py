"""Reproduction (not a test; no harbor-ha): are fsync-acknowledged writes of a node that gets
blocklisted still on the image afterwards, with the krbd stand-in (rbd-fuse + loop)?

ext4 on the stand-in; a writer appends N, fsyncs, then acknowledges N in a file outside; the
client is blocklisted mid-stream; a fresh mapping (as the peer would make) checks that every
acknowledged N is on the image.  Measured here: with librbd's default cache the last
acknowledged record was missing in 2 of 4 rounds; with ``rbd cache = false`` 0 of 6.  That is
why the lab turns the cache off (lab/twonode.py: no_client_cache); krbd has no such cache.

Run as root from the repository:  .venv/bin/python -m tests.e2e.repro_fenced_ack [cache-off] [N]
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.ceph import CephCluster, run, start_cluster, stop_cluster
from lab.mappings import KRBD_STANDIN, standin_env

WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
afd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
n = int(sys.argv[3])
while True:
    os.write(fd, b"%d\n" % n); os.fsync(fd)
    os.write(afd, b"%d\n" % n); os.fsync(afd)
    n += 1
"""


def numbers(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def main(argv: list[str]) -> int:
    cache_off = "cache-off" in argv
    rounds = int(next((a for a in argv if a.isdigit()), "4"))
    ip = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    work = Path(tempfile.mkdtemp(prefix="hhe2e-repro-", dir="/var/tmp"))
    c: CephCluster = start_cluster(work / "ceph", None, ip, image_size_mb=64)
    mnt, ack = work / "mnt", work / "ack"
    mnt.mkdir()
    common = ["-c", str(c.conf), "--id", "harbor", "--keyring", str(c.harbor_keyring)]
    lost = 0

    def mapdev(tag: str) -> tuple[str, dict[str, str]]:
        env = standin_env(c.node_state_dir(tag))
        argv = [str(KRBD_STANDIN), *common, "device", "map", "--exclusive", "rbd/harbor"]
        return run(argv, env=env).stdout.strip(), env

    def unmap(dev: str, env: dict[str, str]) -> None:
        argv = [str(KRBD_STANDIN), *common, "device", "unmap", "-o", "force", dev]
        run(argv, env=env, check=False)

    try:
        if cache_off:
            c.conf.write_text(c.conf.read_text().rstrip("\n") + "\nrbd cache = false\n")
        dev, env = mapdev("init")
        run(["mkfs.ext4", "-q", dev])
        unmap(dev, env)
        for r in range(rounds):
            dev, env = mapdev(f"w{r}")
            run(["fsck", "-t", "ext4", "-p", dev], check=False)
            run(["mount", "-t", "ext4", dev, str(mnt)])
            start = max(numbers(ack), default=0) + 1
            w = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(mnt / "log"), str(ack), str(start)],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0 + random.random())
            status = c.admin("status", "rbd/harbor", "--format", "json", tool="rbd").stdout
            for watcher in json.loads(status)["watchers"]:
                c.admin("osd", "blocklist", "add", watcher["address"])
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
            run(["umount", "-l", str(mnt)], check=False)
            unmap(dev, env)
            dev, env = mapdev(f"r{r}")  # a fresh mapping, as the peer makes
            fsck = run(["fsck", "-t", "ext4", "-p", dev], check=False)
            run(["mount", "-t", "ext4", "-o", "ro", dev, str(mnt)])
            missing = sorted({n for n in numbers(ack) if n >= start} - set(numbers(mnt / "log")))
            lost += bool(missing)
            print(
                f"cache {'off' if cache_off else 'on'} round {r}: acknowledged up to "
                f"{max(numbers(ack))}, fsck rc {fsck.returncode}, missing {missing}",
                flush=True,
            )
            run(["umount", str(mnt)])
            unmap(dev, env)
    finally:
        run(["umount", "-l", str(mnt)], check=False)
        stop_cluster(c)
        if str(work) not in Path("/proc/self/mountinfo").read_text():
            shutil.rmtree(work, ignore_errors=True)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
