"""The load balancer's configs rendered from the settings: HAProxy's (TCP passthrough, source
persistence, each node checked on harbor-ha's /serving at its own port, the detection time
in a comment and on stderr) and keepalived's in front of the nodes (a VIP tracking HAProxy,
or an LVS whose real servers are checked by HTTP_GET on /serving).  `haproxy -c` and
`keepalived -t` on these renders: tests/integration/balancer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harbor_ha.haproxy import detection_s, render_haproxy
from harbor_ha.keepalived.balancer import lvs_detection_s, render_front
from harbor_ha.keepalived.errors import RenderError
from harbor_ha.settings import Settings, load_settings
from tests.unit.test_cli import cli

ROOT = Path(__file__).resolve().parents[2]
LB = {
    "HARBOR_HA_VIP": "10.0.0.200/24",
    "HARBOR_HA_INTERFACE": "eth0",
    "HARBOR_HA_MODE": "replicated",
    "HARBOR_HA_NODE_NAME": "lb-1",
}


def lb(**env: str) -> Settings:
    nodes = {"HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12:9200,c=[fd00::13]"}
    return load_settings(None, {**LB, **nodes, **env})


def test_haproxy_servers_and_checks() -> None:
    """One server per node on Harbor's port, checked on harbor-ha's port (the entry's or
    http_port) with GET /serving expecting 200; TCP mode with source persistence."""
    text = render_haproxy(lb(HARBOR_HA_HTTP_PORT="9111"))
    assert "    server a 10.0.0.11:443 check port 9111" in text
    assert "    server b 10.0.0.12:443 check port 9200" in text
    assert "    server c [fd00::13]:443 check port 9111" in text
    for line in (
        "    mode tcp", "    stick on src", "    balance source",
        "    stick-table type ipv6 size 1m expire 1800s",
        "    http-check send meth GET uri /serving", "    http-check expect status 200",
        "    default-server inter 1000ms fall 2 rise 3", "    timeout check 1000ms",
    ):  # fmt: skip
        assert line in text.splitlines(), line
    assert "shutdown-sessions" not in text  # a drained node's uploads finish


def test_detection_follows_the_check_settings() -> None:
    """fall x inter + timeout check, in the config's comment; the LVS's figure likewise."""
    s = lb(
        HARBOR_HA_LB_CHECK_INTERVAL_S="0.5", HARBOR_HA_LB_CHECK_FALL="3",
        HARBOR_HA_LB_CHECK_TIMEOUT_S="2",
    )  # fmt: skip
    assert detection_s(s) == 3.5
    assert "one that stops answering within 3.5 s" in render_haproxy(s)
    assert "default-server inter 500ms fall 3 rise 3" in render_haproxy(s)
    assert lvs_detection_s(s) == 7.5


def test_haproxy_needs_the_node_list() -> None:
    """Without HARBOR_HA_NODES there is nothing to balance: an error, and the CLI exits 2."""
    with pytest.raises(ValueError, match="HARBOR_HA_NODES is empty"):
        render_haproxy(load_settings(None, LB))
    r = cli("render-haproxy", env=LB)
    assert r.returncode == 2 and "cannot render haproxy.cfg" in r.stderr


def test_cli_prints_the_drain_figure(tmp_path: Path) -> None:
    """render-haproxy writes the file and tells, on stderr, how long a drain must wait."""
    out = tmp_path / "haproxy.cfg"
    env = {**LB, "HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12"}
    r = cli("render-haproxy", "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert "within 3 s: a node's drain must wait at least 3 s" in r.stderr
    assert out.read_text() == render_haproxy(load_settings(None, env))


def test_keepalived_lb_tracks_haproxy() -> None:
    """--for lb: the VIP's instance tracks the haproxy process with weight 0 (FAULT without
    it) and has no notify FIFO or track files of harbor-ha."""
    text = render_front(lb(), "lb")
    assert "vrrp_track_process harbor_ha_haproxy {\n    process haproxy\n    weight 0" in text
    assert "    track_process {\n        harbor_ha_haproxy\n    }" in text
    assert "notify_fifo" not in text and "track_file" not in text
    assert "        10.0.0.200/24 dev eth0" in text


def test_keepalived_lvs_checks_each_node() -> None:
    """--for lvs: a virtual_server on the VIP's address and Harbor's port, persistence, and a
    real_server per node whose HTTP_GET asks /serving for 200 on harbor-ha's port."""
    nodes = "a=10.0.0.11,b=10.0.0.12:9200,c=10.0.0.13"
    text = render_front(lb(HARBOR_HA_LVS_FORWARDING="NAT", HARBOR_HA_NODES=nodes), "lvs")
    assert "virtual_server 10.0.0.200 443 {" in text
    assert "    lb_kind NAT" in text and "    persistence_timeout 1800" in text
    block = text[text.index("real_server 10.0.0.12 443") :]
    block = block[: block.index("\n    }\n")]
    assert "path /serving" in block and "status_code 200" in block
    assert "connect_port 9200" in block and "retry 1" in block
    assert text.count("real_server ") == 3
    assert "track_process" not in text


def test_lvs_needs_the_node_list_of_ip_addresses_of_the_vips_family() -> None:
    """--for lvs without HARBOR_HA_NODES, with a DNS name, or with an IPv6 node behind an IPv4
    VIP (keepalived would skip that real server): a RenderError naming the problem."""
    with pytest.raises(RenderError, match="HARBOR_HA_NODES is empty"):
        render_front(load_settings(None, LB), "lvs")
    with pytest.raises(RenderError, match="different address families"):
        render_front(lb(), "lvs")
    with pytest.raises(RenderError, match="must be an IP address"):
        render_front(lb(HARBOR_HA_NODES="a=10.0.0.11,b=harbor-b.example"), "lvs")


def test_lb_examples_are_current() -> None:
    """deploy/haproxy/*.conf|cfg are what the CLI renders from deploy/haproxy/lb-1.env."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-lb-examples"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
