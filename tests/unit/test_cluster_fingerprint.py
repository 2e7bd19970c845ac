"""A node's cluster fingerprint read from Harbor's files: hashes of the items that must be
identical across nodes, never their values; missing files named, not a crash; the parsers
of Harbor's generated files."""

from __future__ import annotations

import json
from pathlib import Path

from harbor_ha.cluster import Fingerprint, read_fingerprint
from harbor_ha.cluster.fingerprint import ITEMS, digest
from harbor_ha.cluster.harbor_files import (
    core_image_tag,
    endpoint,
    job_loggers,
    parse_env,
    yaml_scalar,
)
from tests.harbor_config import HarborInstall, HarborValues, secret_values, write_install


def fingerprint(install: HarborInstall) -> Fingerprint:
    return read_fingerprint(install.config_dir, install.secret_dir, install.compose_file)


def test_every_item_is_a_hash_and_no_secret_shows(tmp_path: Path) -> None:
    """Every item is read and hashed; the JSON /status serves holds no secret, no password,
    no part of the keys; Harbor's version is shown in clear."""
    v = HarborValues()
    fp = fingerprint(write_install(tmp_path, v))
    assert list(fp.items) == list(ITEMS)
    assert all(value.startswith("sha256:") for value in fp.items.values()), fp.items
    shown = json.dumps(fp.to_json())
    assert [s for s in secret_values(v) if s in shown] == []
    assert fp.harbor_version == "v2.6.2" and fp.job_loggers == ["STD_OUTPUT", "DB"]


def test_identical_installs_give_identical_fingerprints(tmp_path: Path) -> None:
    """Two nodes with the same secrets and endpoints read the same hashes; one changed secret
    changes that item's hash only."""
    v = HarborValues()
    a = fingerprint(write_install(tmp_path / "a", v))
    b = fingerprint(write_install(tmp_path / "b", v))
    c = fingerprint(write_install(tmp_path / "c", v.copy(csrf_key="another-csrf-key-0123456789")))
    assert a.items == b.items
    assert [i for i in ITEMS if a.items[i] != c.items[i]] == ["csrf_key"]


def test_passwords_are_not_part_of_the_endpoints(tmp_path: Path) -> None:
    """The database and Redis endpoints are hashed without their passwords: nodes whose
    passwords differ read the same endpoint hashes (a password's hash could be guessed)."""
    v = HarborValues()
    a = fingerprint(write_install(tmp_path / "a", v))
    b = fingerprint(write_install(tmp_path / "b", v.copy(db_password="x", redis_password="y")))
    endpoints = ["database", "redis_core", "redis_registry", "redis_jobservice"]
    assert [a.items[i] == b.items[i] for i in endpoints] == [True] * 4
    moved = fingerprint(write_install(tmp_path / "c", v.copy(redis_host="other:6379")))
    assert [a.items[i] == moved.items[i] for i in endpoints] == [True, False, False, False]


def test_missing_files_are_named(tmp_path: Path) -> None:
    """A node without Harbor's files yet: each item says which file is missing; no crash, and
    the job loggers are unknown (None)."""
    fp = read_fingerprint(tmp_path / "conf", tmp_path / "secret", tmp_path / "compose.yml")
    assert fp.items["core_secret"] == f"missing: {tmp_path / 'conf' / 'core' / 'env'}"
    assert fp.items["secretkey"] == f"missing: {tmp_path / 'secret' / 'keys' / 'secretkey'}"
    assert fp.items["harbor_version"] == f"missing: {tmp_path / 'compose.yml'}"
    assert fp.job_loggers is None and fp.harbor_version is None


def test_a_key_absent_from_a_file_is_unset(tmp_path: Path) -> None:
    """A core env without CSRF_KEY: that item is 'unset', the others still hashed."""
    install = write_install(tmp_path, HarborValues())
    env = install.config_dir / "core" / "env"
    env.write_text("\n".join(ln for ln in env.read_text().splitlines() if "CSRF" not in ln))
    fp = fingerprint(install)
    assert fp.items["csrf_key"] == f"unset: CSRF_KEY in {env}"
    assert fp.items["core_secret"].startswith("sha256:")


def test_round_trip_through_json() -> None:
    """What /status serves reads back as the same fingerprint; other JSON is not one."""
    fp = Fingerprint({"core_secret": digest("core_secret", b"x")}, "v2.6.2", ["DB"], "/p", 5.0)
    assert Fingerprint.from_json(json.loads(json.dumps(fp.to_json()))) == fp
    assert Fingerprint.from_json(None) is None and Fingerprint.from_json({"items": 3}) is None


def test_the_item_name_is_part_of_the_hash() -> None:
    """Two items with the same value hash differently (equal secrets do not show as equal)."""
    assert digest("core_secret", b"same") != digest("jobservice_secret", b"same")


def test_parsers_of_harbor_files() -> None:
    """env lines, a nested YAML scalar (quoted, with a comment; list items skipped), the job
    loggers' names, the core image's tag and an endpoint without credentials or query."""
    assert parse_env("# c\nA=1\nB = x=y \n\nA=2\n") == {"A": "2", "B": "x=y"}
    text = 'a:\n  - name: "x"\n    secret: no\n  b:\n    secret: "s3" # note\nsecret: top\n'
    assert yaml_scalar(text, ("a", "b", "secret")) == "s3"
    assert yaml_scalar(text, ("secret",)) == "top"
    assert yaml_scalar(text, ("a", "secret")) is None
    loggers = 'job_loggers:\n  - name: "STD_OUTPUT"\n    level: x\n  - name: file\n'
    loggers += 'loggers:\n  - name: "DB"\n'
    assert job_loggers(loggers) == ["STD_OUTPUT", "FILE"]
    assert (
        core_image_tag("services:\n  core:\n    image: 'goharbor/harbor-core:v2.15.2'\n")
        == "v2.15.2"
    )
    assert core_image_tag("services:\n  log:\n    image: goharbor/harbor-log:v2\n") is None
    assert endpoint("redis://:pw@redis:6379/2?idle_timeout_seconds=30") == "redis://redis:6379/2"
