"""deploy/prometheus's rules on a real Prometheus (Debian's prometheus, installed by
scripts/setup) scraping the lab's two real daemons, so the rules meet the series and labels
harbor-ha really exports (and the `job`/`instance` labels Prometheus adds)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import lab
from lab.netns import NetnsExecutor
from tests.e2e import helpers
from tests.e2e.conftest import Lab

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "harbor-ha.rules.yml"
LISTEN = "127.0.0.1:9091"  # inside the lab's client netns
HTTP_PORT = 9105  # the lab's HARBOR_HA_HTTP_PORT
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.e2e


@dataclass
class Prometheus:
    netns: NetnsExecutor
    instance: dict[str, str]  # lab node name -> the instance label of its daemon

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` (each sample: its labels and value)."""
        url = f"http://{LISTEN}/api/v1/query?" + urllib.parse.urlencode({"query": expr})

        async def get() -> list[dict[str, Any]]:
            with NO_PROXY.open(url, timeout=5) as r:
                data: dict[str, Any] = json.load(r)
            return list(data["data"]["result"])

        try:
            return asyncio.run(self.netns.run(get))
        except OSError:
            return []  # not listening yet

    def by_instance(self, expr: str) -> dict[str, float]:
        node = {v: k for k, v in self.instance.items()}
        return {
            node.get(s["metric"].get("instance", ""), "?"): float(s["value"][1])
            for s in self.query(expr)
        }

    def alerts(self) -> set[tuple[str, str, str]]:
        """(alertname, alertstate, node) of every harbor-ha alert pending or firing."""
        node = {v: k for k, v in self.instance.items()}
        return {
            (
                s["metric"]["alertname"],
                s["metric"]["alertstate"],
                node.get(s["metric"].get("instance", ""), ""),
            )
            for s in self.query('ALERTS{alertname=~"HarborHa.*"}')
        }


@pytest.fixture
def prometheus(good_lab: Lab) -> Iterator[Prometheus]:
    """A Prometheus in the lab's client netns, scraping both daemons every second under the
    job the rules expect, evaluating the rules every second; killed (by its process group)
    and its data removed afterwards."""
    exe = shutil.which("prometheus")
    assert exe is not None, "prometheus missing: scripts/setup installs Debian's prometheus"
    st = good_lab.st
    instance = {name: f"{node.address}:{HTTP_PORT}" for name, node in st.nodes.items()}
    workdir = Path(tempfile.mkdtemp(prefix="hhe2e-prometheus-", dir="/var/tmp"))
    targets = ", ".join(f'"{i}"' for i in instance.values())
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES))}]\n"
        "scrape_configs:\n"
        f"  - job_name: harbor-ha\n    static_configs: [{{targets: [{targets}]}}]\n"
    )
    log = (workdir / "prometheus.log").open("w")
    argv = ["ip", "netns", "exec", st.client_netns, exe]
    argv += [
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={LISTEN}",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ex = NetnsExecutor(st.client_netns)
    try:
        yield Prometheus(ex, instance)
    finally:
        ex.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()
        print((workdir / "prometheus.log").read_text()[-3000:])
        shutil.rmtree(workdir, ignore_errors=True)


def test_rules_on_real_prometheus_through_a_crash_failover(
    good_lab: Lab, prometheus: Prometheus
) -> None:
    """In the good state the recording rules say one MASTER (state code 5 on the master, 0 on
    the backup) and no alert is pending or firing. After kill -9 of the master's keepalived
    and harbor-ha: HarborHaFailoverHappened fires for the new master, HarborHaScrapeDown is
    pending (then firing) for the old one, the masters count stays 1, and neither
    HarborHaNoMaster nor HarborHaTwoMasters fires. Once the old master's services restart it
    is scraped again with state code 0 (BACKUP) and HarborHaScrapeDown clears."""
    st, m, b = good_lab.st, good_lab.master, good_lab.backup
    p = prometheus

    def good() -> tuple[bool | None, str]:
        codes = p.by_instance("instance:harbor_ha_state:code")
        masters = p.query("job:harbor_ha_masters:sum")
        alerts = p.alerts()
        ok = codes == {m: 5.0, b: 0.0} and [float(s["value"][1]) for s in masters] == [1.0]
        return (True if ok and not alerts else None), f"codes {codes}, alerts {alerts}"

    helpers.wait_for("good state seen by Prometheus, no alert", good, within_s=60, every_s=1)
    assert p.by_instance("harbor_ha_standby_ready").get(b) == 1.0

    lab.kill_services(st, m)

    def failed_over() -> tuple[set[tuple[str, str, str]] | None, str]:
        alerts = p.alerts()
        want = {("HarborHaFailoverHappened", "firing", b)}
        down = {a for a in alerts if a[0] == "HarborHaScrapeDown" and a[2] == m}
        return (alerts if want <= alerts and down else None), f"alerts {alerts}"

    alerts = helpers.wait_for("failover alerts", failed_over, within_s=120, every_s=1)

    def new_master_recorded() -> tuple[bool | None, str]:
        # The recording rules and the alerts are evaluated in different groups, so the
        # alert may fire on a scrape the state-code rule has not yet been evaluated on.
        codes = p.by_instance("instance:harbor_ha_state:code")
        masters = [float(s["value"][1]) for s in p.query("job:harbor_ha_masters:sum")]
        return (True if codes == {b: 5.0} and masters == [1.0] else None), f"{codes} {masters}"

    helpers.wait_for("the new master recorded", new_master_recorded, within_s=30, every_s=1)
    assert p.by_instance("instance:harbor_ha_failovers:increase1h")[b] > 0
    assert not {a for a in alerts if a[0] in {"HarborHaNoMaster", "HarborHaTwoMasters"}}

    lab.start_services(st, m)
    helpers.wait_clean_backup(st, m)

    def back() -> tuple[bool | None, str]:
        codes = p.by_instance("instance:harbor_ha_state:code")
        down = {a for a in p.alerts() if a[0] == "HarborHaScrapeDown"}
        return (True if codes == {m: 0.0, b: 5.0} and not down else None), f"{codes} {down}"

    helpers.wait_for("old master scraped again as BACKUP", back, within_s=60, every_s=1)
    firing = {a for a in p.alerts() if a[1] == "firing"}
    assert firing <= {("HarborHaFailoverHappened", "firing", b)}, firing
