"""Integration suite: real Ceph, Docker, keepalived and filesystems started by the suite itself."""

pytest_plugins = [
    "tests.integration.fixtures.ceph",
    "tests.integration.fixtures.docker",
    "tests.integration.fixtures.keepalived",
    "tests.integration.fixtures.filesystem",
]
