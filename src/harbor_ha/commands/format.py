"""`harbor-ha format`: explicit operator formatting of a NEW image (safety rule 3)."""

from __future__ import annotations

from harbor_ha.ceph import Ceph
from harbor_ha.filesystem import Filesystem
from harbor_ha.runner import ProcessRunner
from harbor_ha.settings import Settings


async def format_image(settings: Settings, *, confirm: bool) -> str:
    """Make the filesystem on a NEW image (safety rule 3): refuses if the image is in use,
    already holds a filesystem, or the device does not read cleanly."""
    runner = ProcessRunner()
    ceph = Ceph(settings, runner)
    fs = Filesystem(settings, runner)
    if not confirm:
        raise ValueError("pass --yes-i-know-this-image-is-new to format")
    watchers = await ceph.watchers()
    if watchers:
        raise ValueError(f"image {settings.image_spec} is in use by {watchers}")
    device = await ceph.map(settings.map_timeout_s)
    try:
        await fs.format_new(device, confirm=confirm)
    finally:
        await ceph.unmap(settings.unmap_timeout_s)
    return f"formatted {settings.image_spec} ({device}) as {settings.fs_type}"
