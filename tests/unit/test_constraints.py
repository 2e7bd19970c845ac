"""constraints.txt pins exactly the daemon's runtime dependency closure, at the versions the
tests run with; LICENSE is the license pyproject.toml declares."""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib.metadata import distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.deployfiles import ROOT

CONSTRAINTS = ROOT / "constraints.txt"
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"
"""MD5 of the Apache License 2.0 text as published (apache.org's LICENSE-2.0.txt)."""


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert m is not None, f"not NAME==VERSION: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def runtime_closure() -> dict[str, str]:
    """Installed name -> version of pyproject's [project] dependencies and of everything they
    require in turn on this interpreter (extras not requested are left out)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: dict[str, str] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        dist = distribution(name)
        seen[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return seen


def test_constraints_pin_exactly_the_runtime_closure() -> None:
    """Every package the daemon needs at run time is pinned, and nothing else (no test tool):
    a dependency added to pyproject.toml fails here until constraints.txt is regenerated."""
    closure = runtime_closure()
    assert {"pydantic", "aiohttp", "structlog", "prometheus-client", "yarl"} <= set(closure)
    assert set(pins()) == set(closure)


def test_tests_run_the_pinned_versions() -> None:
    """The venv the tests run in has the pinned versions (scripts/setup installs with
    -c constraints.txt), so CI tests what operators install."""
    assert pins() == runtime_closure()


def test_license_is_the_apache_2_text() -> None:
    """LICENSE is the unmodified Apache License 2.0, the license pyproject.toml declares."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.md5(text).hexdigest() == APACHE_2_MD5
