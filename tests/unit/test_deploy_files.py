"""The monitoring files in deploy/ and docs/ against the code: the Prometheus rules and the
Grafana dashboard select only series harbor-ha really exports (computed from the Metrics
registry) or the rules record; every alert is unit-tested and links to its runbook section."""

from __future__ import annotations

import ast
import re
from typing import Any

import yaml

from harbor_ha.machine import PROMOTING, STEP_OF
from harbor_ha.metrics import STATES, STEP_BUCKETS, Metrics
from tests.unit.deployfiles import (
    PROMETHEUS_OWN,
    ROOT,
    RUNBOOK,
    alerts,
    dashboard_exprs,
    dashboard_panels,
    exported_names,
    load_dashboard,
    load_rule_tests,
    load_rules,
    markdown_anchors,
    recorded_names,
    referenced_metrics,
)


def known_series() -> set[str]:
    return exported_names() | recorded_names() | PROMETHEUS_OWN


def test_metric_name_extraction_skips_labels_functions_and_keywords() -> None:
    """The name extractor the other checks rely on finds metric names, including recorded
    ones with colons, and nothing else: no label names (in matchers, by/without/on/ignoring
    clauses, label_replace strings), functions, keywords, windows or Grafana variables."""
    expr = (
        'sum by (job, harbor_ha_state) (rate(harbor_ha_x_total{harbor_ha_state="A",'
        'instance=~"$instance"}[$__rate_interval])) / ignoring (le) '
        "job:harbor_ha_y:sum offset 5m and on (instance) up unless "
        'label_replace(harbor_ha_z, "dst", "$1", "harbor_ha_w", "(.*)") > bool 0.95'
    )
    assert referenced_metrics(expr) == {
        "harbor_ha_x_total",
        "job:harbor_ha_y:sum",
        "up",
        "harbor_ha_z",
    }


def test_exported_names_are_the_sample_names_of_the_metrics_class() -> None:
    """The exported names come from the real registry, with prometheus_client's suffixes:
    a counter is only ever seen as _total (and _created), a histogram as its buckets, count
    and sum, the state enum under its own name."""
    names = exported_names()
    assert {"harbor_ha_state", "harbor_ha_transitions_total", "harbor_ha_standby_ready"} <= names
    assert "harbor_ha_failover_duration_seconds_bucket" in names
    assert "harbor_ha_transitions" not in names
    families = {f.name for f in Metrics().registry.collect()}
    assert all(any(n.startswith(f) for n in names) for f in families)


def test_rules_select_only_exported_or_recorded_series() -> None:
    """Every recording and alert rule selects series that exist: a metric renamed or removed
    in metrics.py fails here rather than as an alert that silently never fires."""
    known = known_series()
    for rule in load_rules():
        names = referenced_metrics(rule["expr"])
        label = rule.get("alert") or rule.get("record")
        assert names, f"{label}: no metric found in {rule['expr']!r}"
        assert names <= known, f"{label}: unknown series {sorted(names - known)}"


def test_dashboard_selects_only_exported_or_recorded_series() -> None:
    """Every expression of the Grafana dashboard (panels, annotations, variables) selects
    series the daemon exports or the rules record: no panel shows "No data" for a metric that
    does not exist."""
    known = known_series()
    exprs = dashboard_exprs(load_dashboard())
    assert len(exprs) >= 20
    for expr in exprs:
        names = referenced_metrics(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= known, f"unknown series {sorted(names - known)} in {expr!r}"


def test_dashboard_is_well_formed_grafana_json() -> None:
    """The dashboard imports as one Grafana dashboard: unique panel ids, panels inside the
    24-column grid, unique refIds per panel, every query on the chosen Prometheus data
    source; and it has the panels operators look for."""
    dash = load_dashboard()
    assert dash["uid"] == "harbor-ha" and isinstance(dash["schemaVersion"], int)
    panels = list(dashboard_panels(dash))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        if p["type"] != "row":
            assert p["targets"] and p["description"], p["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    exprs = " ".join(dashboard_exprs(dash))
    for wanted in (
        "instance:harbor_ha_state:code",
        "failover",
        "harbor_ha_step_duration_seconds",
        "harbor_ha_probe_ok",
        "harbor_ha_fencing_actions_total",
        "harbor_ha_fifo_lines_total",
        "harbor_ha_command_duration_seconds",
    ):
        assert wanted in exprs, wanted


def _state_panel(dash: dict[str, Any]) -> dict[str, Any]:
    (panel,) = [
        p
        for p in dashboard_panels(dash)
        if any("instance:harbor_ha_state:code" in t["expr"] for t in p.get("targets", []))
        and p["type"] == "state-timeline"
    ]
    return panel


def test_state_codes_follow_the_metrics_states() -> None:
    """The state-code recording rule numbers every state of metrics.STATES by its position,
    and the dashboard's state timeline names each code the same way: a state added to the
    enum fails here until the rule and the dashboard know it."""
    (rule,) = [r for r in load_rules() if r.get("record") == "instance:harbor_ha_state:code"]
    codes = {
        state: int(code)
        for state, code in re.findall(r'harbor_ha_state="(\w+)"\} == 1\) \* (\d+)', rule["expr"])
    }
    assert codes == {state: i for i, state in enumerate(STATES)}
    (mappings,) = _state_panel(load_dashboard())["fieldConfig"]["defaults"]["mappings"]
    shown = {int(code): m["text"] for code, m in mappings["options"].items()}
    assert shown == dict(enumerate(STATES))


def test_failover_slow_threshold_is_a_real_bucket() -> None:
    """HarborHaFailoverSlow reads one bucket of the failover histogram: its le value must be
    a bucket bound, spelled as prometheus_client renders it (60 -> "60.0")."""
    (rule,) = [r for r in alerts() if r["alert"] == "HarborHaFailoverSlow"]
    (le,) = re.findall(r'le="([^"]+)"', rule["expr"])
    assert le in {str(float(b)) for b in STEP_BUCKETS}


def test_every_alert_links_to_its_runbook_section() -> None:
    """Every alert has a severity, a summary, a description and a runbook_url whose anchor is
    a section of docs/runbook.md named after the alert."""
    anchors = markdown_anchors(RUNBOOK.read_text())
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbook.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/runbook.md"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """The promtool unit tests have, for every alert, at least one evaluation where it fires
    and one where it must not."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in load_rule_tests():
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alerts()}
    assert names - fired == set(), "never tested firing"
    assert names - quiet == set(), "never tested quiet"


def test_every_recording_rule_is_tested() -> None:
    """Every recording rule has a promtool expression test."""
    tested = {
        check["expr"] for case in load_rule_tests() for check in case.get("promql_expr_test", [])
    }
    assert recorded_names() - tested == set()


def _source_strings() -> set[str]:
    """Every string constant of the daemon's source."""
    found: set[str] = set()
    for path in (ROOT / "src" / "harbor_ha").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_rule_label_values_exist_in_the_code() -> None:
    """Every label value a rule matches on (a step, an outcome, a track file, a state...) is a
    string the daemon's code really uses, so a renamed label value fails here; the promotion
    steps the rules name are exactly the machine's promotion steps."""
    strings = _source_strings()
    for rule in load_rules():
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', rule["expr"]):
            if label in {"job", "instance", "le"}:
                continue
            for v in value.split("|") if op in {"=~", "!~"} else [value]:
                assert v in strings, f"{rule.get('alert') or rule['record']}: {label}={v!r}"
    (failed,) = [r for r in alerts() if r["alert"] == "HarborHaPromotionFailed"]
    (steps,) = re.findall(r'step=~"([^"]+)"', failed["expr"])
    assert set(steps.split("|")) == {str(STEP_OF[s]) for s in PROMOTING}


def test_example_scrape_config_matches_the_rules() -> None:
    """The example Prometheus configuration loads the rules file and scrapes under the job
    name the rules select."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.example.yml").read_text())
    assert config["rule_files"] == ["harbor-ha.rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "harbor-ha"
    assert all('job="harbor-ha"' in r["expr"] for r in load_rules() if "up{" in r["expr"])
