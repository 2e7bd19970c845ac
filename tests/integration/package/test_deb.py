"""The .deb on a clean Debian root: apt installs it with its dependencies, and the installed
command reads a settings file, checks the node and renders keepalived's config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deb.build import version
from lab.debian_root import chroot
from tests.integration.debroot import NODE_ENV as ENV
from tests.integration.debroot import harbor_deb, installed_root, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]
__all__ = ["harbor_deb", "installed_root"]


PACKAGED = (
    "lib/systemd/system/harbor-ha.service",
    "usr/lib/tmpfiles.d/harbor-ha.conf",
    "usr/share/doc/harbor-ha/examples/harbor-ha.env.example",
    "usr/share/harbor-ha/prometheus/harbor-ha.rules.yml",
    "usr/share/harbor-ha/grafana/harbor-ha.json",
    "usr/share/man/man8/harbor-ha.8.gz",
    "usr/share/doc/harbor-ha/copyright",
)


def test_the_package_installs_its_files_and_runs(installed_root: Path) -> None:
    """apt resolved the package's Depends on a minbase root; the unit, tmpfiles, env example,
    alert rules, dashboard and man page are in place; the packaged unit runs
    /usr/sbin/harbor-ha, which is the venv's command and prints the package's version."""
    root = installed_root
    for rel in PACKAGED:
        assert (root / rel).is_file(), rel
    status = chroot(root, "dpkg-query", "-W", "-f", "${Status} ${Version}", "harbor-ha").stdout
    assert status == f"install ok installed {version()}"
    unit = (root / "lib/systemd/system/harbor-ha.service").read_text()
    assert "ExecStart=/usr/sbin/harbor-ha run" in unit
    assert (root / "etc/systemd/system/multi-user.target.wants/harbor-ha.service").is_symlink()
    assert chroot(root, "harbor-ha", "--version").stdout.strip() == f"harbor-ha {version()}"
    page = gzip.decompress((root / "usr/share/man/man8/harbor-ha.8.gz").read_bytes()).decode()
    assert page.startswith(".TH HARBOR\\-HA 8")
    assert ".SS switchover" in page and "\\-\\-wait" in page


def test_check_and_render_keepalived_on_the_installed_node(installed_root: Path) -> None:
    """With /etc/harbor-ha/harbor-ha.env written, ``harbor-ha check --json`` reads it (no
    configuration error, exit 3 = problems found) and names what this bare node lacks (the
    Recommends: rbd, keepalived, docker); ``render-keepalived`` writes a config with the
    VIP and the unicast peer from the file; a bad key is exit 2 naming it."""
    root = installed_root
    (root / "etc/harbor-ha/harbor-ha.env").write_text(ENV)
    try:
        done = chroot(root, "harbor-ha", "check", "--json", check=False)
        assert done.returncode == 3, (done.stdout, done.stderr)
        report = json.loads(done.stdout)
        text = json.dumps(report)
        for missing in ("'rbd'", "'keepalived'", "'docker'"):
            assert f"executable {missing} not found" in text, report
        conf = chroot(root, "harbor-ha", "render-keepalived", "-o", "-").stdout
        assert "10.0.0.100/24" in conf and "10.0.0.12" in conf and "vrrp_instance" in conf
        (root / "etc/harbor-ha/harbor-ha.env").write_text(ENV + "HARBOR_HA_VIPP=1\n")
        bad = chroot(root, "harbor-ha", "check", check=False)
        assert bad.returncode == 2 and "HARBOR_HA_VIPP" in bad.stderr, bad
    finally:
        (root / "etc/harbor-ha/harbor-ha.env").unlink()
