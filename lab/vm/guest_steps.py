"""Run the product's own storage adapters inside a lab VM; print what each step did as JSON.

    python -m tests.vm.guest_steps STEP [STEP ...]   (Settings as JSON on stdin)

Runs in the guest (the VM tier's agent starts it with the checkout as cwd), on
the real krbd with the production ``rbd`` CLI: harbor_ha.ceph.Ceph and
harbor_ha.filesystem.Filesystem with a ProcessRunner, nothing stood in.  One
process runs several steps because a python start costs ~7 s under TCG.  Each
step prints one JSON object: {"step", "ok", "value" | "error", "error_type",
"duration_s"}.  A failed step does not stop the later ones.

Steps: map, unmap, device, mapped, watchers, fence, format, fsck, mount,
unmount, guarded, probe (Filesystem.read_probe), blkid (probe_filesystem),
write (append + fsync one record to the records file under the mountpoint; returns it),
records (the records file's lines), unmap_plain (one
plain ``rbd device unmap`` through the adapter's classifier, no force).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from harbor_ha.ceph import Ceph
from harbor_ha.filesystem import Filesystem
from harbor_ha.runner import ProcessRunner
from harbor_ha.settings import Settings


async def _write(fs: Filesystem) -> str:
    """Append one record and fsync it; the record, once acknowledged (fsync returned)."""
    record = f"{time.time():.6f}"
    fd = os.open(fs.mountpoint / "records", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{record}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


NEEDS_DEVICE = {"unmap_plain", "format", "fsck", "mount", "probe", "blkid"}
"""Steps given the image's /dev path, looked up (rbd device list) before their timer starts."""


async def step(name: str, ceph: Ceph, fs: Filesystem, s: Settings, device: str | None) -> Any:
    if name == "map":
        return await ceph.map(s.map_timeout_s)
    if name == "unmap":
        return await ceph.unmap(s.unmap_timeout_s)
    if name == "device":
        return await ceph.device_for_image()
    if name == "mapped":
        return [d.__dict__ for d in await ceph.mapped()]
    if name == "watchers":
        return [w.address for w in await ceph.watchers()]
    if name == "fence":
        return await ceph.fence()
    if name == "unmount":
        return (await fs.unmount(s.unmount_timeout_s, s.unmount_term_grace_s)).attempts
    if name == "guarded":
        return fs.is_guarded()
    if name == "unmap_plain":
        return await ceph._run(
            ceph.rbd_argv("device", "unmap", str(device)), f"rbd device unmap {device}", None
        )
    if name == "records":
        return (fs.mountpoint / "records").read_text().split()
    if name == "write":
        return await asyncio.wait_for(_write(fs), s.command_timeout_s)
    if device is None:
        raise RuntimeError("image not mapped on this node")
    if name == "format":
        return await fs.format_new(device, confirm=True)
    if name == "fsck":
        return (await fs.fsck(device, s.fsck_timeout_s)).code
    if name == "mount":
        return await fs.mount(device, s.mount_timeout_s)
    if name == "probe":
        return await fs.read_probe(device, s.command_timeout_s)
    if name == "blkid":
        return await fs.probe_filesystem(device)
    raise ValueError(f"unknown step {name}")


async def main(steps: list[str]) -> None:
    settings = Settings(**json.loads(sys.stdin.read()))
    runner = ProcessRunner()
    ceph, fs = Ceph(settings, runner), Filesystem(settings, runner)
    for name in steps:
        record: dict[str, Any] = {"step": name}
        started = time.monotonic()
        try:
            device = await ceph.device_for_image() if name in NEEDS_DEVICE else None
            started = time.monotonic()
            value = await step(name, ceph, fs, settings, device)
            record.update(ok=True, value=value if not hasattr(value, "returncode") else None)
        except Exception as exc:
            record.update(ok=False, error=str(exc)[-600:], error_type=type(exc).__name__)
        record["duration_s"] = round(time.monotonic() - started, 3)
        print(json.dumps(record, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
