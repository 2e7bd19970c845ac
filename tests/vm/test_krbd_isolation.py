"""A node cut from Ceph on the real krbd: the product's map options bound its I/O and its
demotion steps end within their bounds (clean or failed, never hung)."""

from __future__ import annotations

import time

import pytest

from lab.vm import net
from tests.vm.conftest import VmLab

RUNNER_KILL_WAIT_S = 5.0
"""harbor_ha.runner.KILL_WAIT_S: the runner's wait for a killed child before it gives up."""
MARGIN_S = 30.0
"""Python start (~7 s under TCG) plus the adapter's own rbd device list calls."""


# Worst case by the bounds asserted below: fsync 2x60 s, unmount 60+35 s, unmap 90+35 s, then
# the peer's fence/map/unmap and a second map (~60 s under TCG): about 400 s.
@pytest.mark.timeout(540)
def test_cut_node_gets_eio_and_its_unmount_unmap_end_within_bounds(lab: VmLab) -> None:
    """With the product's default rbd_map_options (osd_request_timeout=60), a node cut from
    Ceph gets EIO from fsync after about the timeout instead of hanging in D state; then
    the product's unmount and unmap steps each return within their bounds (plus the python
    start), each either succeeding or failing with a named error: the daemon's demotion can
    end (clean or FENCED_SELF) and does not hang. After the peer fenced it and the link
    healed, the node maps again at the first attempt (noshare: no blocklisted client reused)."""
    image = lab.image("cut")
    s = lab.settings(image, "vm-a", unmount_timeout_s=60.0, unmap_timeout_s=90.0)
    osd_timeout = float(s.rbd_map_options.split("osd_request_timeout=")[1].split(",")[0])
    r = lab.steps("vm-a", s, "map", "format", "mount", "write")
    assert all(x["ok"] for x in r), r
    vm = lab.vms["vm-a"]
    net.cut(lab.bridge_ns, vm.tap)
    try:
        cut_at = time.monotonic()
        w = lab.run(
            "vm-a",
            ["dd", "if=/dev/urandom", f"of={s.mountpoint}/after-cut", "bs=64k", "count=4",
             "conv=fsync", "status=none"],
            timeout_s=osd_timeout * 4,
        )  # fmt: skip
        print(f"\nfsync after cut: rc {w.rc} in {w.duration_s:.1f} s: {w.stderr.strip()}")
        assert not w.timed_out, "fsync hung past 4x osd_request_timeout"
        assert w.rc != 0 and "Input/output error" in w.stderr, w
        assert osd_timeout * 0.8 <= w.duration_s <= osd_timeout * 2, w.duration_s
        d = lab.steps("vm-a", s, "unmount", "unmap", "device")
        print(f"demotion steps while cut ({time.monotonic() - cut_at:.1f} s after the cut): {d}")
        print("the product's log lines:\n" + lab.last_output)
        bounds = {"unmount": s.unmount_timeout_s, "unmap": s.unmap_timeout_s}
        for rec in d[:2]:
            assert rec["duration_s"] <= bounds[rec["step"]] + RUNNER_KILL_WAIT_S + MARGIN_S, rec
            assert rec["ok"] or rec["error_type"] in ("UnmountFailed", "UnmapFailed"), rec
    finally:
        net.heal(lab.bridge_ns, vm.tap)
    # The peer takes over (fences the cut node's lingering client); later the healed node
    # maps again: with noshare it gets a fresh client, not the blocklisted one (ESHUTDOWN).
    t = lab.steps("vm-b", lab.settings(image, "vm-b"), "fence", "map", "unmap")
    assert all(x["ok"] for x in t), t
    again = lab.steps("vm-a", lab.settings(lab.image("cut-next"), "vm-a"), "map", "unmap")
    assert all(x["ok"] for x in again), again
