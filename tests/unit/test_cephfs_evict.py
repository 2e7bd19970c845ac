"""The shared mode's eviction of a dead node's CephFS sessions: the pure policy (a node long
unanswered is evicted once per outage, only while this node reaches a majority; a failed
eviction is retried later; a node answering again starts afresh), the MDS edge (sessions
picked by address, one `client evict` each, refusals and silence as errors) and the
settings that allow it."""

from __future__ import annotations

import json

import pytest

from harbor_ha.ceph.errors import CephError, CephUnreachable
from harbor_ha.ceph.mds import evict_sessions_from, sessions_from
from harbor_ha.cluster.evict import EvictPolicy
from harbor_ha.runner import CommandTimeout
from harbor_ha.settings import Settings, SettingsError, load_settings
from tests.fakes import FakeRunner, by_substring, example_settings, reply

NODES = ["a", "b", "c"]


def test_a_node_unanswered_past_the_limit_is_evicted_once() -> None:
    """c unanswered: nothing before after_s, one eviction at after_s (b answers: 2 of 3
    reachable), none again in the same outage once it succeeded."""
    p = EvictPolicy(NODES, "a", after_s=10)
    assert p.look({"b": True, "c": False}, now=100.0) == []
    assert p.look({"b": True, "c": False}, now=109.9) == []
    [d] = p.look({"b": True, "c": False}, now=110.0)
    assert (d.node, d.evict, d.down_s) == ("c", True, 10.0)
    assert "2 of 3 nodes reachable" in d.reason
    p.evicted("c")
    assert p.look({"b": True, "c": False}, now=200.0) == []


def test_a_node_cut_from_the_others_evicts_no_one() -> None:
    """Both others unanswered (1 of 3 reachable: this node may be the one cut off): one
    'hold' decision per node and outage, never an eviction."""
    p = EvictPolicy(NODES, "a", after_s=5)
    p.look({"b": False, "c": False}, now=0.0)
    held = p.look({"b": False, "c": False}, now=6.0)
    assert [(d.node, d.evict) for d in held] == [("b", False), ("c", False)]
    assert "may be the one cut off" in held[0].reason
    assert p.look({"b": False, "c": False}, now=60.0) == []


def test_half_of_an_even_cluster_is_no_majority() -> None:
    """Four nodes, two unanswered: 2 of 4 is no majority, so neither half evicts."""
    p = EvictPolicy(["a", "b", "c", "d"], "a", after_s=1)
    p.look({"b": True, "c": False, "d": False}, now=0.0)
    assert all(not d.evict for d in p.look({"b": True, "c": False, "d": False}, now=2.0))


def test_a_failed_eviction_is_tried_again_after_retry_s() -> None:
    """The MDS not answering: no new decision before retry_s, another eviction after."""
    p = EvictPolicy(NODES, "a", after_s=1, retry_s=10)
    p.look({"b": True, "c": False}, now=0.0)
    assert [d.evict for d in p.look({"b": True, "c": False}, now=1.0)] == [True]
    p.failed("c", now=1.0)
    assert p.look({"b": True, "c": False}, now=10.9) == []
    assert [d.evict for d in p.look({"b": True, "c": False}, now=11.0)] == [True]


def test_a_node_that_answers_again_starts_a_new_outage() -> None:
    """Evicted, back (answers), then dead again: the new outage waits after_s anew and is
    evicted again."""
    p = EvictPolicy(NODES, "a", after_s=3)
    p.look({"b": True, "c": False}, now=0.0)
    p.look({"b": True, "c": False}, now=3.0)
    p.evicted("c")
    assert p.look({"b": True, "c": True}, now=50.0) == []
    assert p.look({"b": True, "c": False}, now=51.0) == []
    assert [d.node for d in p.look({"b": True, "c": False}, now=54.0)] == ["c"]


SESSIONS = json.dumps([
    {"id": 4101, "inst": "client.4101 v1:10.0.0.13:0/3271"},
    {"id": 4102, "inst": "client.4102 10.0.0.13:0/99"},
    {"id": 4103, "inst": "client.4103 v1:10.0.0.1:0/5"},
    {"id": 4104, "inst": "client.4104 v1:110.0.0.13:0/6"},
    {"id": 4105, "inst": "client.4105 v1:[fd00::13]:0/7"},
])  # fmt: skip


def test_sessions_are_picked_by_their_clients_address() -> None:
    """The sessions from 10.0.0.13 (with or without `v1:`), never those of an address that
    only contains it; IPv6 in brackets; not JSON is a CephError."""
    assert sessions_from(SESSIONS, "10.0.0.13") == [4101, 4102]
    assert sessions_from(SESSIONS, "10.0.0.1") == [4103]
    assert sessions_from(SESSIONS, "fd00::13") == [4105]
    assert sessions_from(SESSIONS, "10.0.0.99") == []
    with pytest.raises(CephError):
        sessions_from("Error EACCES", "10.0.0.13")


def evict_settings() -> Settings:
    return example_settings(cephfs_name="harborfs", ceph_user="harbor", command_timeout_s=7)


async def test_each_session_from_the_address_is_evicted_at_rank_0() -> None:
    """`session ls` then one `client evict id=N` per session from the address, all at
    mds.NAME:0 as the configured Ceph user, each bounded by command_timeout_s."""
    runner = FakeRunner([by_substring({"session ls": SESSIONS})])
    ids = await evict_sessions_from(runner, evict_settings(), "10.0.0.13")
    assert ids == [4101, 4102]
    argvs = [" ".join(a) for a in runner.argvs()]
    assert len(argvs) == 3 and all("tell mds.harborfs:0" in a and "--id harbor" in a for a in argvs)
    assert argvs[1].endswith("client evict id=4101") and argvs[2].endswith("client evict id=4102")
    assert {c.timeout_s for c in runner.calls} == {7}


async def test_a_refusal_or_silence_of_the_mds_is_an_error() -> None:
    """EACCES (a user without MDS caps) is a CephError with Ceph's words; no answer within
    the bound is CephUnreachable."""
    refusal = reply("", "Error EACCES: access denied", 13)
    denied = FakeRunner([by_substring({"session ls": refusal})])
    with pytest.raises(CephError, match="EACCES"):
        await evict_sessions_from(denied, evict_settings(), "10.0.0.13")
    silent = FakeRunner([by_substring({"session ls": CommandTimeout(["ceph"], 7)})])
    with pytest.raises(CephUnreachable):
        await evict_sessions_from(silent, evict_settings(), "10.0.0.13")


BASE = {
    "HARBOR_HA_VIP": "10.0.0.100/24",
    "HARBOR_HA_INTERFACE": "eth0",
    "HARBOR_HA_MODE": "shared",
    "HARBOR_HA_NODE_NAME": "a",
    "HARBOR_HA_SHARED_FS_TYPE": "ceph-fuse",
    "HARBOR_HA_SHARED_FS_SOURCE": "10.0.0.1:6789:/",
    "HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12,c=10.0.0.13",
    "HARBOR_HA_SHARED_EVICT_AFTER_S": "10",
    "HARBOR_HA_CEPHFS_NAME": "harborfs",
}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"HARBOR_HA_SHARED_FS_TYPE": "nfs", "HARBOR_HA_SHARED_FS_SOURCE": "nas:/h"}, "not ceph"),
        ({"HARBOR_HA_NODES": "a=10.0.0.11,b=10.0.0.12"}, "three nodes or more"),
        ({"HARBOR_HA_CEPHFS_NAME": ""}, "HARBOR_HA_CEPHFS_NAME: required"),
    ],
)
def test_eviction_settings_are_refused_where_they_cannot_work(
    change: dict[str, str], words: str
) -> None:
    """Eviction on NFS, with two nodes, or without the filesystem's name: refused at load
    with the reason; 0 (the default) turns it off; CephFS, three nodes and a name load."""
    with pytest.raises(SettingsError) as err:
        load_settings(None, {**BASE, **change})
    assert any(words in p for p in err.value.problems), err.value.problems
    assert load_settings(None, {**BASE, **change, "HARBOR_HA_SHARED_EVICT_AFTER_S": "0"})
    assert load_settings(None, BASE).shared_evict_after_s == 10


async def test_check_says_whether_the_user_may_evict() -> None:
    """`check` with eviction on: OK when the MDS lists its sessions to the node's user, FAIL
    naming the missing caps when it refuses; nothing said (no command run) when it is off."""
    from harbor_ha.commands.preflight import eviction_access

    on = example_settings(cephfs_name="harborfs", ceph_user="harbor", shared_evict_after_s=10)
    ok = FakeRunner([by_substring({"session ls": SESSIONS})])
    [(level, text)] = await eviction_access(on, ok)
    assert level == "OK" and "mds.harborfs:0 lists 5 session(s) to harbor" in text
    denied = FakeRunner([by_substring({"session ls": reply("", "Error EACCES: denied", 13)})])
    [(level, text)] = await eviction_access(on, denied)
    assert level == "FAIL" and "mds 'allow *'" in text and "EACCES" in text
    off = FakeRunner()
    assert await eviction_access(example_settings(), off) == [] and off.calls == []
