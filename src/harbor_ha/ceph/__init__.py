"""Ceph: the RBD image, its watchers, fencing by blocklist, and the block device.

Safety rule 1 (docs/design.md): fence before map.  :meth:`Ceph.fence` blocklists
every other watcher of the image by its exact ``IP:PORT/NONCE`` address (never
a bare IP: on a shared host that would fence every client), with
``settings.blocklist_expire_s``, and waits until those watchers are gone; then
:meth:`Ceph.map` maps with ``-o exclusive``.

There is NO blocklist removal in this package, on purpose: the product never
runs ``ceph osd blocklist rm``.  The predecessor removed its entry right after
mounting, so a paused old master could write again (two ext4 mounts, data
corruption).  Entries lapse by themselves after ``blocklist_expire_s``.  Note
that the documented caps (``allow command "osd blocklist"``) would let the user
run ``rm``: the guarantee is this code, pinned by a test that records every argv.

Modules: :mod:`.argv` (command lines), :mod:`.parse` (CLI output, pure),
:mod:`.errors`, :mod:`.keyring` (the 0600 keyring written once at start),
:mod:`.access` (the preflight's permission proof), :mod:`.adapter` (:class:`Ceph`).
"""

from harbor_ha.ceph.access import ACCESS_PROBE_ADDRESS, ACCESS_PROBE_EXPIRE_S
from harbor_ha.ceph.adapter import FENCE_POLL_S, Ceph
from harbor_ha.ceph.errors import (
    CephBlocklisted,
    CephError,
    CephPermissionDenied,
    CephUnreachable,
    DeviceBusy,
    FenceError,
    ImageNotFound,
    LockHeld,
    MapFailed,
    UnmapFailed,
)
from harbor_ha.ceph.keyring import write_keyring
from harbor_ha.ceph.parse import (
    MappedDevice,
    Watcher,
    classify,
    is_client_address,
    parse_blocklist,
    parse_device_list,
    parse_lock_owners,
    parse_watchers,
)

__all__ = [
    "ACCESS_PROBE_ADDRESS",
    "ACCESS_PROBE_EXPIRE_S",
    "FENCE_POLL_S",
    "Ceph",
    "CephBlocklisted",
    "CephError",
    "CephPermissionDenied",
    "CephUnreachable",
    "DeviceBusy",
    "FenceError",
    "ImageNotFound",
    "LockHeld",
    "MapFailed",
    "MappedDevice",
    "UnmapFailed",
    "Watcher",
    "classify",
    "is_client_address",
    "parse_blocklist",
    "parse_device_list",
    "parse_lock_owners",
    "parse_watchers",
    "write_keyring",
]
