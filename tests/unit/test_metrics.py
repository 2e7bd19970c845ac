"""The registry the daemon serves: build info and the standard process metrics are on it."""

from __future__ import annotations

import platform
import sys

from harbor_ha import __version__
from harbor_ha.metrics import Metrics


def test_build_info_names_the_running_version() -> None:
    """harbor_ha_build_info is 1 with the package version and Python version as labels (what a
    rolling-upgrade dashboard compares across the two nodes)."""
    labels = {"version": __version__, "python": platform.python_version()}
    assert Metrics().registry.get_sample_value("harbor_ha_build_info", labels) == 1


def test_process_metrics_describe_this_process() -> None:
    """process_start_time_seconds (what the restart-loop alert counts changes of) and the open
    fds are exported from /proc/self, and python_info from the platform collector."""
    m = Metrics()
    start = m.registry.get_sample_value("process_start_time_seconds")
    assert start is not None and start > 1_600_000_000
    fds = m.registry.get_sample_value("process_open_fds")
    assert fds is not None and fds >= 3
    implementation = platform.python_implementation()
    info = {
        "implementation": implementation,
        "major": str(sys.version_info.major),
        "minor": str(sys.version_info.minor),
        "patchlevel": str(sys.version_info.micro),
        "version": platform.python_version(),
    }
    assert m.registry.get_sample_value("python_info", info) == 1
