"""The shape of the Harbor deployment a node serves (the setting HARBOR_HA_MODE)."""

from __future__ import annotations

import enum


class Mode(enum.StrEnum):
    """Each mode has its own table in the machine (harbor_ha.machine.modes) over a subset of
    the states and events, and its own required settings."""

    RBD = "rbd"  # one exclusive Ceph RBD image, failed over between two nodes
    REPLICATED = "replicated"  # two Harbors, each on its own storage, replicating; the VIP moves
    SHARED = "shared"  # N Harbors on one shared filesystem (or object storage) behind an LB
