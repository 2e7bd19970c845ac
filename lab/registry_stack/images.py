"""Build the registry stack's images from Debian packages, cache them, load them into a dockerd.

Recipe: ``debootstrap --variant=minbase`` of bookworm from the mirror apt uses here (read from
/etc/apt/sources.list*), with every package of the stack in ONE root (PACKAGES), pruned (apt's
.deb cache, docs, locales, PostgreSQL's LLVM JIT), imported with ``docker import`` as the base;
plus harbor_core.py (the health component and every image's healthcheck) and the modules it
imports (CORE_MODULES: the replication API and the replicator), then one small
``DOCKER_BUILDKIT=0 docker build`` layer per service (images/<dir>/Dockerfile,
FROM the base). All images go to ONE ``docker save`` tar in the cache, named by a hash of the
recipe (this file's constants + every file under images/ + harbor_core.py + CORE_MODULES):
each node's dockerd
only runs ``docker load`` of it. A flock on the cache directory makes concurrent builders wait
for the first one instead of bootstrapping twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES_DIR = HERE / "images"
HEALTH_COMPONENT = HERE / "harbor_core.py"
LAB = HERE.parent
CORE_MODULES: dict[str, Path | None] = {
    "lab/__init__.py": None,
    "lab/harbor_api.py": LAB / "harbor_api.py",
    "lab/registry_stack/__init__.py": HERE / "__init__.py",
    "lab/registry_stack/replicator.py": HERE / "replicator.py",
}
"""What harbor_core.py imports, put next to it in the image (under /usr/local/bin): path there
-> the repository's file (None: an empty package marker; the lab's own __init__ imports the
whole lab)."""
CACHE_DIR = Path(os.environ.get("HHLAB_CACHE", "/var/cache/harbor-ha-lab")) / ("registry-stack")
SUITE = "bookworm"
PACKAGES = (
    "docker-registry",
    "postgresql-15",
    "redis-server",
    "nginx",
    "openssl",
    "python3",
    "ca-certificates",
    "skopeo",
    # skopeo's golang-github-containers-common depends on the virtual container-network-stack,
    # which debootstrap does not resolve: netavark (one binary) provides it.
    "netavark",
)
PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
    "var/lib/postgresql/15",  # the cluster postgresql-common's postinst made: ours is on /data
    "usr/lib/postgresql/15/lib/bitcode",
    "usr/lib/postgresql/15/lib/llvmjit.so",
    "usr/lib/postgresql/15/lib/llvmjit_types.bc",
)
"""Paths removed from the root before the import (PostgreSQL runs without its JIT: the
libLLVM it pulls in is most of the image)."""
PRUNE_GLOBS = ("usr/lib/x86_64-linux-gnu/libLLVM-*.so*", "usr/lib/x86_64-linux-gnu/libz3.so*")

BASE_REPO = "harbor-ha-lab/debian-stack"
SERVICE_IMAGES: dict[str, tuple[str, str]] = {
    "postgresql": ("goharbor/harbor-db", "harbor-db"),
    "redis": ("goharbor/redis-photon", "redis"),
    "registry": ("goharbor/registry-photon", "registry"),
    "core": ("goharbor/harbor-core", "core"),
    "proxy": ("goharbor/nginx-photon", "nginx"),
    "log": ("goharbor/harbor-log", "standin"),
    "portal": ("goharbor/harbor-portal", "standin"),
    "jobservice": ("goharbor/harbor-jobservice", "standin"),
    "registryctl": ("goharbor/harbor-registryctl", "standin"),
    "trivy-adapter": ("goharbor/trivy-adapter-photon", "standin"),
}
"""Compose service -> (Harbor's image repository, build directory under images/)."""

DOCKER = shutil.which("docker") or "docker"
DEBOOTSTRAP_TIMEOUT_S = 900.0
DOCKER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Loaded:
    """What :func:`ensure_images` did: the tag, the tar, and the times it took."""

    tag: str
    tar: Path
    built: bool
    build_s: float
    """debootstrap + import + builds + save (0 when the cache was used)."""
    load_s: float
    """``docker load`` of the tar into the dockerd (0 when the images were already there)."""


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The first Debian archive URI apt uses (deb822 ``URIs:`` or one-line ``deb``), not the
    security archive."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file() or not (f.name.endswith(".list") or f.name.endswith(".sources")):
            continue
        for line in f.read_text().splitlines():
            m = re.match(r"\s*URIs:\s*(\S+)", line) or re.match(
                r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line
            )
            if m and "security" not in m.group(1) and "debian" in m.group(1):
                return m.group(1)
    raise RuntimeError(f"no Debian mirror in {apt_dir}/sources.list*")


def recipe_hash() -> str:
    """12 hex digits naming the images and the cache tar; any change to the recipe changes it."""
    h = hashlib.sha256()
    h.update(repr((SUITE, PACKAGES, PRUNE, PRUNE_GLOBS, sorted(SERVICE_IMAGES.items()))).encode())
    for f in sorted([*IMAGES_DIR.rglob("*"), HEALTH_COMPONENT]):
        if f.is_file():
            h.update(str(f.relative_to(HERE)).encode() + b"\0" + f.read_bytes())
    for name, src in sorted(CORE_MODULES.items(), key=lambda kv: kv[0]):
        h.update(name.encode() + b"\0" + (src.read_bytes() if src else b""))
    return h.hexdigest()[:12]


def image_refs(tag: str) -> dict[str, str]:
    """Compose service -> image reference for ``tag``."""
    return {svc: f"{repo}:{tag}" for svc, (repo, _) in SERVICE_IMAGES.items()}


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``argv`` in its own process group; kill the group on timeout; raise on failure."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise RuntimeError(f"{argv[0]}: no answer in {timeout} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}: exit {proc.returncode}: {err[-2000:]}")
    return out


def _docker(docker_host: str, *args: str, timeout: float = DOCKER_TIMEOUT_S) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return _run([DOCKER, "-H", docker_host, *args], timeout, env)


@contextlib.contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def unmount_under(root: Path) -> None:
    """Unmount whatever a failed debootstrap left mounted under ``root`` (proc, sys), deepest
    first, so removing the directory never walks into a live /proc."""
    prefix = str(root.resolve()) + "/"
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(prefix)
    ]
    for mnt in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30, check=False)


def bootstrap_root(root: Path, mirror: str) -> None:
    """debootstrap the stack's Debian root into ``root`` and prune it."""
    try:
        _bootstrap(root, mirror)
    finally:
        unmount_under(root)
    for rel in PRUNE:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for pattern in PRUNE_GLOBS:
        for path in root.glob(pattern):
            path.unlink()


def _bootstrap(root: Path, mirror: str) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ],
        DEBOOTSTRAP_TIMEOUT_S,
    )


def build_images(docker_host: str, tag: str, workdir: Path) -> list[str]:
    """Bootstrap, import and build every image into ``docker_host``; returns the references."""
    root = workdir / "root"
    bootstrap_root(root, debian_mirror())
    # In the base: every image's healthcheck runs it (`harbor_core.py check URL`).
    shutil.copy2(HEALTH_COMPONENT, root / "usr/local/bin" / HEALTH_COMPONENT.name)
    for name, src in CORE_MODULES.items():
        dest = root / "usr/local/bin" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src is None:
            dest.write_text("")
        else:
            shutil.copy2(src, dest)
    base = f"{BASE_REPO}:{tag}"
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        imp = subprocess.run(
            [DOCKER, "-H", docker_host, "import", "-", base],
            stdin=tar.stdout,
            capture_output=True,
            env=env,
            timeout=DOCKER_TIMEOUT_S,
            check=False,
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(timeout=60)
    if imp.returncode != 0 or tar.returncode != 0:
        raise RuntimeError(f"docker import: exit {imp.returncode}: {imp.stderr[-2000:]!r}")
    shutil.rmtree(root)
    built: dict[str, str] = {}
    refs = image_refs(tag)
    for svc, (_, build_dir) in SERVICE_IMAGES.items():
        if build_dir not in built:
            ctx = workdir / f"ctx-{build_dir}"
            shutil.copytree(IMAGES_DIR / build_dir, ctx)
            first = refs[svc]
            build_arg = f"BASE={base}"
            _docker(docker_host, "build", "-q", "--build-arg", build_arg, "-t", first, str(ctx))
            built[build_dir] = first
        else:
            _docker(docker_host, "tag", built[build_dir], refs[svc])
    return list(refs.values())


def _present(docker_host: str, refs: list[str]) -> bool:
    try:
        _docker(docker_host, "image", "inspect", *refs, timeout=60)
    except RuntimeError:
        return False
    return True


def ensure_images(docker_host: str, cache_dir: Path = CACHE_DIR) -> Loaded:
    """Make the stack's images present in ``docker_host``: nothing when they are, ``docker load``
    of the cached tar when it exists, else build them here and save the tar for the next node."""
    tag = f"stack-{recipe_hash()}"
    refs = list(image_refs(tag).values())
    tar = cache_dir / f"{tag}.tar"
    if _present(docker_host, refs):
        return Loaded(tag, tar, built=False, build_s=0.0, load_s=0.0)
    build_s = 0.0
    built = False
    with _cache_lock(cache_dir):
        if not tar.exists():
            start = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="registry-stack-", dir=cache_dir) as tmp:
                build_images(docker_host, tag, Path(tmp))
                partial = Path(tmp) / "images.tar"
                _docker(docker_host, "save", "-o", str(partial), *refs)
                partial.rename(tar)
            # Keep the two newest recipes (two branches of the repository may share the cache).
            tars = sorted(cache_dir.glob("stack-*.tar"), key=lambda p: p.stat().st_mtime)
            for old in tars[:-2]:
                if old != tar:
                    old.unlink()
            build_s = time.monotonic() - start
            built = True
    start = time.monotonic()
    if not _present(docker_host, refs):
        _docker(docker_host, "load", "-q", "-i", str(tar))
    return Loaded(tag, tar, built=built, build_s=build_s, load_s=time.monotonic() - start)
