"""krbd conformance of fencing: two VM nodes, the product's Ceph and Filesystem adapters.

vm-a is the old owner, vm-b the taker; both map with the product's Ceph.map on the
real krbd (``rbd device map -o exclusive``), fence with Ceph.fence (blocklist), and
run the storage steps on /dev/rbdN.
"""

from __future__ import annotations

from typing import Any

from tests.vm.conftest import VmLab


def _by_step(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in records}


def _not_acknowledged(error: str) -> bool:
    """A fenced owner's write fails: EIO at first, EROFS once ext4 has aborted its journal
    (krbd: ~5 s after the fence, at the next journal commit)."""
    return "Input/output error" in error or "Read-only file system" in error


def _owner(lab: VmLab, image: str) -> None:
    """vm-a maps, formats, checks, mounts and writes: a live owner with the lock."""
    r = lab.steps("vm-a", lab.settings(image, "vm-a"), "map", "format", "fsck", "mount", "write",
                  "probe")  # fmt: skip
    assert all(x["ok"] for x in r), r
    assert r[2]["value"] == 0  # fsck of a fresh filesystem: clean
    assert r[5]["value"] is True


def test_map_while_live_owner_holds_the_lock_is_classified(lab: VmLab) -> None:
    """A map while a live owner holds the exclusive lock fails with the named LockHeld error
    (krbd: EROFS, 'peer will not release lock'), not a generic map failure, and leaves the
    taker with nothing mapped; the owner is unaffected."""
    image = lab.image("lock-held")
    _owner(lab, image)
    r = _by_step(lab.steps("vm-b", lab.settings(image, "vm-b"), "map", "device"))
    assert not r["map"]["ok"]
    assert r["map"]["error_type"] == "LockHeld", r["map"]
    assert "Read-only file system" in r["map"]["error"] or "(30)" in r["map"]["error"]
    assert r["device"]["value"] is None
    a = _by_step(lab.steps("vm-a", lab.settings(image, "vm-a"), "write", "probe"))
    assert a["write"]["ok"] and a["probe"]["value"] is True, a


def test_fence_then_map_fails_the_old_owner(lab: VmLab) -> None:
    """Fence (blocklist the live owner) then map succeeds on the taker; the old owner's write
    is not acknowledged (fsync EIO, or EROFS once ext4 aborted) and its storage probe
    (read_probe, O_DIRECT) fails: no page-cache false positive. A plain unmap of its
    still-mounted device is classified as busy; the product's unmap (plain, then -o force)
    removes it; its unmount and guard work. The taker's fsck
    accepts the old owner's journal (exit 0 or 1), mounts and writes."""
    image = lab.image("fence-map")
    _owner(lab, image)
    b = _by_step(lab.steps("vm-b", lab.settings(image, "vm-b"), "fence", "map"))
    assert b["fence"]["ok"] and len(b["fence"]["value"]) == 1, b
    assert b["fence"]["value"][0].startswith(lab.vms["vm-a"].ip + ":")
    assert b["map"]["ok"] and b["map"]["value"].startswith("/dev/rbd"), b
    a = lab.steps(
        "vm-a", lab.settings(image, "vm-a"), "write", "probe", "unmap_plain", "unmap", "device",
        "unmount", "guarded",
    )  # fmt: skip
    ar = _by_step(a)
    assert not ar["write"]["ok"] and _not_acknowledged(ar["write"]["error"]), a
    assert ar["probe"] == {**ar["probe"], "ok": True, "value": False}, a
    assert not ar["unmap_plain"]["ok"], a
    assert ar["unmap_plain"]["error_type"] == "DeviceBusy", a
    assert ar["unmap"]["ok"] and ar["device"]["value"] is None, a
    assert ar["unmount"]["ok"] and ar["guarded"]["value"] is True, a
    t = _by_step(
        lab.steps(
            "vm-b",
            lab.settings(image, "vm-b"),
            "fsck",
            "mount",
            "write",
            "unmount",
            "guarded",
            "unmap",
            "device",
        )
    )
    assert t["fsck"]["ok"] and t["fsck"]["value"] in (0, 1), t
    assert all(t[k]["ok"] for k in ("mount", "write", "unmount", "unmap")), t
    assert t["guarded"]["value"] is True and t["device"]["value"] is None, t


def test_plain_unmap_after_fencing_works_once_unmounted(lab: VmLab) -> None:
    """After it was fenced, the old owner unmounts and a plain unmap (no force) succeeds:
    krbd only reports 'failed to unlock header: -108', the device goes."""
    image = lab.image("fence-unmap")
    _owner(lab, image)
    b = _by_step(lab.steps("vm-b", lab.settings(image, "vm-b"), "fence", "map"))
    assert b["fence"]["ok"] and b["map"]["ok"], b
    a = _by_step(lab.steps("vm-a", lab.settings(image, "vm-a"), "unmount", "unmap_plain",
                           "device"))  # fmt: skip
    assert a["unmount"]["ok"] and a["unmap_plain"]["ok"], a
    assert a["device"]["value"] is None, a
