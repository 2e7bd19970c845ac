"""`harbor-ha check` in the replicated mode: the credentials file the replication watch and
`harbor-ha replication setup` read is checked (missing: a warning; wrong: a failure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harbor_ha.commands.preflight import replication_credentials
from harbor_ha.replication.plan import Peer
from harbor_ha.settings import Settings, load_settings
from tests.unit.test_replication_setup import write_credentials

A = Peer("a", "https://10.0.0.11", "repl", "secret-a", False)
B = Peer("b", "https://10.0.0.12", "repl", "secret-b", False)


def settings(path: Path, node: str = "a") -> Settings:
    return load_settings(None, {
        "HARBOR_HA_MODE": "replicated", "HARBOR_HA_VIP": "10.0.0.100/24",
        "HARBOR_HA_INTERFACE": "eth0", "HARBOR_HA_NODE_NAME": node,
        "HARBOR_HA_REPLICATION_CREDENTIALS_FILE": str(path),
    })  # fmt: skip


def test_a_missing_file_is_a_warning(tmp_path: Path) -> None:
    """No credentials file: WARN naming it (the daemon runs, nothing watches replication)."""
    found = replication_credentials(settings(tmp_path / "replication.ini"))
    assert [level for level, _ in found] == ["WARN"] and "replication.ini" in found[0][1]


@pytest.mark.skipif(os.geteuid() != 0, reason="the credentials file must be root's")
def test_a_good_file_names_this_node_and_its_peer(tmp_path: Path) -> None:
    """A root-only file with a section for this node: OK, naming the peer and its URL."""
    path = write_credentials(tmp_path / "replication.ini", A, B)
    found = replication_credentials(settings(path, "b"))
    assert found == [("OK", f"replication: {path} names this node [b] and its peer [a] "
                            "(https://10.0.0.11)")]  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the credentials file must be root's")
def test_a_loose_file_or_one_without_this_node_fails(tmp_path: Path) -> None:
    """Readable by others than root, or no section for this node's name: FAIL, saying why."""
    loose = write_credentials(tmp_path / "loose.ini", A, B, mode=0o644)
    found = replication_credentials(settings(loose))
    assert found[0][0] == "FAIL" and "0644" in found[0][1]
    other = write_credentials(tmp_path / "other.ini", A, B)
    found = replication_credentials(settings(other, "c"))
    assert found[0][0] == "FAIL" and "no section [c]" in found[0][1]
