"""The replicated mode's replication watch (harbor_ha.replication.watch) against the lab's
stand-in of Harbor's replication API (lab/harbor_api.py) over real HTTP on loopback: node a's
Harbor, where the watch reads its policy's latest execution, and node b's, the peer it probes;
b's server is stopped and started again on the same port to make the peer's outage real.

What the watch asks and starts is checked against Harbor's published models (the package
harbor-api-client, generated from Harbor's swagger)."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import harbor_client.models as models
import pytest
from harbor_client.api_client import ApiClient
from structlog.testing import capture_logs

from harbor_ha.daemon.replication import WatchMetrics
from harbor_ha.metrics import Metrics
from harbor_ha.replication.api import HarborApi, HarborApiError
from harbor_ha.replication.plan import Peer, policy_name
from harbor_ha.replication.setup import setup_pair
from harbor_ha.replication.watch import RECENT_EXECUTIONS as RECENT
from harbor_ha.replication.watch import ReplicationWatch
from lab.harbor_api import ReplicationApi, serve
from lab.waiting import until
from tests.unit.test_replication_setup import USERS, write_credentials

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the credentials file must be root's")

EXECUTIONS = "/api/v2.0/replication/executions"


def start(api: ReplicationApi, port: int = 0) -> ThreadingHTTPServer:
    return serve(api, port=port)


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@dataclass
class Pair:
    a: ReplicationApi  # this node's Harbor
    b: ReplicationApi  # the peer's
    servers: dict[str, ThreadingHTTPServer]
    credentials: Path
    pb: Peer

    def watch(self, **kw: Any) -> ReplicationWatch:
        return ReplicationWatch(
            credentials=self.credentials, node_name="a", interval_s=30, timeout_s=2, **kw
        )

    def peer_down(self) -> None:
        stop(self.servers.pop("b"))

    def peer_up(self) -> None:
        self.servers["b"] = start(self.b, port=int(self.pb.url.rsplit(":", 1)[1]))

    def posts(self) -> list[Any]:
        """The bodies of the executions started on a's Harbor."""
        return [body for m, t, body in self.a.requests if m == "POST" and t == EXECUTIONS]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """Two stand-in Harbors set up by `harbor-ha replication setup`'s own code (endpoints and
    policies both ways), the credentials file naming them a and b; requests cleared."""
    a, b = ReplicationApi(dict(USERS)), ReplicationApi(dict(USERS))
    servers = {"a": start(a), "b": start(b)}
    pa = Peer("a", f"http://127.0.0.1:{servers['a'].server_address[1]}", "replicator", "s3cret")
    pb = Peer("b", f"http://127.0.0.1:{servers['b'].server_address[1]}", "replicator", "s3cret")
    try:
        await setup_pair(pa, pb, {})
        a.requests.clear()
        b.requests.clear()
        yield Pair(a, b, servers, write_credentials(tmp_path / "r.ini", pa, pb), pb)
    finally:
        for server in servers.values():
            stop(server)


def policy_id(p: Pair) -> int:
    (policy,) = [x for x in p.a.policies if x["name"] == policy_name(p.pb)]
    return int(policy["id"])


async def test_the_latest_execution_is_summarised(pair: Pair) -> None:
    """The watch finds the policy setup made (harbor-ha-to-b) on a's Harbor, asks for its
    newest executions (page 1 of RECENT_EXECUTIONS: Harbor lists newest first) and summarises
    the newest: the newer Failed (manual) run, not the older Succeed one; what it parsed is
    Harbor's model.  A failed manual run owes no run.  The view /status serves ages it to the
    time of the read."""
    pid = policy_id(pair)
    old = {"id": 50, "policy_id": pid, "status": "Succeed", "trigger": "event_based",
           "start_time": "2026-12-07T05:00:00Z", "end_time": "2026-12-07T05:01:00Z",
           "status_text": "", "total": 3, "failed": 0, "succeed": 3, "in_progress": 0,
           "stopped": 0}  # fmt: skip
    new = {**old, "id": 51, "status": "Failed", "end_time": "2026-12-07T05:30:00Z",
           "trigger": "manual",
           "failed": 2, "succeed": 1, "status_text": "dial tcp: connection refused"}  # fmt: skip
    pair.a.executions += [old, new]
    now = [datetime.datetime(2026, 12, 7, 5, 31, tzinfo=datetime.UTC).timestamp()]
    watch = pair.watch(clock=lambda: now[0])
    await watch.round()
    s = watch.summary
    assert s is not None and (s.policy, s.policy_id, s.execution_id) == ("harbor-ha-to-b", pid, 51)
    assert (s.status, s.failed, s.total, s.age_s) == ("Failed", 2, 3, 60.0)
    assert "connection refused" in s.status_text
    (target,) = [t for m, t, _ in pair.a.requests if m == "GET" and t.startswith(EXECUTIONS)]
    query = parse_qs(urlsplit(target).query)
    assert query == {"policy_id": [str(pid)], "page": ["1"], "page_size": [str(RECENT)]}
    assert pair.posts() == [] and watch.manual_runs == 0
    parsed = ApiClient()._ApiClient__deserialize([new], "list[ReplicationExecution]")
    assert isinstance(parsed[0], models.ReplicationExecution) and parsed[0].failed == 2
    view = watch.view()
    assert view["configured"] is True and view["peer_reachable"] is True
    assert view["last"]["status"] == "Failed" and view["problem"] is None
    now[0] += 30  # /status read later: the age as of the read
    assert watch.view()["last"]["age_s"] == 90.0 and s.age_s == 60.0


async def test_the_peers_return_starts_exactly_one_manual_run(pair: Pair) -> None:
    """b's Harbor stops answering (its server stopped) for three looks, then answers again:
    a's watch starts one manual execution of its policy (a POST of Harbor's
    StartReplicationExecution), counted in the metrics, and the next summary is that run (a
    ReplicationExecution of trigger manual); the looks after start none."""
    metrics = Metrics()
    watch = pair.watch(observer=WatchMetrics(metrics))
    await watch.round()
    pair.peer_down()
    for _ in range(3):
        await watch.round()
    assert watch.peer_up is False and pair.posts() == []
    pair.peer_up()
    for _ in range(3):
        await watch.round()
    assert pair.posts() == [{"policy_id": policy_id(pair)}]
    assert set(pair.posts()[0]) <= set(models.StartReplicationExecution.attribute_map.values())
    assert watch.manual_runs == 1 and watch.peer_up is True
    assert watch.summary is not None and watch.summary.trigger == "manual"
    (run,) = ApiClient()._ApiClient__deserialize(pair.a.executions, "list[ReplicationExecution]")
    assert (run.id, run.trigger) == (watch.summary.execution_id, "manual")
    sample = metrics.registry.get_sample_value
    assert sample("harbor_ha_replication_manual_runs_total") == 1
    assert sample("harbor_ha_replication_peer_up", {"peer": "b"}) == 1
    last = {"policy": "harbor-ha-to-b", "status": "Succeed"}
    assert sample("harbor_ha_replication_last_status", last) == 1
    assert sample("harbor_ha_replication_last_status", {**last, "status": "none"}) == 0


async def test_a_peer_never_down_gets_no_manual_run(pair: Pair) -> None:
    """The peer answers every look: the watch only reads, it never starts an execution."""
    watch = pair.watch()
    for _ in range(5):
        await watch.round()
    assert pair.posts() == [] and watch.manual_runs == 0
    assert all(m == "GET" for m, _, _ in pair.a.requests + pair.b.requests)
    assert watch.summary is not None and watch.summary.status == "none"


def failed_push(p: Pair, ident: int) -> dict[str, Any]:
    """An event-based execution of a's policy that failed (the peer did not take the push)."""
    return {"id": ident, "policy_id": policy_id(p), "status": "Failed", "trigger": "event_based",
            "start_time": "2026-12-07T05:00:00Z", "end_time": "2026-12-07T05:00:01Z",
            "status_text": "dial tcp: connection refused", "total": 1, "failed": 1,
            "succeed": 0, "in_progress": 0, "stopped": 0}  # fmt: skip


async def test_a_failed_push_in_a_short_outage_owes_one_run(pair: Pair) -> None:
    """An outage shorter than the down count (the peer answered every look) still failed a
    push, which Harbor does not retry: the look that sees the failed event-based execution
    starts one manual run; the looks after it start none (that failure is answered)."""
    watch = pair.watch()
    await watch.round()
    pair.a.executions.append(failed_push(pair, 900))
    for _ in range(3):
        await watch.round()
    assert pair.posts() == [{"policy_id": policy_id(pair)}] and watch.manual_runs == 1
    assert watch.summary is not None and watch.summary.trigger == "manual"
    pair.a.executions.append(failed_push(pair, 901))  # a newer failure owes one more
    await watch.round()
    await watch.round()
    assert watch.manual_runs == 2


async def test_a_failed_push_is_paid_only_once_the_peer_answers(pair: Pair) -> None:
    """A failed push seen while the peer does not answer owes a run that would fail too: none
    is started until the peer answers, then exactly one (the outage's and the push's debts
    are one run)."""
    watch = pair.watch()
    pair.peer_down()
    pair.a.executions.append(failed_push(pair, 900))
    for _ in range(3):
        await watch.round()
    assert pair.posts() == [] and watch.manual_runs == 0
    pair.peer_up()
    for _ in range(3):
        await watch.round()
    assert len(pair.posts()) == 1 and watch.manual_runs == 1


async def test_a_catch_up_that_could_not_start_is_started_later_once(pair: Pair) -> None:
    """When the peer comes back while a's Harbor refuses the watch (the account's password
    changed: 401), the run is still owed: the error is shown, and the first look after the
    account works again starts it, once."""
    watch = pair.watch()
    await watch.round()
    pair.peer_down()
    await watch.round()
    await watch.round()
    pair.peer_up()
    pair.a.users["replicator"] = "changed"
    await watch.round()
    assert watch.problem is not None and "401" in watch.problem
    assert pair.posts() == [] and watch.manual_runs == 0
    pair.a.users["replicator"] = "s3cret"
    for _ in range(3):
        await watch.round()
    started = [e for e in pair.a.executions if e["trigger"] == "manual"]
    assert len(started) == 1 and watch.manual_runs == 1


async def test_api_errors_are_recorded_and_the_watch_keeps_going(pair: Pair) -> None:
    """a's Harbor refuses the watch's account: each look is an error (counted, the latest
    shown, logged once, told to the observer once); the running loop does not end, and reads
    the execution again once the account works."""
    metrics = Metrics()
    observer = WatchMetrics(metrics)
    watch = ReplicationWatch(
        credentials=pair.credentials, node_name="a", interval_s=0.01, timeout_s=2,
        observer=observer,
    )  # fmt: skip
    pair.a.users["replicator"] = "changed"
    with capture_logs() as logs:
        task = asyncio.create_task(watch.run())
        try:
            await until(lambda: watch.error_count >= 3, "three failed looks")
            assert not task.done()
            assert watch.last_error is not None and watch.last_error["where"] == "replication_api"
            assert "HTTP 401" in str(watch.view()["problem"])
            pair.a.users["replicator"] = "s3cret"
            await until(lambda: watch.summary is not None, "a look that reads the execution")
            await until(lambda: watch.view()["problem"] is None, "the problem cleared")
        finally:
            task.cancel()
    errors = [e for e in logs if e["event"] == "replication_watch_error"]
    assert len(errors) == 1 and "401" in errors[0]["error"]
    assert len(list(observer.errors)) == 1
    counted = metrics.registry.get_sample_value(
        "harbor_ha_errors_total", {"where": "replication_api"}
    )
    assert counted is not None and counted >= 3


async def test_a_missing_credentials_file_is_said_once_and_shown(pair: Pair) -> None:
    """No credentials file: one warning for any number of looks, no error counted, nothing
    asked of any Harbor; /status's view says not configured."""
    watch = ReplicationWatch(
        credentials=pair.credentials.with_name("missing.ini"), node_name="a", interval_s=30,
        timeout_s=2,
    )  # fmt: skip
    with capture_logs() as logs:
        for _ in range(3):
            await watch.round()
    assert [e["event"] for e in logs] == ["replication_not_configured"]
    assert watch.view()["configured"] is False and watch.error_count == 0
    assert pair.a.requests == [] and pair.b.requests == []


async def test_setup_not_run_or_node_not_named_is_a_problem(pair: Pair) -> None:
    """A file that does not name this node, or a Harbor without the policy (setup not run),
    is a problem the view shows, saying what to do."""
    stranger = ReplicationWatch(
        credentials=pair.credentials, node_name="c", interval_s=30, timeout_s=2
    )
    await stranger.round()
    assert "no section [c]" in str(stranger.view()["problem"])
    assert stranger.view()["configured"] is True
    pair.a.policies.clear()
    watch = pair.watch()
    await watch.round()
    assert "harbor-ha replication setup" in str(watch.view()["problem"])
    assert watch.summary is None


async def test_a_failed_start_says_whether_it_may_have_started(pair: Pair) -> None:
    """What the watch's "once per return" rests on: a start Harbor refused (HTTP 400) or that
    never connected may not have started (retried later); one sent and never answered may
    have (never retried)."""
    user, password = "replicator", "s3cret"
    a_url = f"http://127.0.0.1:{pair.servers['a'].server_address[1]}"
    async with HarborApi(a_url, user, password, timeout_s=2) as api:
        with pytest.raises(HarborApiError) as refused:
            await api.start_execution(999)
    assert "HTTP 400" in str(refused.value) and not refused.value.maybe_done
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    async with HarborApi(url, user, password, timeout_s=2) as api:
        with pytest.raises(HarborApiError) as unsent:
            await api.start_execution(1)
    assert not unsent.value.maybe_done
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with HarborApi(url, user, password, timeout_s=0.2) as api:
            with pytest.raises(HarborApiError) as unanswered:
                await api.start_execution(1)
    assert "no answer" in str(unanswered.value) and unanswered.value.maybe_done
