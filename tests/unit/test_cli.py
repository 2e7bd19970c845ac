"""The `harbor-ha` command line, run as a real subprocess: exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harbor_ha.cli import DEFAULT_ENV_FILE, format_status, parse_notify
from harbor_ha.machine import Mode
from harbor_ha.settings import ENV_PREFIX, Settings
from harbor_ha.settings.model import REQUIRED_BY_MODE

ROOT = Path(__file__).resolve().parents[2]
CONFIGURED = {
    "HARBOR_HA_VIP": "10.99.0.100/24",
    "HARBOR_HA_INTERFACE": "eth9",
    "HARBOR_HA_CEPH_POOL": "rbd",
    "HARBOR_HA_CEPH_IMAGE": "harbor",
}
"""The four settings without a default."""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HARBOR_", "CEPH_")) and k not in ("INTERFACE", "KEEPALIVED_ROLE")
    }
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "harbor_ha.cli", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    """`version` prints the version and exits 0."""
    r = cli("version")
    assert r.returncode == 0 and r.stdout.startswith("harbor-ha ")


def test_invalid_setting_exit_2_names_variable() -> None:
    """A bad value exits 2 before anything runs, naming the variable."""
    env = {**CONFIGURED, "HARBOR_HA_VIP": "300.1.1.1", "HARBOR_HA_HTTPS_PORT": "x"}
    r = cli("render-keepalived", "-o", "-", env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("HARBOR_HA_VIP / HARBOR_VIP" in line for line in lines)
    assert any("HARBOR_HA_HTTPS_PORT" in line for line in lines)


def test_nothing_configured_exit_2_names_the_required() -> None:
    """render-keepalived with no env file and no variables renders nothing: exit 2, one line
    per required setting (VIP, interface, Ceph pool and image)."""
    if DEFAULT_ENV_FILE.exists():
        pytest.skip(f"{DEFAULT_ENV_FILE} exists on this machine")
    r = cli("render-keepalived", "-o", "-")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    for name in ("HARBOR_HA_VIP", "HARBOR_HA_INTERFACE", "HARBOR_HA_CEPH_POOL", "CEPH_IMAGE"):
        assert any(name in line and "required, not set" in line for line in lines), name


def test_unknown_and_commented_settings_exit_2(tmp_path: Path) -> None:
    """A misspelt HARBOR_HA_* in the environment and a value with a trailing '# comment' in
    the env file (kept by systemd's grammar, so an invalid VIP) are both reported."""
    f = tmp_path / "h.env"
    f.write_text("HARBOR_HA_VIP=10.0.0.100/24   # the VIP\n")
    env = {k: v for k, v in CONFIGURED.items() if k != "HARBOR_HA_VIP"}
    r = cli("--env-file", str(f), "check", env={**env, "HARBOR_HA_VIPP": "10.0.0.1/24"})
    assert r.returncode == 2
    assert "HARBOR_HA_VIPP: unknown setting (did you mean HARBOR_HA_VIP?)" in r.stderr
    assert "HARBOR_HA_VIP / HARBOR_VIP: not an IP address" in r.stderr


def test_usage_error_exit_2() -> None:
    """An unknown command is a usage error (argparse, exit 2)."""
    assert cli("frobnicate").returncode == 2


def test_render_keepalived_to_stdout_and_file(tmp_path: Path) -> None:
    """render-keepalived writes the node's keepalived.conf from the settings."""
    env = {**CONFIGURED, "HARBOR_HA_KEEPALIVED_FIFO": "/run/x/ka.fifo"}
    r = cli("render-keepalived", "-o", "-", env=env)
    assert r.returncode == 0, r.stderr
    assert "10.99.0.100/24" in r.stdout and "notify_fifo" in r.stdout
    target = tmp_path / "ka.conf"
    r = cli("render-keepalived", "-o", str(target), env=env)
    assert r.returncode == 0 and target.read_text().count("vrrp_instance") == 1


def test_env_file_option(tmp_path: Path) -> None:
    """--env-file is read; a missing one is an error."""
    f = tmp_path / "a.env"
    f.write_text("HARBOR_VIP=10.5.5.5/24\nINTERFACE=eth0\nCEPH_POOL_NAME=p\nCEPH_IMAGE_NAME=i\n")
    r = cli("--env-file", str(f), "render-keepalived", "-o", "-")
    assert r.returncode == 0 and "10.5.5.5/24" in r.stdout
    assert cli("--env-file", str(tmp_path / "none"), "status").returncode == 2


def test_commands_without_daemon_exit_4(tmp_path: Path) -> None:
    """switchover/notify/maintenance with no daemon running: exit 4 and say what is missing;
    status exits 3 (UNKNOWN, as a monitoring plugin does)."""
    env = {**CONFIGURED, "HARBOR_HA_RUNTIME_DIR": str(tmp_path)}
    for args in (["switchover"], ["notify", "master"], ["maintenance", "on"]):
        r = cli(*args, env=env)
        assert r.returncode == 4, args
        assert "control socket" in r.stderr
    r = cli("status", env=env)
    assert r.returncode == 3 and "control socket" in r.stderr


def test_version_flag() -> None:
    """`--version` prints the same as `version` and exits 0."""
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == cli("version").stdout.strip()


def test_notify_bad_words_exit_2(tmp_path: Path) -> None:
    """notify with arguments it cannot read is a usage error."""
    r = cli("notify", "INSTANCE", env={**CONFIGURED, "HARBOR_HA_RUNTIME_DIR": str(tmp_path)})
    assert r.returncode == 2


def test_format_needs_confirmation() -> None:
    """format refuses without the explicit flag (safety rule 3)."""
    r = cli("format", env=CONFIGURED)
    assert r.returncode == 3 and "yes-i-know" in r.stderr


def test_format_is_refused_in_the_shared_mode() -> None:
    """format never runs in the shared mode, even with the flag: a shared filesystem is
    never formatted by one of its clients."""
    env = {
        "HARBOR_HA_MODE": "shared", "HARBOR_HA_VIP": "10.0.0.100/24",
        "HARBOR_HA_INTERFACE": "eth1", "HARBOR_HA_SHARED_FS_TYPE": "nfs",
        "HARBOR_HA_SHARED_FS_SOURCE": "nas:/export",
    }  # fmt: skip
    r = cli("format", "--yes-i-know-this-image-is-new", env=env)
    assert r.returncode == 3 and "never formats" in r.stderr


@pytest.mark.parametrize(
    ("words", "body"),
    [
        (["master"], {"state": "MASTER"}),
        (["BACKUP"], {"state": "BACKUP"}),
        (["INSTANCE", '"VI_1"', "MASTER", "100"], {"instance": "VI_1", "state": "MASTER"}),
        (["INSTANCE", "VI_2", "fault"], {"instance": "VI_2", "state": "FAULT"}),
    ],
)
def test_parse_notify(words: list[str], body: dict[str, str]) -> None:
    """notify accepts the short form and keepalived's generic notify arguments."""
    assert parse_notify(words) == body


def test_format_status_table() -> None:
    """The human status shows the state, the flags, problems and recent transitions."""
    text = format_status(
        {
            "node": "a",
            "state": "MASTER",
            "seconds_in_state": 3.2,
            "fault": False,
            "standby_problems": ["ceph: down"],
            "last_transitions": [
                {"from": "STARTING", "to": "MASTER", "event": "STEP_DONE", "reason": "start done"}
            ],
        }
    )
    assert "MASTER" in text and "ceph: down" in text and "STARTING -> MASTER" in text


def test_env_example_documents_every_setting() -> None:
    """config/harbor-ha.env.example lists every setting, and every setting has a description;
    the lines to fill in are those required in the default (rbd) mode."""
    text = (ROOT / "config" / "harbor-ha.env.example").read_text()
    for name, field in Settings.model_fields.items():
        commented = "" if field.is_required() or name in REQUIRED_BY_MODE[Mode.RBD] else "#"
        assert f"\n{commented}{ENV_PREFIX}{name.upper()}=" in text, name
        assert field.description, f"{name} has no description"


@pytest.mark.parametrize("node", ["a", "b"])
def test_keepalived_examples_are_what_render_writes(node: str, tmp_path: Path) -> None:
    """deploy/keepalived/keepalived-node-X.conf is exactly what render-keepalived writes from
    node-X.env (the examples cannot drift from the code)."""
    env = ROOT / "deploy" / "keepalived" / f"node-{node}.env"
    out = tmp_path / "k.conf"
    r = cli("--env-file", str(env), "render-keepalived", "-o", str(out))
    assert r.returncode == 0, r.stderr
    expected = (ROOT / "deploy" / "keepalived" / f"keepalived-node-{node}.conf").read_text()
    assert out.read_text() == expected


def test_check_json(tmp_path: Path) -> None:
    """`check --json` prints one JSON object: ok, and each finding with its level; a FAIL
    (here: no compose file) makes ok false and the exit code 3, as without --json."""
    missing = tmp_path / "no-compose.yml"
    env = {
        **CONFIGURED,
        "HARBOR_HA_COMPOSE_FILE": str(missing),
        "HARBOR_HA_RUNTIME_DIR": str(tmp_path),
        "HARBOR_HA_COMMAND_TIMEOUT_S": "5",
    }
    r = cli("check", "--json", env=env)
    assert r.returncode == 3, r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is False
    assert {"level": "FAIL", "message": f"compose file {missing} not found"} in data["findings"]
