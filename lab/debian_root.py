"""A clean Debian bookworm root (``debootstrap --variant=minbase`` plus systemd, as a server
has it), bootstrapped once and cached as a tar; unpacked per test, run in a chroot.

The cache: ``$HHLAB_CACHE/debian-root/bookworm-<recipe>.tar`` (apt's lists and .deb cache
pruned: apt-get update runs in each unpacked copy, so a newer mirror never breaks it).
Downloaded packages are kept across runs in ``$HHLAB_CACHE/debian-root/archives``, bound on
the root's /var/cache/apt/archives during :func:`chroot`.  A flock on the cache directory
makes concurrent builders wait for the first one.

:func:`chroot` runs a command in the root inside a private mount namespace of its own
(``unshare --mount``), where /proc, a minimal /dev, /run, /tmp, resolv.conf and the apt cache
are mounted: all of it vanishes with the namespace, also when the command is killed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab.registry_stack.images import _cache_lock, _run, debian_mirror, unmount_under

CACHE_DIR = Path(os.environ.get("HHLAB_CACHE", "/var/cache/harbor-ha-lab")) / "debian-root"
SUITE = "bookworm"
INCLUDE = ("systemd",)
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists")
DEBOOTSTRAP_TIMEOUT_S = 900.0
CHROOT_TIMEOUT_S = 600.0
UNSHARE = ("unshare", "--mount", "--propagation", "private")

MINIMAL_DEV = r"""
mount -t tmpfs -o mode=755 tmpfs "$r/dev"
for n in null zero full random urandom tty; do
  touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
"""
"""Shell: a small /dev for the root at ``$r`` (the host's null, zero, random..., own ptys)."""

_MOUNTS = (
    r"""
set -e
r=$1; shift
mount -t proc proc "$r/proc"
"""
    + MINIMAL_DEV
    + r"""mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
cp -L /etc/resolv.conf "$r/run/resolv.conf" &&
  mount --bind "$r/run/resolv.conf" "$r/etc/resolv.conf" || true
mkdir -p "$r/var/cache/apt/archives" && mount --bind "$ARCHIVES" "$r/var/cache/apt/archives"
exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"
"""
)


def recipe() -> str:
    """12 hex digits naming the cached tar: any change to the recipe changes it."""
    return hashlib.sha256(repr((SUITE, INCLUDE, PRUNE)).encode()).hexdigest()[:12]


def ensure_tar(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached root tar, bootstrapped first if missing (about 40 s with a near mirror)."""
    tar = cache_dir / f"{SUITE}-{recipe()}.tar"
    if tar.exists():
        return tar
    with _cache_lock(cache_dir):
        if tar.exists():
            return tar
        with tempfile.TemporaryDirectory(prefix="debian-root-", dir=cache_dir) as tmp:
            root = Path(tmp) / "root"
            try:
                _run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        f"--include={','.join(INCLUDE)}",
                        SUITE,
                        str(root),
                        debian_mirror(),
                    ],
                    DEBOOTSTRAP_TIMEOUT_S,
                )
            finally:
                unmount_under(root)
            for rel in PRUNE:
                shutil.rmtree(root / rel)
                (root / rel).mkdir()
            (root / "etc/machine-id").write_text("")  # each boot gets its own
            partial = Path(tmp) / "root.tar"
            _run(["tar", "-C", str(root), "-cf", str(partial), "."], DEBOOTSTRAP_TIMEOUT_S)
            partial.rename(tar)
        for old in cache_dir.glob(f"{SUITE}-*.tar"):
            if old != tar:
                old.unlink()
    return tar


def unpack(dest: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """A fresh copy of the clean root in ``dest`` (created); returns ``dest``."""
    tar = ensure_tar(cache_dir)
    dest.mkdir(parents=True)
    _run(["tar", "-C", str(dest), "-xf", str(tar)], 300)
    return dest


def chroot(
    root: Path,
    *argv: str,
    timeout: float = CHROOT_TIMEOUT_S,
    check: bool = True,
    cache_dir: Path = CACHE_DIR,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``root`` (a clean environment, mounts private to the command); the
    process group is killed on timeout.  Raises on a non-zero exit when ``check``."""
    archives = cache_dir / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [*UNSHARE, "sh", "-c", _MOUNTS, "mounts", str(root), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ARCHIVES": str(archives)},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise RuntimeError(f"chroot {' '.join(argv)}: no answer in {timeout} s") from None
    done = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise RuntimeError(f"chroot {' '.join(argv)}: exit {proc.returncode}: {err[-3000:]}")
    return done


def apt_install(root: Path, *packages: str, cache_dir: Path = CACHE_DIR) -> str:
    """``apt-get update`` then ``apt-get install --no-install-recommends`` in ``root``
    (``packages`` may be paths of .deb files inside the root); returns apt's output."""
    with _cache_lock(cache_dir):  # one apt at a time on the shared archives directory
        chroot(root, "apt-get", "update", "-qq", cache_dir=cache_dir)
        done = chroot(
            root,
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *packages,
            cache_dir=cache_dir,
        )
    return done.stdout
