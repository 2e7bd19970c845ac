"""End-to-end: the operator's cluster commands on the two-node lab, as run on a node (the real
CLI in the node's netns): `list` reads the peer's /status over the lab network, and
`switchover --wait` returns only once the peer serves; `history` then shows the failover."""

from __future__ import annotations

import json
import time

import pytest

import lab
from tests.e2e import helpers
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.e2e


def test_list_then_switchover_wait(good_lab: Lab) -> None:
    """On the master: `list --json` shows both nodes reachable with their real states;
    `switchover --wait` exits 0, and when it returns the peer already is MASTER with Harbor
    healthy (the client through the VIP follows: its delay is a figure); the peer's
    `history --failovers` holds the failover with its duration."""
    st, client, m, b = good_lab.st, good_lab.client, good_lab.master, good_lab.backup
    res = lab.harbor_ha(st.nodes[m], "list", "--json", check=False, timeout=30)
    assert res.returncode == 0, res.stderr
    rows = {row["node"]: row for row in json.loads(res.stdout)}
    assert set(rows) == {m, b} and all(row["reachable"] for row in rows.values())
    assert rows[m]["status"]["state"] == "MASTER" and rows[b]["status"]["state"] == "BACKUP"

    res = lab.harbor_ha(
        st.nodes[m], "switchover", "--wait", "--timeout", "120", check=False, timeout=180
    )
    returned = time.time()
    assert res.returncode == 0, res.stdout + res.stderr
    peer = helpers.status(st, b)
    assert peer.get("state") == "MASTER" and peer.get("harbor_healthy") is True, peer
    answer = helpers.wait_served_by(client, returned, b, within_s=30)
    helpers.figure(f"switchover --wait: client served by {b} +{answer.at - returned:.2f} s after")

    res = lab.harbor_ha(st.nodes[b], "history", "--failovers", "--json", check=False)
    assert res.returncode == 0, res.stderr
    failovers = [json.loads(line) for line in res.stdout.splitlines()]
    assert failovers and failovers[-1]["to"] == "MASTER" and failovers[-1]["failover_s"] > 0
    helpers.wait_clean_backup(st, m)
