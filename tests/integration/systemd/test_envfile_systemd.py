"""harbor-ha's env-file parser against a real systemd: the same files, the same values."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.settings import EnvFileError, parse_env_bytes, parse_env_text
from tests.envfile_cases import CASES
from tests.integration.systemd import pid1

pytestmark = pytest.mark.skipif(pid1.unavailable() is not None, reason=str(pid1.unavailable()))

SERVICE = """\
[Unit]
DefaultDependencies=no
[Service]
Type=oneshot
EnvironmentFile={corpus}/%i.env
ExecStart=/usr/bin/env -0
StandardOutput=file:{out}/%i.out
"""


def systemd_environments(
    tmp_path: Path, files: dict[str, bytes]
) -> dict[str, dict[str, str] | None]:
    """Boot systemd once; each file is the EnvironmentFile= of one instance of a template
    service that writes its environment (``env -0``); the manager's own variables (the names
    an instance with an empty file has: PATH, LANG, INVOCATION_ID, ...) are taken out.
    None for a file systemd refused (the instance did not run)."""
    corpus, out, units = tmp_path / "corpus", tmp_path / "out", tmp_path / "units"
    for d in (corpus, out, units):
        d.mkdir()
    files = {**files, "zz_empty": b""}
    for name, data in files.items():
        (corpus / f"{name}.env").write_bytes(data)
    (units / "hh-env@.service").write_text(SERVICE.format(corpus=corpus, out=out))
    wanted = " ".join(f"hh-env@{name}.service" for name in files)
    (units / "hh-env-done.service").write_text(
        f"[Unit]\nDefaultDependencies=no\nWants={wanted}\nAfter={wanted}\n"
        "SuccessAction=exit\nFailureAction=exit\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
    )
    console = tmp_path / "console.log"
    rc = pid1.boot(units, "hh-env-done.service", console)
    assert rc == 0, console.read_text()
    envs: dict[str, dict[str, str] | None] = {}
    for name in files:
        written = out / f"{name}.out"
        raw = written.read_bytes().decode() if written.exists() else None
        envs[name] = None if raw is None else dict(i.split("=", 1) for i in raw.split("\0") if i)
    base = envs.pop("zz_empty")
    assert base is not None, console.read_text()
    return {
        name: None if env is None else {k: v for k, v in env.items() if k not in base}
        for name, env in envs.items()
    }


def test_systemd_gives_the_service_what_our_parser_reads(tmp_path: Path) -> None:
    """For every case of tests/envfile_cases.py (comments, quotes, escapes, continuations,
    whitespace, invalid names, export, ...), a real systemd's EnvironmentFile= gives the
    service exactly the values harbor-ha's parser returns, and both equal the table."""
    version = pid1.version()
    cases = [c for c in CASES if not (c.before_v254_only and version >= 254)]
    got = systemd_environments(tmp_path, {c.name: c.data for c in cases})
    for case in cases:
        assert got[case.name] == case.values, (case.name, version)
        if case.values is None:
            with pytest.raises(EnvFileError):
                parse_env_bytes(case.data)
        else:
            assert parse_env_bytes(case.data).values == got[case.name], case.name


def test_the_example_and_the_lab_file_read_the_same(tmp_path: Path) -> None:
    """The shipped env example (every line a comment but the required four) and a file as the
    lab writes it read the same under systemd and under harbor-ha."""
    root = Path(__file__).resolve().parents[3]
    example = (root / "config" / "harbor-ha.env.example").read_bytes()
    lab = (
        b"HARBOR_HA_NODE_NAME=a\nHARBOR_HA_VIP=10.0.0.100/24\n"
        b"HARBOR_HA_VRRP_UNICAST_SRC_IP=\nHARBOR_HA_COMPOSE_COMMAND=docker compose\n"
    )
    got = systemd_environments(tmp_path, {"example": example, "lab": lab})
    assert got["example"] == parse_env_text(example.decode()).values
    assert got["lab"] == parse_env_text(lab.decode()).values
