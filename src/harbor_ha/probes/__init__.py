"""Health probes of the local Harbor: containers (Docker API), serving through its proxy,
Harbor's health API, and the debouncer that turns probe results into a stable value."""

from harbor_ha.probes.containers import ContainerProbe, ContainerReport
from harbor_ha.probes.debounce import Debouncer
from harbor_ha.probes.harbor import HarborHealth, HarborProbe
from harbor_ha.probes.http import (
    HealthReport,
    ProbeResult,
    ServeReport,
    health_probe,
    parse_health,
    tcp_probe,
)

__all__ = [
    "ContainerProbe",
    "ContainerReport",
    "Debouncer",
    "HarborHealth",
    "HarborProbe",
    "HealthReport",
    "ProbeResult",
    "ServeReport",
    "health_probe",
    "parse_health",
    "tcp_probe",
]
