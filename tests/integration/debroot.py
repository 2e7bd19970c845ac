"""Session fixtures: the .deb built from this repository, and a clean Debian root with it
installed by apt (the root: lab/debian_root.py, cached; each session unpacks a fresh copy).

Import the fixtures where they are used (``from tests.integration.debroot import ...``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deb.build import build
from lab import debian_root

NEEDS = ("debootstrap", "dpkg-deb", "unshare", "chroot")
NODE_ENV = """\
HARBOR_HA_NODE_NAME=node-a
HARBOR_HA_INTERFACE=eth0
HARBOR_HA_VIP=10.0.0.100/24
HARBOR_HA_CEPH_POOL=rbd
HARBOR_HA_CEPH_IMAGE=harbor
HARBOR_HA_VRRP_UNICAST_SRC_IP=10.0.0.11
HARBOR_HA_VRRP_UNICAST_PEERS=10.0.0.12
"""
"""A node's settings file: the four required settings, its name and its unicast peer."""


def unavailable() -> str | None:
    """Why the package tests cannot run here, or None."""
    import os

    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot)"
    missing = [n for n in NEEDS if shutil.which(n) is None]
    if missing or not Path("/usr/bin/python3").is_file():
        return f"needs {', '.join(missing) or '/usr/bin/python3'}"
    return None


@pytest.fixture(scope="session")
def harbor_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """harbor-ha's .deb, built now from the working tree (``python -m deb.build``)."""
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_root(tmp_path_factory: pytest.TempPathFactory, harbor_deb: Path) -> Iterator[Path]:
    """A clean bookworm root (minbase + systemd) where ``apt-get install ./harbor-ha.deb``
    installed the package and what it Depends on (no Recommends)."""
    root = debian_root.unpack(tmp_path_factory.mktemp("debroot") / "root")
    shutil.copy2(harbor_deb, root / "tmp-harbor-ha.deb")
    try:
        debian_root.apt_install(root, "/tmp-harbor-ha.deb")
        (root / "tmp-harbor-ha.deb").unlink()
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
