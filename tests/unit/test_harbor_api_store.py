"""The lab's Harbor replication API (lab/harbor_api.py) as the registry stack's core runs it:
with a ``store`` file, what was made survives a new instance (core's restart), and with a
``runner`` a manual execution is InProgress until the runner finishes it."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

from lab.harbor_api import ReplicationApi
from lab.registry_stack.replicator import Replicator

AUTH = "Basic " + base64.b64encode(b"admin:pw").decode()


def made(api: ReplicationApi) -> int:
    """An endpoint and an event-based policy on ``api``; the policy's id."""
    cred = {"type": "basic", "access_key": "admin", "access_secret": "s3"}
    body = {"name": "to-b", "url": "https://10.0.0.12", "insecure": False, "credential": cred}
    assert api.handle("POST", "/api/v2.0/registries", body, AUTH)[0] == 201
    policy = {"name": "p", "dest_registry": {"id": 1}, "trigger": {"type": "event_based"},
              "enabled": True}  # fmt: skip
    status, _, headers = api.handle("POST", "/api/v2.0/replication/policies", policy, AUTH)
    assert status == 201
    return int(headers["Location"].rsplit("/", 1)[1])


def test_the_store_keeps_registries_policies_and_executions_across_a_restart(
    tmp_path: Path,
) -> None:
    """A second instance on the same store file answers the first one's registries, policies
    and executions; an execution left InProgress reads Failed; the secret is kept (not
    answered) and the file is 0600."""
    store = tmp_path / "replication.json"
    started: list[tuple[dict[str, Any], dict[str, Any]]] = []
    first = ReplicationApi({"admin": "pw"}, store=store, runner=lambda p, e: started.append((p, e)))
    pid = made(first)
    assert first.handle("POST", "/api/v2.0/replication/executions", {"policy_id": pid}, AUTH)[0]
    assert started and started[0][1]["status"] == "InProgress"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    again = ReplicationApi({"admin": "pw"}, store=store)
    again.load()
    _, regs, _ = again.handle("GET", "/api/v2.0/registries", None, AUTH)
    _, pols, _ = again.handle("GET", "/api/v2.0/replication/policies", None, AUTH)
    _, runs, _ = again.handle("GET", f"/api/v2.0/replication/executions?policy_id={pid}", None,
                              AUTH)  # fmt: skip
    assert [r["name"] for r in regs] == ["to-b"] and "access_secret" not in regs[0]["credential"]
    assert [p["name"] for p in pols] == ["p"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("manual", "Failed")]
    assert again.secret(1) == "s3"
    assert made_ids_continue(again) > pid


def made_ids_continue(api: ReplicationApi) -> int:
    ex = api.begin(1, "event_based")
    return int(ex["id"])


def test_a_finished_run_counts_and_event_policies_are_the_enabled_event_based_ones(
    tmp_path: Path,
) -> None:
    """``finish`` records Succeed only when nothing failed, with total/failed/succeed; the
    replicator's push notifications queue one execution per enabled event-based policy and
    per tagged manifest push (a blob or a pull event queues nothing)."""
    api = ReplicationApi({"admin": "pw"}, store=tmp_path / "s.json")
    pid = made(api)
    ex = api.begin(pid, "manual")
    api.finish(ex["id"], total=3, failed=1, text="one failed")
    (run,) = [e for e in api.executions if e["id"] == ex["id"]]
    assert (run["status"], run["total"], run["failed"], run["succeed"]) == ("Failed", 3, 1, 2)
    assert [p["id"] for p in api.event_policies()] == [pid]
    api.policies[0]["enabled"] = False
    assert api.event_policies() == []
    api.policies[0]["enabled"] = True

    replicator = Replicator(api, registry="127.0.0.1:1")
    envelope = {"events": [
        {"action": "push", "target": {"repository": "lab/x", "tag": "1"}},
        {"action": "push", "target": {"repository": "lab/x", "digest": "sha256:00"}},
        {"action": "pull", "target": {"repository": "lab/x", "tag": "1"}},
    ]}  # fmt: skip
    assert replicator.notified(json.loads(json.dumps(envelope))) == 1
