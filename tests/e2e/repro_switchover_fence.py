"""Reproduction (not a test): a planned `harbor-ha switchover` fences the old master while it
is still demoting.

The old master raised its fault file at once (the switchover rule of the machine at the
time), so keepalived moved the VIP and the peer's fence step blocklisted the old master's
Ceph client while the old master was still stopping Harbor / unmounting.  A writer on the
old master's mount (as Harbor would be) then got I/O errors instead of being stopped
cleanly, and the old node's unmount ran against a fenced device.  This prints, from both
nodes' logs, when the peer fenced and when the old
master had unmounted and unmapped, and how the writer ended.

Run as root from the repository:  .venv/bin/python -m tests.e2e.repro_switchover_fence
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lab
from lab import timeline
from lab.client import Client
from tests.e2e import helpers

LABDIR = Path("/var/tmp/hhe2e-repro-sw")


def main() -> int:
    st = lab.up(LABDIR, prefix="hhe2r")
    client = Client(st.client_netns, st.vip_address)
    try:
        m, b = helpers.wait_good(st, client, within_s=180)
        work = LABDIR / "records"
        work.mkdir()
        w = helpers.start_writer(st, m, work / "acked", work / "writer.err")
        helpers.wait_acked(work / "acked", 50)
        t0 = time.time()
        lab.harbor_ha(st.nodes[m], "switchover")
        helpers.wait_good(st, client, master=b)
        code = w.stop()
        fenced = [
            e.at - t0
            for e in timeline.read(st.nodes[b].log, b, t0)
            if e.msg == "fenced" or (e.msg == "step_end" and e.fields.get("step") == "fence")
        ]
        old = {
            str(e.fields.get("step")): e.at - t0
            for e in timeline.read(st.nodes[m].log, m, t0)
            if e.msg == "step_end"
        }
        print(f"switchover {m} -> {b}, times from the switchover command:")
        print(f"  {b} fenced / fence step done at: {[round(x, 3) for x in fenced]}")
        print(f"  {m} demotion steps done at: { {k: round(v, 3) for k, v in old.items()} }")
        print(f"  writer on {m}: exit {code} (1 = I/O error, -15 = stopped by the unmount step)")
        early = bool(fenced) and "unmap" in old and fenced[0] < old["unmap"]
        print("  => the peer fenced BEFORE the old master finished demoting" if early else "  ok")
        return 1 if early else 0
    finally:
        client.close()
        lab.down(LABDIR)


if __name__ == "__main__":
    sys.exit(main())
