"""What does Harbor's start order cost a promotion?  ``compose up -d`` of the data services
(their ``depends_on`` levels, one after the other) against starting the same stopped
containers all at once, measured on a real dockerd.

Run as root: ``.venv/bin/python -m bench.start_order_probe [--runs 5]``.  It starts its own
containerd + dockerd in its own netns (prefix hhbso-), renders the Harbor-shaped project with a
writable data dir (as on a mounted master), brings it up, and then, --runs times, stops the six
data-bearing services (registry, registryctl, postgresql, redis, core, jobservice: the stateless
log, portal and proxy keep running, as on a warm standby) and starts them again, alternately:

- ``levels``: ``compose up -d`` (what the start step runs: registry, registryctl, postgresql and
  redis, then core, then jobservice);
- ``at once``: one ``docker start`` per container, all six started together.

Each figure is the wall time until the command(s) returned, i.e. every container running.  It
prints both medians and the saving.  Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench.shape_dockerd import shape_on_own_dockerd

DATA_SERVICES = ("registry", "registryctl", "postgresql", "redis", "core", "jobservice")
DATA_CONTAINERS = ("registry", "registryctl", "harbor-db", "redis", "harbor-core",
                   "harbor-jobservice")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with shape_on_own_dockerd("hhbso-") as lab_:
        d, c = lab_.dockerd, lab_.compose_run

        def at_once() -> float:
            t = time.monotonic()
            argvs = [["docker", "-H", d.host, "start", name] for name in DATA_CONTAINERS]
            quiet, piped = subprocess.DEVNULL, subprocess.PIPE
            procs = [subprocess.Popen(a, stdout=quiet, stderr=piped) for a in argvs]
            for p in procs:
                _, err = p.communicate(timeout=120)
                if p.returncode != 0:
                    raise RuntimeError(f"docker start: {err.decode().strip()}")
            return time.monotonic() - t

        c("up", "-d", "--remove-orphans")
        levels: list[float] = []
        together: list[float] = []
        for i in range(args.runs):
            for way in ("levels", "at once") if i % 2 == 0 else ("at once", "levels"):
                c("stop", "-t", "1", *DATA_SERVICES)
                time.sleep(1.0)
                if way == "levels":
                    levels.append(c("up", "-d", "--remove-orphans"))
                else:
                    together.append(at_once())
                time.sleep(2.0)
        lv, to = statistics.median(levels), statistics.median(together)
        print(f"compose: {lab_.compose}")
        print(f"levels (compose up -d): median {lv:.3f} s (runs "
              f"{', '.join(f'{x:.3f}' for x in levels)})")  # fmt: skip
        print(f"at once (docker start x6): median {to:.3f} s (runs "
              f"{', '.join(f'{x:.3f}' for x in together)})")  # fmt: skip
        print(f"start_levels_median_s={lv:.3f} start_at_once_median_s={to:.3f} "
              f"saving_s={lv - to:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
