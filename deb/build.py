"""Build harbor-ha's .deb from this repository: ``python -m deb.build [-o DIR]``.

The approach: a plain virtualenv under /opt/harbor-ha/venv built by this script with
Debian's own /usr/bin/python3 (3.11 on bookworm) and packed with ``dpkg-deb``.  bookworm has
neither pydantic-settings nor aiodocker (and its pydantic is 1.x), so the dependencies come
from PyPI at the versions of constraints.txt, inside the package.  Not dh-virtualenv: it is
the same idea (a venv in the package, shebangs rewritten to the installed path) but pulls
debhelper and a debian/ tree whose only job would be to run these steps; this script needs
dpkg-deb and python3-venv only, builds in seconds, and every step is visible here.

A venv is relocatable but for its scripts' shebangs and .pyc source paths: the scripts are
rewritten to /opt/harbor-ha/venv/bin/python3, the .pyc files are compiled with the installed
paths.  pip and setuptools are removed from the installed venv (nothing installs into it
later).  Installed:
  /opt/harbor-ha/venv/                    the daemon and its dependencies
  /usr/sbin/harbor-ha                     -> /opt/harbor-ha/venv/bin/harbor-ha
  /lib/systemd/system/harbor-ha.service   deploy/systemd/harbor-ha.service, ExecStart is
                                          /usr/sbin/harbor-ha (not /usr/local/bin)
  /usr/lib/tmpfiles.d/harbor-ha.conf      deploy/systemd/harbor-ha.tmpfiles.conf
  /usr/share/harbor-ha/prometheus/        alert and recording rules, scrape example
  /usr/share/harbor-ha/grafana/           the dashboard
  /usr/share/doc/harbor-ha/               README, runbook, design, copyright, examples/
                                          (harbor-ha.env.example, keepalived)
  /usr/share/man/man8/harbor-ha.8.gz      generated from the CLI (deb/manpage.py)
  /etc/harbor-ha/                         empty: the operator writes harbor-ha.env
The unit is enabled on install (deb-systemd-helper, like dh_installsystemd) and starts once
/etc/harbor-ha/harbor-ha.env exists (ConditionPathExists=).  Depends on python3.11 only;
the programs the daemon drives are Recommends (a node for `harbor-ha check` alone needs none).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deb.manpage import render

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
"""Debian's interpreter, which builds the venv."""
PYTHON_VERSIONED = "/usr/bin/python3.11"
"""What the venv's python3 links to on the target (package python3.11, bookworm's)."""
PREFIX = "/opt/harbor-ha/venv"
ARCH = "amd64"  # pydantic-core and others ship binary wheels
PIP_TIMEOUT_S = 600.0

DEPENDS = "python3.11, libc6 (>= 2.36)"
RECOMMENDS = (
    "keepalived, ceph-common, docker.io | docker-ce, docker-compose | docker-compose-plugin, "
    "e2fsprogs, iproute2, psmisc, util-linux"
)
SUGGESTS = "xfsprogs, prometheus, grafana"

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-tmpfiles --create harbor-ha.conf >/dev/null 2>&1 || true
  if deb-systemd-helper debian-installed harbor-ha.service; then
    deb-systemd-helper update-state harbor-ha.service >/dev/null || true
  else
    deb-systemd-helper enable harbor-ha.service >/dev/null || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
  fi
  if [ ! -f /etc/harbor-ha/harbor-ha.env ]; then
    echo "harbor-ha: write /etc/harbor-ha/harbor-ha.env (example:" \\
      "/usr/share/doc/harbor-ha/examples/harbor-ha.env.example), then" \\
      "harbor-ha check && systemctl start harbor-ha"
  fi
fi
exit 0
"""
PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  deb-systemd-invoke stop harbor-ha.service >/dev/null || true
fi
exit 0
"""
POSTRM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then
  deb-systemd-helper mask harbor-ha.service >/dev/null || true
fi
if [ "$1" = purge ] && [ -x /usr/bin/deb-systemd-helper ]; then
  deb-systemd-helper purge harbor-ha.service >/dev/null || true
  deb-systemd-helper unmask harbor-ha.service >/dev/null || true
  rm -rf /var/lib/harbor-ha
fi
exit 0
"""


def version() -> str:
    from harbor_ha import __version__

    return __version__


def _run(argv: list[str], timeout: float = PIP_TIMEOUT_S) -> None:
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise RuntimeError(f"{argv[0]}: no answer in {timeout} s") from None
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}: exit {rc}")


def build_venv(stage: Path) -> None:
    """The venv at stage+PREFIX, with harbor-ha and its pinned dependencies."""
    venv = stage / PREFIX.lstrip("/")
    _run([PYTHON, "-m", "venv", str(venv)])
    if not (venv / "lib/python3.11").is_dir():
        raise RuntimeError(f"{PYTHON} is not Python 3.11 (bookworm's): the package needs it")
    pip = [str(venv / "bin/python3"), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--no-compile", "-c", str(ROOT / "constraints.txt"), str(ROOT)])
    _run([*pip, "uninstall", "-y", "pip", "setuptools"])
    bindir = venv / "bin"
    # python3 -> the versioned interpreter: the package needs python3.11, not python3
    (bindir / "python3").unlink()
    (bindir / "python3").symlink_to(PYTHON_VERSIONED)
    for f in bindir.iterdir():
        if f.name.startswith(("activate", "Activate", "pip")):
            f.unlink()
        elif f.is_file() and not f.is_symlink():
            text = f.read_bytes()
            if text.startswith(b"#!"):
                body = text.split(b"\n", 1)[1]
                f.write_bytes(f"#!{PREFIX}/bin/python3\n".encode() + body)
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache)
    # .pyc with the installed paths (dpkg keeps the sources' mtimes: they stay valid)
    _run(
        [PYTHON, "-m", "compileall", "-q", "-j", "0", "-s", str(stage), "-p", "/", str(venv)],
        timeout=300,
    )


def _install(src: Path, dest: Path, mode: int = 0o644) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def unit_text() -> str:
    """The packaged unit: deploy/systemd/harbor-ha.service with ExecStart=/usr/sbin/harbor-ha."""
    text = (ROOT / "deploy/systemd/harbor-ha.service").read_text()
    old = "ExecStart=/usr/local/bin/harbor-ha run"
    assert old in text, "deploy/systemd/harbor-ha.service: ExecStart changed"
    return text.replace(old, "ExecStart=/usr/sbin/harbor-ha run")


def install_files(stage: Path) -> None:
    """Everything but the venv and DEBIAN/."""
    sbin = stage / "usr/sbin"
    sbin.mkdir(parents=True)
    (sbin / "harbor-ha").symlink_to(f"{PREFIX}/bin/harbor-ha")
    unit = stage / "lib/systemd/system/harbor-ha.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text())
    _install(
        ROOT / "deploy/systemd/harbor-ha.tmpfiles.conf", stage / "usr/lib/tmpfiles.d/harbor-ha.conf"
    )
    share = stage / "usr/share/harbor-ha"
    for f in (ROOT / "deploy/prometheus").glob("*.yml"):
        _install(f, share / "prometheus" / f.name)
    _install(ROOT / "deploy/grafana/harbor-ha.json", share / "grafana/harbor-ha.json")
    doc = stage / "usr/share/doc/harbor-ha"
    for name in ("README.md", "docs/runbook.md", "docs/design.md"):
        _install(ROOT / name, doc / Path(name).name)
    _install(ROOT / "LICENSE", doc / "copyright")
    _install(ROOT / "config/harbor-ha.env.example", doc / "examples/harbor-ha.env.example")
    for f in (ROOT / "deploy/keepalived").iterdir():
        _install(f, doc / "examples/keepalived" / f.name)
    man = stage / "usr/share/man/man8/harbor-ha.8.gz"
    man.parent.mkdir(parents=True)
    with gzip.GzipFile(man, "wb", mtime=0) as gz:
        gz.write(render().encode())
    (stage / "etc/harbor-ha").mkdir(parents=True)


def control(stage: Path) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir()
    size_kib = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024
    (debian / "control").write_text(
        f"Package: harbor-ha\nVersion: {version()}\nArchitecture: {ARCH}\n"
        "Maintainer: harbor-ha maintainers <harbor-ha@localhost>\n"
        f"Installed-Size: {size_kib}\nDepends: {DEPENDS}\nRecommends: {RECOMMENDS}\n"
        f"Suggests: {SUGGESTS}\nSection: admin\nPriority: optional\n"
        "Description: keeps one Harbor registry available on two nodes\n"
        " keepalived elects the node holding the VIP; harbor-ha maps the Ceph RBD image\n"
        " (exclusive lock, fencing the peer first), mounts it and starts Harbor with\n"
        " docker compose on that node only. Includes its Python dependencies in a\n"
        " virtualenv under /opt/harbor-ha.\n"
    )
    for name, text in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
        (debian / name).write_text(text)
        (debian / name).chmod(0o755)


def build(out_dir: Path) -> Path:
    """Build the .deb into ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"harbor-ha_{version()}_{ARCH}.deb"
    with tempfile.TemporaryDirectory(prefix="harbor-ha-deb-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir(mode=0o755)
        build_venv(stage)
        install_files(stage)
        control(stage)
        _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(stage), str(deb)], 300)
    return deb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deb.build", description=__doc__.split("\n")[0])
    p.add_argument("-o", "--out", type=Path, default=ROOT / "dist", help="output directory")
    args = p.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
