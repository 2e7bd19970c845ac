"""krbd conformance of the product's Ceph adapter: map, unmap, device list on the real rbd."""

from __future__ import annotations

from tests.vm.conftest import VmLab


def test_map_exclusive_is_idempotent_and_listed(lab: VmLab) -> None:
    """Ceph.map maps with -o exclusive on the real krbd and returns /dev/rbdN; a second map
    returns the same device; Ceph.mapped parses the real `rbd device list`; unmap twice is
    fine and leaves nothing mapped."""
    image = lab.image("map-idem")
    s = lab.settings(image, "vm-a")
    r = lab.steps("vm-a", s, "map", "map", "mapped", "watchers", "unmap", "unmap", "device")
    assert [x["ok"] for x in r] == [True] * 7, r
    device = r[0]["value"]
    assert device.startswith("/dev/rbd") and r[1]["value"] == device
    rows = [d for d in r[2]["value"] if d["name"] == image]
    assert rows == [
        {
            "id": rows[0]["id"],
            "pool": "rbd",
            "namespace": "",
            "name": image,
            "snap": "-",
            "device": device,
        }
    ]
    assert [a.split(":")[0] for a in r[3]["value"]] == [lab.vms["vm-a"].ip]
    assert r[6]["value"] is None
