"""The cluster's settings: HARBOR_HA_NODES parsed and checked with clear errors, the peers
derived from it or from the two-node modes' peer_http_url, the default paths of Harbor's
files."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.settings import SettingsError, load_settings
from harbor_ha.settings.cluster import ClusterNode, parse_node

BASE = {
    "HARBOR_HA_VIP": "10.0.0.100/24",
    "HARBOR_HA_INTERFACE": "eth0",
    "HARBOR_HA_MODE": "replicated",
    "HARBOR_HA_NODE_NAME": "a",
}


def problems(**env: str) -> list[str]:
    with pytest.raises(SettingsError) as err:
        load_settings(None, {**BASE, **env})
    return err.value.problems


@pytest.mark.parametrize(
    ("entry", "node"),
    [
        ("a=10.0.0.11", ClusterNode("a", "10.0.0.11")),
        (" b = 10.0.0.12:9200 ", ClusterNode("b", "10.0.0.12", 9200)),
        ("c=[fd00::3]:9300", ClusterNode("c", "fd00::3", 9300)),
        ("d=fd00::4", ClusterNode("d", "fd00::4")),
        ("node-e.x=harbor-e.example.org", ClusterNode("node-e.x", "harbor-e.example.org")),
    ],
)
def test_one_entry(entry: str, node: ClusterNode) -> None:
    """name=host[:port] with IPv4, bracketed or bare IPv6 and DNS names."""
    assert parse_node(entry) == node


def test_the_list_and_the_peers() -> None:
    """The list keeps its order; the peers are the other nodes, at their harbor-ha HTTP
    listener (the entry's port, else http_port)."""
    s = load_settings(
        None, {**BASE, "HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12:9200 c=[fd00::3]",
               "HARBOR_HA_HTTP_PORT": "9111"},
    )  # fmt: skip
    assert [n.name for n in s.nodes] == ["a", "b", "c"]
    assert s.peers == [("b", "http://10.0.0.12:9200"), ("c", "http://[fd00::3]:9111")]


def test_a_two_node_list_gives_the_two_node_modes_their_peer() -> None:
    """A list of two nodes is the two-node modes' peer (peer_url, read by reconcile, the
    lease's view of the peer, switchover --wait); the single URL still is; three nodes or a
    machine outside the list have no single peer."""
    two = load_settings(None, {**BASE, "HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12"})
    assert two.peer_url == "http://10.0.0.12:9105"
    url = load_settings(None, {**BASE, "HARBOR_HA_PEER_HTTP_URL": "http://10.0.0.12:9105"})
    assert url.peer_url == "http://10.0.0.12:9105"
    three = load_settings(None, {**BASE, "HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12,c=x"})
    outside = load_settings(None, {**BASE, "HARBOR_HA_NODES": "b=10.0.0.12,c=10.0.0.13"})
    assert three.peer_url == "" and outside.peer_url == ""


def test_a_machine_that_is_not_a_node_has_every_node_as_peer() -> None:
    """A load balancer's settings list the nodes without itself: all of them are peers."""
    s = load_settings(None, {**BASE, "HARBOR_HA_NODES": "b=10.0.0.12,c=10.0.0.13"})
    assert [name for name, _ in s.peers] == ["b", "c"]


def test_the_peer_url_is_the_one_element_list() -> None:
    """Without the list, the two-node modes' peer_http_url is the only peer (its name unknown
    until its /status is read); with neither, there is none."""
    s = load_settings(None, {**BASE, "HARBOR_HA_PEER_HTTP_URL": "http://10.0.0.12:9105/"})
    assert s.peers == [(None, "http://10.0.0.12:9105")]
    assert load_settings(None, BASE).peers == []


@pytest.mark.parametrize(
    ("nodes", "wanted"),
    [
        ("a=10.0.0.11", "HARBOR_HA_NODES names one node (a): list them all"),
        ("a=10.0.0.11,a=10.0.0.12", "node name 'a=10.0.0.12' given twice"),
        ("a=10.0.0.11,b=10.0.0.11", "node address 'b=10.0.0.11' given twice"),
        ("a=10.0.0.11,b", "'b': want name=host[:port]"),
        ("a=10.0.0.11,b=10.0.0.12:70000", "port '70000' is not 1-65535"),
        ("a=10.0.0.11,b=not_a_host!", "neither an IP address nor a host name"),
        ("a=10.0.0.11,b/x=10.0.0.12", "node name 'b/x' must be letters"),
    ],
)
def test_bad_lists_name_the_problem(nodes: str, wanted: str) -> None:
    """Each malformed list is refused with one line naming the entry and what is wrong."""
    found = problems(HARBOR_HA_NODES=nodes)
    assert any(wanted in p for p in found), found
    assert all(p.startswith("HARBOR_HA_NODE") for p in found), found


def test_list_and_peer_url_are_exclusive() -> None:
    """The list and the single peer URL together are refused: which would be the peers?"""
    found = problems(
        HARBOR_HA_NODES="a=10.0.0.11,b=10.0.0.12", HARBOR_HA_PEER_HTTP_URL="http://10.0.0.12:9105"
    )
    assert found == [
        "set HARBOR_HA_NODES or HARBOR_HA_PEER_HTTP_URL, not both: with the list, the peers "
        "are the list's other nodes"
    ]


def test_harbor_paths_default_beside_compose_file_and_under_the_mountpoint() -> None:
    """Harbor's generated config defaults to common/config beside the compose file, its
    secrets to secret/ under the data volume; both can be set, absolute only."""
    s = load_settings(
        None, {**BASE, "HARBOR_HA_COMPOSE_FILE": "/srv/harbor/docker-compose.yml",
               "HARBOR_HA_MOUNTPOINT": "/mnt/harbor"},
    )  # fmt: skip
    assert s.harbor_config_path == Path("/srv/harbor/common/config")
    assert s.harbor_secret_path == Path("/mnt/harbor/secret")
    s = load_settings(
        None, {**BASE, "HARBOR_HA_HARBOR_CONFIG_DIR": "/etc/h", "HARBOR_HA_HARBOR_SECRET_DIR": "/s"}
    )
    assert (s.harbor_config_path, s.harbor_secret_path) == (Path("/etc/h"), Path("/s"))
    assert any("must be an absolute path" in p for p in problems(HARBOR_HA_HARBOR_SECRET_DIR="s"))
