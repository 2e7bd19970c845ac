"""The leadership lease in Ceph (issue 10): a cls_lock exclusive lock with a duration.

- :mod:`.agent`: the long-lived Ceph client, run by the system Python (python3-rados);
- :mod:`.client`: the daemon's side of it (a supervised child process, JSON lines);
- :mod:`.lease`: take/renew/release through the agent, read/break through the CLI;
- :mod:`.view`: parsing the lock's holder and expiry (pure);
- :mod:`.errors`: the classified failures (held by a live peer, timeout, ...).
"""

from harbor_ha.lease.errors import LeaseError, LeaseHeldByPeer, LeaseTimeout
from harbor_ha.lease.lease import LOCK_NAME, Held, Lease, cookie_of
from harbor_ha.lease.view import LeaseInfo, Locker, parse_lock_info

__all__ = [
    "LOCK_NAME",
    "Held",
    "Lease",
    "LeaseError",
    "LeaseHeldByPeer",
    "LeaseInfo",
    "LeaseTimeout",
    "Locker",
    "cookie_of",
    "parse_lock_info",
]
