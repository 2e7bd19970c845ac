"""The comparison of the nodes' fingerprints: a differing item FAILs naming the item and the
groups of nodes, never a value or a hash; a FILE job logger FAILs naming the node; a node
not read is a warning."""

from __future__ import annotations

from harbor_ha.cluster import Fingerprint, NodeReading, compare_nodes
from harbor_ha.cluster.fingerprint import ITEMS, digest


def fp(
    version: str = "v2.6.2", loggers: list[str] | None = None, **values: bytes | str
) -> Fingerprint:
    """A fingerprint whose items are the hashes of ``values`` (default b"same"), a string
    value standing for a reason (missing: ...)."""
    items = {}
    for item in ITEMS:
        value = values.get(item, b"same" if item != "harbor_version" else version.encode())
        items[item] = digest(item, value) if isinstance(value, bytes) else value
    return Fingerprint(items, version, ["STD_OUTPUT", "DB"] if loggers is None else loggers, "/j")


def levels(readings: dict[str, NodeReading]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for level, message in compare_nodes(readings).findings:
        out.setdefault(level, []).append(message)
    return out


def test_identical_nodes_pass() -> None:
    """Three identical nodes: every item OK, nothing differs."""
    result = compare_nodes({n: NodeReading(fp()) for n in "abc"})
    assert {level for level, _ in result.findings} == {"OK"}
    assert len(result.findings) == len(ITEMS) and result.differing == set()
    assert result.compared == ["a", "b", "c"]


def test_a_differing_secret_names_item_and_nodes_not_the_value() -> None:
    """c's CSRF key differs: one FAIL naming csrf_key and the groups (a, b | c); neither the
    value nor its hash is in the message."""
    readings = {
        "a": NodeReading(fp()),
        "b": NodeReading(fp()),
        "c": NodeReading(fp(csrf_key=b"Zq-9-secret")),
    }
    result = compare_nodes(readings)
    fails = [m for level, m in result.findings if level == "FAIL"]
    assert result.differing == {"csrf_key"}
    assert len(fails) == 1 and fails[0].startswith("cluster: csrf_key (the CSRF key")
    assert "a, b | c" in fails[0]
    assert "sha256" not in fails[0] and "Zq-9-secret" not in fails[0]


def test_a_missing_file_on_one_node_differs_and_is_named() -> None:
    """A node without the secret file differs from the others; the message says where."""
    result = compare_nodes(
        {"a": NodeReading(fp()), "b": NodeReading(fp(secretkey="missing: /d/keys/secretkey"))}
    )
    fails = [m for level, m in result.findings if level == "FAIL"]
    assert result.differing == {"secretkey"}
    assert "b: missing: /d/keys/secretkey" in fails[0]


def test_missing_everywhere_is_a_warning() -> None:
    """An item no node has (the same reason everywhere) cannot be compared: WARN."""
    gone = "missing: /data/secret/registry/root.crt"
    found = levels({n: NodeReading(fp(token_root_cert=gone)) for n in "ab"})
    assert found["WARN"] == [
        "cluster: token_root_cert (the token verification certificate (registry/root.crt)) "
        f"not readable on any node: {gone}"
    ]
    assert "FAIL" not in found


def test_missing_everywhere_under_each_nodes_own_path_is_a_warning() -> None:
    """An item no node can read, each reason naming the node's own path: nothing to compare,
    so WARN listing each node's reason; nothing counted as differing."""
    result = compare_nodes({
        n: NodeReading(fp(core_secret=f"missing: /srv/{n}/common/config/core/env")) for n in "ab"
    })  # fmt: skip
    assert result.differing == set()
    assert (
        "WARN",
        "cluster: core_secret (core's secret (core <-> jobservice, registryctl)) not readable "
        "on any node: a: missing: /srv/a/common/config/core/env | b: missing: "
        "/srv/b/common/config/core/env",
    ) in result.findings


def test_versions_are_shown_in_clear() -> None:
    """Harbor's version is no secret: the FAIL says which node runs which."""
    readings = {"a": NodeReading(fp("v2.6.2")), "b": NodeReading(fp("v2.7.0"))}
    fails = levels(readings)["FAIL"]
    assert fails == [
        "cluster: harbor_version (Harbor's version) differs between nodes: a run v2.6.2 | b run "
        "v2.7.0 (each | separates a different value; values are never shown)"
    ]


def test_a_file_job_logger_fails_its_node() -> None:
    """A node whose jobservice logs jobs to FILE FAILs by name; unknown loggers WARN."""
    result = compare_nodes({
        "a": NodeReading(fp()),
        "b": NodeReading(fp(loggers=["STD_OUTPUT", "FILE"])),
        "c": NodeReading(Fingerprint(fp().items, "v2.6.2", None, "/j/config.yml")),
    })  # fmt: skip
    assert result.file_loggers == {"b"}
    assert any(
        level == "FAIL" and m.startswith("cluster: node b: jobservice writes job logs to FILE")
        for level, m in result.findings
    )
    assert (
        "WARN",
        "cluster: node c: jobservice's job loggers unknown (/j/config.yml not readable)",
    ) in result.findings


def test_unreachable_nodes_warn_and_the_rest_is_compared() -> None:
    """An unreachable node is a WARN (not compared); the reachable ones are still compared;
    one fingerprint alone compares nothing."""
    result = compare_nodes(
        {
            "a": NodeReading(fp()),
            "b": NodeReading(fp(core_secret=b"x")),
            "c": NodeReading(None, "unreachable: timeout"),
        }
    )
    assert ("WARN", "cluster: node c not compared: unreachable: timeout") in result.findings
    assert result.differing == {"core_secret"} and result.compared == ["a", "b"]
    alone = levels({"a": NodeReading(fp()), "b": NodeReading(None, "unreachable: refused")})
    assert "cluster: 1 fingerprint(s) read, nothing compared" in alone["WARN"]
