"""The lab's keepalived restart waits for the processes its old pid files name
(lab/keepalived.wait_previous_gone): keepalived itself refuses to start while one exists,
zombies included, and then leaves the old VIP on the interface."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from lab.keepalived import wait_previous_gone


def test_waits_while_a_killed_child_is_a_zombie_and_not_after(tmp_path: Path) -> None:
    """A VRRP child killed but not yet reaped (a zombie: kill(pid, 0) still succeeds) holds the
    restart until the bound; once reaped, and for pid files of gone processes, no wait."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "keepalived.pid").write_text("999999999\n")
        (tmp_path / "vrrp.pid").write_text(f"{proc.pid}\n")
        proc.send_signal(signal.SIGKILL)
        time.sleep(0.2)  # dead, not reaped
        t0 = time.monotonic()
        wait_previous_gone(tmp_path, within_s=0.6)
        assert time.monotonic() - t0 >= 0.6
    finally:
        proc.kill()
        proc.wait()
    t0 = time.monotonic()
    wait_previous_gone(tmp_path, within_s=5.0)
    assert time.monotonic() - t0 < 4.0
