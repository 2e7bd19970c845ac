"""Integration suite: real Ceph, Docker, keepalived and filesystems started by the suite itself."""

pytest_plugins = [
    "lab.ceph",
    "lab.dockerd",
    "lab.keepalived",
    "lab.loopdev",
]
