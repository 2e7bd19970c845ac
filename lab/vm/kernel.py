"""Debian's stock kernel and udev, fetched as packages and unpacked into a cache.

``apt-get download`` of the image ``linux-image-amd64`` depends on (and of
``udev``), ``dpkg-deb -x``, ``depmod -b``.  The cache is keyed by the kernel
version: a second call only checks that the tree is there.  Nothing is built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("HARBOR_HA_LAB_CACHE", "/var/cache/harbor-ha-lab")) / "vm"
KERNEL_META = "linux-image-amd64"
UDEV_PACKAGE = "udev"
APT_TIMEOUT_S = 600.0


class KernelFetchError(RuntimeError):
    """The kernel or udev package could not be fetched or unpacked."""


@dataclass(frozen=True)
class KernelTree:
    """An unpacked kernel: its version, bzImage and module tree, and the unpacked udev."""

    version: str
    root: Path
    udev_root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.version


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        res = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT_S,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise KernelFetchError(f"{' '.join(argv)}: timed out") from exc
    if res.returncode != 0:
        raise KernelFetchError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr[-500:]}")
    return res.stdout


def kernel_package() -> str:
    """The linux-image-VERSION package that linux-image-amd64 depends on."""
    out = _run(["apt-cache", "depends", KERNEL_META])
    match = re.search(r"Depends:\s*(linux-image-\d\S*-amd64)", out)
    if match is None:
        raise KernelFetchError(f"apt-cache depends {KERNEL_META}: no linux-image dependency")
    return match.group(1)


def _download(package: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    _run(["apt-get", "download", "-q", package], cwd=debs)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise KernelFetchError(f"apt-get download {package}: no .deb in {debs}")
    return found[-1]


def _unpack(deb: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    tmp.rename(dest)


def ensure_kernel(cache: Path = CACHE_DIR, package: str | None = None) -> KernelTree:
    """Fetch and unpack the kernel and udev into ``cache`` unless they are there already.

    If the download fails (stale package lists: that kernel left the mirror), the lists are
    refreshed once and the current kernel package is asked for again.
    """
    if package is None:
        try:
            return _ensure(cache, kernel_package())
        except KernelFetchError:
            _run(["apt-get", "update", "-qq"])
            return _ensure(cache, kernel_package())
    return _ensure(cache, package)


def _ensure(cache: Path, package: str) -> KernelTree:
    version = package.removeprefix("linux-image-")
    root = cache / f"kernel-{version}"
    udev_root = cache / "udev"
    if not (root / "boot" / f"vmlinuz-{version}").is_file():
        _unpack(_download(package, cache / "debs"), root)
    modules = root / "lib" / "modules" / version
    if not (modules / "modules.dep").is_file() or (modules / "modules.dep").stat().st_size == 0:
        _run(["depmod", "-b", str(root), version])
    if not (udev_root / "bin" / "udevadm").is_file():
        _unpack(_download(UDEV_PACKAGE, cache / "debs"), udev_root)
    return KernelTree(version=version, root=root, udev_root=udev_root)


def module_closure(tree: KernelTree, names: list[str]) -> list[Path]:
    """The .ko files for ``names`` and everything they depend on, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (tree.modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key not in by_name:
            raise KernelFetchError(f"module {name} not in {tree.modules_dir}/modules.dep")
        visit(by_name[key])
    return [tree.modules_dir / p for p in order]
