"""The storage side of the failover scenarios on the real krbd, with the product's adapters:
a paused owner and a live owner (its daemon crashed) are fenced; their writes are not
acknowledged afterwards, no acknowledged record is lost, the taker's filesystem is clean."""

from __future__ import annotations

from typing import Any

from tests.vm.conftest import VmLab
from tests.vm.test_krbd_fencing import _not_acknowledged


def _by_step(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in records}


def _takeover(lab: VmLab, image: str) -> dict[str, dict[str, Any]]:
    t = _by_step(
        lab.steps("vm-b", lab.settings(image, "vm-b"), "fence", "map", "fsck", "mount", "records")
    )
    assert all(x["ok"] for x in t.values()), t
    assert t["fsck"]["value"] in (0, 1), t
    return t


def _clean_on_taker(lab: VmLab, image: str, device: str) -> None:
    """The taker unmounts; `e2fsck -fn` of the device finds nothing to fix."""
    u = lab.steps("vm-b", lab.settings(image, "vm-b"), "unmount")
    assert u[0]["ok"], u
    check = lab.run("vm-b", ["e2fsck", "-fn", device], timeout_s=180)
    assert check.rc == 0, check


def test_paused_owner_is_fenced_and_its_writes_are_not_acknowledged(lab: VmLab) -> None:
    """Owner vm-a is frozen (QMP stop) after acknowledged writes; vm-b fences it and maps:
    the taker sees every acknowledged record (the last one equals vm-a's last acknowledged);
    after vm-a resumes (QMP cont) its next write is not acknowledged (fsync fails); the
    taker's filesystem is clean (e2fsck -fn)."""
    image = lab.image("paused")
    a = lab.steps("vm-a", lab.settings(image, "vm-a"), "map", "format", "mount", "write", "write")
    assert all(x["ok"] for x in a), a
    acked = [a[3]["value"], a[4]["value"]]
    vm = lab.vms["vm-a"]
    vm.qmp("stop")
    try:
        t = _takeover(lab, image)
    finally:
        vm.qmp("cont")
    assert t["records"]["value"] == acked, (t, acked)
    after = lab.steps("vm-a", lab.settings(image, "vm-a"), "write", "probe")
    assert not after[0]["ok"], after
    assert after[0]["error_type"] == "OSError", after
    assert after[1]["value"] is False, after
    _clean_on_taker(lab, image, t["map"]["value"])


def test_live_owner_is_fenced_and_no_acknowledged_record_is_lost(lab: VmLab) -> None:
    """Owner vm-a keeps its kernel client alive (its daemon crashed); vm-b fences it and maps:
    every record vm-a had acknowledged is there, vm-a's next write fails, and the taker's
    filesystem is clean (e2fsck -fn)."""
    image = lab.image("live")
    a = lab.steps("vm-a", lab.settings(image, "vm-a"), "map", "format", "mount", "write", "write")
    assert all(x["ok"] for x in a), a
    t = _takeover(lab, image)
    assert t["records"]["value"] == [a[3]["value"], a[4]["value"]], t
    after = lab.steps("vm-a", lab.settings(image, "vm-a"), "write")
    assert not after[0]["ok"] and _not_acknowledged(after[0]["error"]), after
    _clean_on_taker(lab, image, t["map"]["value"])
