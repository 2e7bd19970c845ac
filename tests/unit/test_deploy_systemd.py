"""deploy/systemd/harbor-ha.service: it passes `systemd-analyze verify`, and what it promises
matches the code (the exit code of a bad configuration, the env file the CLI reads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harbor_ha.cli import DEFAULT_ENV_FILE, EXIT_USAGE
from tests.unit.deployfiles import ROOT

UNIT = ROOT / "deploy" / "systemd" / "harbor-ha.service"
INSTALLED_BIN = "/usr/local/bin/harbor-ha"

MOUNT_NAMESPACE_OPTIONS = (
    "PrivateTmp", "PrivateDevices", "PrivateMounts", "ProtectSystem", "ProtectHome",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "ReadOnlyPaths",
    "ReadWritePaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths",
    "BindReadOnlyPaths", "MountFlags", "RootDirectory", "RootImage",
)  # fmt: skip
"""Directives that put the service in a mount namespace of its own."""


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, in order (unit files may repeat a key)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning (an unknown or misspelt
    directive, or a value systemd cannot parse, is only a warning there, so the output must be
    empty).  ExecStart points at this venv's harbor-ha, as the install puts one there."""
    text = UNIT.read_text()
    assert INSTALLED_BIN in text
    exe = Path(sys.executable).parent / "harbor-ha"
    unit = tmp_path / "harbor-ha.service"
    unit.write_text(text.replace(INSTALLED_BIN, str(exe)))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def test_systemd_analyze_verify_reports_a_misspelt_directive(tmp_path: Path) -> None:
    """The check above can fail: verify prints a misspelt directive of the same unit."""
    exe = Path(sys.executable).parent / "harbor-ha"
    text = UNIT.read_text().replace(INSTALLED_BIN, str(exe))
    unit = tmp_path / "harbor-ha.service"
    unit.write_text(text.replace("StartLimitBurst=", "StartLimitBurts="))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "StartLimitBurts" in r.stdout + r.stderr


def test_bad_configuration_is_not_restarted() -> None:
    """The exit code the CLI uses for an invalid configuration is the one systemd must not
    restart on; other failures keep Restart=always."""
    service = directives(UNIT.read_text())["Service"]
    assert service["RestartPreventExitStatus"] == [str(EXIT_USAGE)]
    assert service["Restart"] == ["always"]


def test_unit_needs_the_env_file_the_cli_reads() -> None:
    """The unit starts only when the settings file exists, and it is the file the CLI reads
    by default (so `harbor-ha check` checks what the service runs with)."""
    unit = directives(UNIT.read_text())
    assert unit["Unit"]["ConditionPathExists"] == [str(DEFAULT_ENV_FILE)]
    assert unit["Service"]["EnvironmentFile"] == [str(DEFAULT_ENV_FILE)]


def test_unit_has_start_limits() -> None:
    """A crash loop ends: the unit sets a start-limit interval and burst."""
    unit = directives(UNIT.read_text())["Unit"]
    assert int(unit["StartLimitBurst"][0]) > 1
    assert unit["StartLimitIntervalSec"][0]


def test_unit_has_no_mount_namespace() -> None:
    """No directive gives the daemon a private mount namespace: dockerd (in the host's
    namespace) must see the filesystem harbor-ha mounts.  The unit says why."""
    text = UNIT.read_text()
    present = {key for section in directives(text).values() for key in section}
    assert present.isdisjoint(MOUNT_NAMESPACE_OPTIONS), present & set(MOUNT_NAMESPACE_OPTIONS)
    assert "No mount-namespace hardening" in text
