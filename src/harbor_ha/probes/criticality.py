"""Which of Harbor's parts a failover is for: the health API's components and the compose
services behind them (pure)."""

from __future__ import annotations

from collections.abc import Collection

COMPONENT_SERVICE = {
    "core": "core",
    "database": "postgresql",
    "jobservice": "jobservice",
    "portal": "portal",
    "redis": "redis",
    "registry": "registry",
    "registryctl": "registryctl",
    "trivy": "trivy-adapter",
}
"""Harbor's health API component -> the compose service that runs it (Harbor's names)."""


def noncritical_services(critical_components: Collection[str]) -> frozenset[str]:
    """The compose services whose component is not critical: their container stopped or
    unhealthy degrades Harbor, it does not fail it.  Services behind no component (proxy,
    log: the path to every other service and its logging) are always critical."""
    return frozenset(
        service for comp, service in COMPONENT_SERVICE.items() if comp not in critical_components
    )
