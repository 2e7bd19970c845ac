"""The comparison of the nodes' fingerprints (pure): which item differs between which nodes,
which node keeps job logs on its own disk.  Findings name items, nodes and paths, never a
value or its hash (Harbor's version excepted: it is no secret)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harbor_ha.cluster.fingerprint import ITEMS, Fingerprint

Finding = tuple[str, str]  # (OK | WARN | FAIL, message)

FILE_LOGGER = "FILE"

MEANING = {
    "core_secret": "core's secret (core <-> jobservice, registryctl)",
    "jobservice_secret": "jobservice's secret",
    "csrf_key": "the CSRF key (a mismatch: 'CSRF token invalid' on another node)",
    "registry_http_secret": "the registry's HTTP secret (signs upload state across requests)",
    "secretkey": "the key encrypting stored passwords (keys/secretkey)",
    "token_private_key": "the token signing key (core/private_key.pem)",
    "token_root_cert": "the token verification certificate (registry/root.crt)",
    "database": "the database endpoint",
    "redis_core": "core's Redis endpoint",
    "redis_registry": "the registry's Redis endpoint",
    "redis_jobservice": "jobservice's Redis endpoint",
    "harbor_version": "Harbor's version",
}
"""What each item is, for the messages (every item of ITEMS)."""


@dataclass(frozen=True)
class NodeReading:
    """One node as the comparison sees it: its fingerprint, or why there is none."""

    fingerprint: Fingerprint | None
    problem: str = ""  # unreachable: ...; no fingerprint: ...
    level: str = "WARN"  # of the problem: FAIL when the node list itself is wrong


def _is_hash(value: str) -> bool:
    return value.startswith("sha256:")


def _groups(values: Mapping[str, str]) -> list[list[str]]:
    """Nodes grouped by equal value, the largest group first (then by node order)."""
    by_value: dict[str, list[str]] = {}
    for node, value in values.items():
        by_value.setdefault(value, []).append(node)
    return sorted(by_value.values(), key=len, reverse=True)


def _item_finding(item: str, values: Mapping[str, str], versions: Mapping[str, str]) -> Finding:
    groups = _groups(values)
    what = MEANING.get(item, item)
    if len(groups) == 1 and _is_hash(next(iter(values.values()))):
        return ("OK", f"cluster: {item} identical on {', '.join(groups[0])}")
    if not any(_is_hash(value) for value in values.values()):
        # Nothing to compare; each node's reason names its own paths, so the reasons may
        # differ without the item differing.
        if len(groups) == 1:
            reasons = next(iter(values.values()))
        else:
            reasons = " | ".join(f"{', '.join(nodes)}: {values[nodes[0]]}" for nodes in groups)
        return ("WARN", f"cluster: {item} ({what}) not readable on any node: {reasons}")
    parts = []
    for nodes in groups:
        value = values[nodes[0]]
        if item == "harbor_version" and nodes[0] in versions:
            parts.append(f"{', '.join(nodes)} run {versions[nodes[0]]}")
        elif _is_hash(value):
            parts.append(", ".join(nodes))
        else:
            parts.append(f"{', '.join(nodes)}: {value}")
    return (
        "FAIL",
        f"cluster: {item} ({what}) differs between nodes: "
        + " | ".join(parts)
        + " (each | separates a different value; values are never shown)",
    )


@dataclass
class Comparison:
    """The findings, and (for the daemon's metric) the items that differ and the nodes with
    a FILE job logger."""

    findings: list[Finding]
    differing: set[str]
    file_loggers: set[str]
    compared: list[str]  # the nodes that gave a fingerprint


def compare_nodes(readings: Mapping[str, NodeReading]) -> Comparison:
    """Findings over every node that gave a fingerprint: each item identical (OK) or not
    (FAIL, naming the groups of nodes); a node with a FILE job logger (FAIL); a node not read
    (its reading's level: WARN when unreachable; not compared).  Fewer than two
    fingerprints: nothing to compare (WARN)."""
    findings: list[Finding] = []
    differing: set[str] = set()
    file_loggers: set[str] = set()
    prints: dict[str, Fingerprint] = {}
    for node, reading in readings.items():
        if reading.fingerprint is None:
            findings.append(
                (reading.level, f"cluster: node {node} not compared: {reading.problem}")
            )
        else:
            prints[node] = reading.fingerprint
    for node, fp in prints.items():
        if fp.job_loggers is None:
            findings.append(
                ("WARN", f"cluster: node {node}: jobservice's job loggers unknown "
                 f"({fp.job_loggers_source} not readable)")
            )  # fmt: skip
        elif FILE_LOGGER in fp.job_loggers:
            file_loggers.add(node)
            findings.append(
                ("FAIL", f"cluster: node {node}: jobservice writes job logs to FILE "
                 f"({fp.job_loggers_source}): a job's log stays on the node that ran it and "
                 "the other nodes' Harbor cannot show it; keep STD_OUTPUT and DB only "
                 "(harbor.yml jobservice.job_loggers, then Harbor's prepare)")
            )  # fmt: skip
    if len(prints) < 2:
        findings.append(("WARN", f"cluster: {len(prints)} fingerprint(s) read, nothing compared"))
        return Comparison(findings, differing, file_loggers, list(prints))
    versions = {n: fp.harbor_version for n, fp in prints.items() if fp.harbor_version}
    items = list(ITEMS) + sorted({i for fp in prints.values() for i in fp.items} - set(ITEMS))
    for item in items:
        values = {n: fp.items.get(item, "not reported") for n, fp in prints.items()}
        finding = _item_finding(item, values, versions)
        if finding[0] == "FAIL":
            differing.add(item)
        findings.append(finding)
    return Comparison(findings, differing, file_loggers, list(prints))
