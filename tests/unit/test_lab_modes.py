"""The lab's two modes of harbor-ha (lab/state.py MODES): what each node's env file holds, and
that a state.json written before the mode was recorded still loads (as an rbd lab), so
``lab.down`` can clean it up."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from lab.node import RBD_ONLY, node_env
from lab.state import LabState, NodeState


def two_nodes(tmp_path: Path, mode: str) -> LabState:
    st = LabState(prefix="p", subnet="10.98.0.0/24", labdir=str(tmp_path), advert_s=0.1,
                  vip="10.98.0.100/24", mode=mode)  # fmt: skip
    for name, address in (("a", "10.98.0.11"), ("b", "10.98.0.12")):
        st.nodes[name] = NodeState(name, f"p-{name}", address, str(tmp_path / name))
    return st


def env_of(st: LabState, name: str) -> dict[str, str]:
    text = node_env(st, st.nodes[name], "/usr/bin/docker-compose")
    return dict(line.split("=", 1) for line in text.splitlines())


def test_replicated_env_names_the_mode_and_no_ceph_lease_or_failsafe(tmp_path: Path) -> None:
    """The replicated mode's env file: HARBOR_HA_MODE=replicated, none of the settings the mode
    does not have (HARBOR_HA_CEPH_*, _RBD_BIN, _LEASE_*, _FAILSAFE_*), the replication watch's
    own (its credentials file, a 2 s look), everything else as the rbd lab's,
    HARBOR_HA_MOUNTPOINT included (Harbor's local data dir)."""
    rep, rbd = (
        env_of(two_nodes(tmp_path, "replicated"), "a"),
        env_of(two_nodes(tmp_path, "rbd"), "a"),
    )
    assert rep["HARBOR_HA_MODE"] == "replicated"
    assert not [k for k in rep if k.startswith(RBD_ONLY)]
    watch = {k: v for k, v in rep.items() if k.startswith("HARBOR_HA_REPLICATION_")}
    assert watch["HARBOR_HA_REPLICATION_CREDENTIALS_FILE"] == str(tmp_path / "replication.ini")
    assert float(watch["HARBOR_HA_REPLICATION_WATCH_INTERVAL_S"]) == 2.0
    assert {k: v for k, v in rbd.items() if not k.startswith(RBD_ONLY)} == {
        k: v for k, v in rep.items() if k != "HARBOR_HA_MODE" and k not in watch
    }
    assert rep["HARBOR_HA_MOUNTPOINT"] == str(tmp_path / "a" / "data")


def test_rbd_env_is_todays(tmp_path: Path) -> None:
    """The rbd mode's env file names no mode (the product's default) and keeps Ceph's, the
    lease's and the failsafe's settings."""
    rbd = env_of(two_nodes(tmp_path, "rbd"), "b")
    assert "HARBOR_HA_MODE" not in rbd
    for prefix in RBD_ONLY:
        assert [k for k in rbd if k.startswith(prefix)], prefix


def test_a_state_json_without_mode_loads_as_an_rbd_lab(tmp_path: Path) -> None:
    """A state.json written before the mode field existed loads, as mode "rbd"; a replicated
    lab's state round-trips."""
    old = asdict(two_nodes(tmp_path, "rbd"))
    del old["mode"]
    (tmp_path / "state.json").write_text(json.dumps(old))
    assert LabState.load(tmp_path).mode == "rbd"
    two_nodes(tmp_path, "replicated").save()
    loaded = LabState.load(tmp_path)
    assert loaded.mode == "replicated" and loaded.nodes["b"].address == "10.98.0.12"
