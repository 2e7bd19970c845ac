"""Mappings made with the krbd stand-in (lab/krbd_standin.py: rbd-fuse + a loop device, for a
kernel without krbd): each simulated node keeps its mappings in its own state directory, named
by the environment variable ``HHTEST_RBD_STATE``; forced teardown of what a node still
maps, also half-made or fenced (poisoned FUSE) mappings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from lab.procs import mounts_under

KRBD_STANDIN = Path(__file__).resolve().parent / "krbd_standin.py"
"""The krbd stand-in, an executable ``rbd`` CLI; use it as ``Settings.rbd_bin``."""
RBD_STATE_ENV = "HHTEST_RBD_STATE"
"""Environment variable naming the stand-in's state directory (one per simulated node)."""


def standin_env(state_dir: Path) -> dict[str, str]:
    """This process's environment, with the stand-in keeping its mappings in ``state_dir``."""
    return {**os.environ, RBD_STATE_ENV: str(state_dir)}


def teardown_mappings(state_dir: Path) -> list[str]:
    """Force teardown of every mapping the stand-in recorded in ``state_dir`` (also half-made
    or fenced ones); returns the entries it removed."""
    done: list[str] = []
    if not state_dir.is_dir():
        return done
    for entry in sorted(p for p in state_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        try:
            res = subprocess.run(
                [str(KRBD_STANDIN), "_teardown", entry.name],
                capture_output=True,
                text=True,
                timeout=60,
                env=standin_env(state_dir),
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"krbd stand-in teardown of {entry}: timed out")
            continue
        if res.returncode == 0:
            done.append(entry.name)
        else:
            print(f"krbd stand-in teardown of {entry}: {res.stderr.strip()}")
    return done


def remove_state_dir(state_dir: Path) -> list[str]:
    """Tear down everything the stand-in mapped under ``state_dir`` (force), even poisoned
    mounts, then remove the state dir; returns the entries it unmapped."""
    done = teardown_mappings(state_dir)
    left = mounts_under(str(state_dir)) if state_dir.exists() else []
    if left:
        # Never rmtree into a (possibly poisoned) FUSE mount: a stat there can hang forever.
        print(f"krbd stand-in state {state_dir} still has mounts {left}: kept")
    else:
        shutil.rmtree(state_dir, ignore_errors=True)
    return done
