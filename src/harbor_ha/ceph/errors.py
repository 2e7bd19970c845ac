"""The Ceph adapter's errors: one name per way a command can fail."""

from __future__ import annotations


class CephError(Exception):
    """Base of the Ceph adapter's errors."""


class CephUnreachable(CephError):
    """No monitor answered within the timeout (or the cluster connection failed)."""


class CephPermissionDenied(CephError):
    """The Ceph user lacks a capability (or its key is wrong)."""


class ImageNotFound(CephError):
    """The pool or the image does not exist."""


class CephBlocklisted(CephError):
    """This client is blocklisted (EBLOCKLISTED / ESHUTDOWN): it must stop and unmap."""


class FenceError(CephError):
    """Fencing could not be completed (bad address, or watchers still present at the deadline)."""


class DeviceBusy(CephError):
    """The device is in use (EBUSY, 16): krbd refuses a plain unmap of a mounted /dev/rbdN."""


class MapFailed(CephError):
    """`rbd device map` failed or its result could not be verified."""


class LockHeld(MapFailed):
    """The map failed because a live peer holds the image's exclusive lock.

    krbd answers a ``-o exclusive`` map (and, since 6.1, a plain rw map) of an
    image whose lock a live client holds with EROFS (30) after ~2 s; its kernel
    log says "peer will not release lock".  The peer must be fenced first.
    """


class UnmapFailed(CephError):
    """The image is still mapped after unmap and forced unmap."""
