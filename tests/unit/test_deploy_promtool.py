"""promtool (Debian's prometheus package, installed by scripts/setup) on what harbor-ha
serves and ships: a /metrics scrape passes `promtool check metrics`, and every dashboard
expression is PromQL that Prometheus parses.  A missing promtool is a failure, not a skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import Counter, Enum, Gauge, Histogram, generate_latest

from harbor_ha.metrics import Metrics
from tests.unit.deployfiles import dashboard_exprs, load_dashboard, promql_for_promtool


def promtool() -> str:
    path = shutil.which("promtool")
    assert path is not None, "promtool missing: scripts/setup installs Debian's prometheus"
    return path


def populated_metrics() -> Metrics:
    """A Metrics with one sample in every family (a child for each labelled one)."""
    m = Metrics()
    for metric in vars(m).values():
        if not isinstance(metric, Counter | Gauge | Histogram | Enum):
            continue
        labelnames = metric._labelnames
        child = metric.labels(*("x" for _ in labelnames)) if labelnames else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram):
            child.observe(1.5)
        else:
            child.state("MASTER")
    return m


def test_metrics_scrape_passes_promtool_check_metrics() -> None:
    """What /metrics serves (generate_latest of the daemon's registry, every family with a
    sample) passes promtool's linter without a single complaint."""
    body = generate_latest(populated_metrics().registry)
    assert b"harbor_ha_transitions_total" in body and b'harbor_ha_state="MASTER"' in body
    r = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stdout + r.stderr


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard expression, with Grafana's variables filled in, parses as PromQL:
    they go into a scratch rules file that `promtool check rules` must accept."""
    exprs = [promql_for_promtool(e) for e in dashboard_exprs(load_dashboard())]
    records = [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "dashboard", "rules": records}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    r = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    """The check above can fail: promtool refuses an expression that does not parse."""
    path = tmp_path / "broken.rules.yml"
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (job ("}]}]}
        )
    )
    r = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
