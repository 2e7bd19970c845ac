"""Pre-created containers, measured on a real dockerd: may a standby keep Harbor's containers
CREATED (not started), and what does it save at promotion?

Run as root: ``.venv/bin/python -m bench.precreate_probe [--runs 3]``.  It starts its own
containerd + dockerd in its own netns (prefix hhbpc-), renders the Harbor-shaped project with a
data directory that is EMPTY and ``chattr +i`` (what an unmounted, guarded mountpoint looks
like on a standby), and measures/checks:

1. ``up --no-start`` on the guarded, unmounted data dir: does it succeed, does it write
   anything under the data dir, is any container running afterwards?
2. dockerd restart (SIGTERM, start again) with the created ``restart: always`` containers:
   does any of them start?  (Watched for 15 s after dockerd answers again.)
3. ``up -d`` from nothing vs ``up -d`` on already created containers (the promotion's compose
   call), median of --runs each, with the data dir writable (= mounted).
Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from bench.shape_dockerd import shape_on_own_dockerd
from lab.dockerd import restart_dockerd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with shape_on_own_dockerd("hhbpc-") as lab_:
        d, shape, c = lab_.dockerd, lab_.shape, lab_.compose_run

        def running() -> list[str]:
            label = "label=com.docker.compose.project=harbor"
            return d.docker("ps", "-q", "--filter", label).split()

        def created() -> list[str]:
            return d.docker(
                "ps", "-aq", "--filter", "label=com.docker.compose.project=harbor",
                "--filter", "status=created",
            ).split()  # fmt: skip

        # 1. create on the guarded, unmounted (empty, immutable) data dir
        for p in shape.data_dir.iterdir():
            shutil.rmtree(p)
        subprocess.run(["chattr", "+i", str(shape.data_dir)], check=True)
        took = c("up", "--no-start", "--remove-orphans")
        print(
            f"1. up --no-start on guarded empty data dir: ok in {took:.2f} s; created "
            f"{len(created())}, running {len(running())}, data dir entries "
            f"{sorted(p.name for p in shape.data_dir.iterdir())}"
        )
        # 2. dockerd restart with created restart:always containers
        restart_dockerd(d)
        seen: set[str] = set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen.update(running())
            time.sleep(0.2)
        print(
            f"2. after a dockerd restart, watched 15 s: {len(seen)} container(s) ran; "
            f"still created: {len(created())}"
        )
        subprocess.run(["chattr", "-i", str(shape.data_dir)], check=True)
        # 3. up -d from nothing vs from created
        fresh, pre, create_t = [], [], []
        for _ in range(args.runs):
            c("down", "-t", "1", "--remove-orphans")
            fresh.append(c("up", "-d", "--remove-orphans"))
            c("down", "-t", "1", "--remove-orphans")
            create_t.append(c("up", "--no-start", "--remove-orphans"))
            pre.append(c("up", "-d", "--remove-orphans"))
        c("down", "-t", "1", "--remove-orphans")
        print(
            f"3. up -d from nothing: median {statistics.median(fresh):.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in fresh)}); "
            f"from created: median {statistics.median(pre):.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in pre)}); "
            f"the standby's create itself: median {statistics.median(create_t):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
