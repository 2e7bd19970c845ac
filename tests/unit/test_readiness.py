"""The readiness verdict /readiness serves: Patroni's 'ready to serve as leader or replica'."""

from __future__ import annotations

from harbor_ha.machine import Node, State
from harbor_ha.machine.readiness import readiness

ALIVE = (True, "ticked 0.1 s ago")
STALLED = (False, "main loop has not ticked for 40 s")
HEALTHY = (True, "MASTER and harbor healthy")
SICK = (False, "harbor not healthy")


def test_master_is_ready_only_when_primary() -> None:
    """A MASTER is ready exactly when /primary would say 200 (Harbor healthy)."""
    master = Node(state=State.MASTER)
    assert readiness(master, ALIVE, HEALTHY, None, []) == HEALTHY
    assert readiness(master, ALIVE, SICK, True, []) == SICK


def test_backup_is_ready_when_its_standby_check_passed() -> None:
    """A BACKUP is ready when its last standby check passed; else the problems are the reason."""
    backup = Node(state=State.BACKUP)
    assert readiness(backup, ALIVE, SICK, True, [])[0] is True
    ok, why = readiness(backup, ALIVE, SICK, False, ["docker engine not answering"])
    assert not ok and "docker engine not answering" in why
    assert readiness(backup, ALIVE, SICK, None, [])[0] is False


def test_not_ready_in_maintenance_in_transit_or_stalled() -> None:
    """Maintenance, a running step, FENCED_SELF and a stalled loop are all 'not ready'."""
    assert readiness(Node(state=State.BACKUP, maintenance=True), ALIVE, SICK, True, [])[0] is False
    for state in (State.MAPPING, State.STOPPING, State.FENCED_SELF):
        ok, why = readiness(Node(state=state), ALIVE, HEALTHY, True, [])
        assert not ok and str(state) in why
    assert readiness(Node(state=State.MASTER), STALLED, HEALTHY, True, []) == STALLED
