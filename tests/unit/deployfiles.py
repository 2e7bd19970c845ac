"""Readers for the files in deploy/ and docs/ the unit tests check: the Prometheus rules and
their promtool tests, the Grafana dashboard, the runbook; and the metric names harbor-ha
really exports, computed from the Metrics registry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harbor_ha.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "harbor-ha.rules.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "harbor-ha.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "stateset": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
"""The sample names prometheus_client exports for each family type (text format 0.0.4)."""

PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself adds to every scrape that the rules use."""

_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan",
}  # fmt: skip


def exported_names() -> set[str]:
    """Every sample name a harbor-ha daemon's /metrics can contain."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type not in SUFFIXES:
            raise AssertionError(f"unknown metric type {family.type!r} of {family.name}")
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def load_rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of the rules file."""
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in load_rules() if "alert" in r]


def recorded_names() -> set[str]:
    return {r["record"] for r in load_rules() if "record" in r}


def load_rule_tests() -> list[dict[str, Any]]:
    """Every test case of the promtool unit-test files."""
    cases: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        cases.extend(yaml.safe_load(path.read_text())["tests"])
    return cases


def referenced_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not labels, functions or keywords)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery windows
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names: set[str] = set()
    for m in re.finditer(r"(?<![\w$.])[A-Za-z_:][\w:]*", s):
        if s[m.end() :].lstrip().startswith("(") or m.group() in _KEYWORDS:
            continue  # a function call, or an operator keyword
        names.add(m.group())
    return names


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets, annotations, and the metric
    selector inside each template variable's label_values() query."""
    exprs = [
        target["expr"]
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
        if m is None:
            raise AssertionError(f"variable {var['name']}: cannot read query {query!r}")
        exprs.append(m.group(1))
    return exprs


def promql_for_promtool(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by values PromQL accepts."""
    for var, value in {
        "$__rate_interval": "1m",
        "$__range": "1h",
        "$__interval": "1m",
        "$job": "harbor-ha",
        "$instance": ".*",
    }.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        raise AssertionError(f"unknown Grafana variable in {expr!r}")
    return expr


def markdown_anchors(text: str) -> set[str]:
    """GitHub's anchors of the Markdown headings in text."""
    anchors: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors
