"""The load balancer's configs as the real programs read them: `haproxy -c` on
render-haproxy's output for clusters of 2 and 3 nodes, `keepalived -t` on render-keepalived
--for lb|lvs in a network namespace of the test's own (keepalived needs the VRRP interface to
exist; this machine's kernel has no IPVS, and `-t` does not need it: it parses the
virtual_server and its checkers all the same, as the broken render shows)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harbor_ha.haproxy import render_haproxy
from harbor_ha.keepalived.balancer import Front, render_front
from harbor_ha.settings import Settings, load_settings
from lab.netns import delete_netns, make_netns

pytestmark = pytest.mark.integration

NODES = {
    2: "a=10.0.0.11,b=10.0.0.12",
    3: "a=10.0.0.11,b=10.0.0.12:9200,c=10.0.0.13",
}


def lb_settings(nodes: int) -> Settings:
    return load_settings(
        None,
        {
            "HARBOR_HA_VIP": "10.0.0.200/24", "HARBOR_HA_INTERFACE": "eth0",
            "HARBOR_HA_MODE": "replicated", "HARBOR_HA_NODE_NAME": "lb-1",
            "HARBOR_HA_NODES": NODES[nodes],
        },
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("nodes", [2, 3])
def test_haproxy_accepts_the_render(nodes: int, tmp_path: Path) -> None:
    """`haproxy -c -f` finds the rendered config valid, with no warning."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy(lb_settings(nodes)))
    r = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
def test_haproxy_check_fails_a_broken_render(tmp_path: Path) -> None:
    """The same check refuses a render whose health check was broken (it can fail)."""
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy(lb_settings(2)).replace("check port", "check porte"))
    r = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace of the test's own with an interface eth0 (one end of a veth pair), deleted
    afterwards, also when the test fails."""
    name = make_netns("hhlb-")
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
            check=True, timeout=30,
        )  # fmt: skip
        yield name
    finally:
        delete_netns(name)


def keepalived_t(netns: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "keepalived", "-t", "-f", str(conf)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("front", ["lb", "lvs"])
@pytest.mark.parametrize("nodes", [2, 3])
def test_keepalived_accepts_the_render(
    front: Front, nodes: int, netns: str, tmp_path: Path
) -> None:
    """`keepalived -t -f` (2.2.7) accepts the VIP in front of HAProxy and the LVS with its
    HTTP_GET checkers, without IPVS in the kernel."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render_front(lb_settings(nodes), front))
    r = keepalived_t(netns, conf)
    assert r.returncode == 0, r.stdout + r.stderr


def test_keepalived_parses_the_lvs_checkers(netns: str, tmp_path: Path) -> None:
    """`keepalived -t` reads the real_servers' HTTP_GET (a bad status code and port there are
    errors): the test above checks the checkers, not only the VRRP part."""
    conf = tmp_path / "keepalived.conf"
    text = render_front(lb_settings(3), "lvs")
    conf.write_text(text.replace("status_code 200", "status_code twohundred"))
    r = keepalived_t(netns, conf)
    assert r.returncode != 0 and "Invalid HTTP_GET status code" in r.stdout + r.stderr
