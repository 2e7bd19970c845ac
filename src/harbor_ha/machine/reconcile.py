"""The node's first state, derived from what it observes about itself (safety rule 8)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .evaluate import enter
from .rows import Do
from .states import Action, Kind, Mode, Node, Policy, Result, State, Timer
from .table import ACTION_OF

RESUME_LEASED: tuple[Do, ...] = (Do.RENEW, Do.ARM_RENEW, Do.ARM_DEADLINE)
"""Resuming a promotion past the lease step (or adopting MASTER): renew the lease at once
(a restarted agent takes back this node's own lock; a peer's lock -> LEASE_LOST -> demote)
and arm the renewal and the deadline, as the lease step's success does."""

WATCH_FROM_START: tuple[Do, ...] = (Do.ARM_WATCH,)
"""Starting as BACKUP: watch the lease, as entering BACKUP does."""


def promise_left_timer(delay_s: float) -> Action:
    """A promise that outlived a restart: the PROMISE timer for what is left of it."""
    reason = "failsafe promise over"
    return Action(Kind.START_TIMER, timer=Timer.PROMISE, delay_s=float(delay_s), reason=reason)


@dataclass(frozen=True)
class Facts:
    """What the node observed about itself at start (safety rule 8)."""

    vip: bool  # the VIP is on our interface
    mapped: bool  # the image is mapped on this node
    mounted: bool  # the mountpoint is mounted from the mapped device
    harbor_running: bool  # some container of the Harbor project is running
    mount_foreign: bool = False  # something else is mounted at the mountpoint
    lease_peer: bool = False  # another node's cookie holds the lease (read at start)
    promised_s: float = 0.0  # seconds left of a failsafe promise given before this start
    peer_master: bool = False  # replicated: the peer's /status says MASTER (read at start)


def from_facts(
    facts: Facts, *, demote_on_exit: bool = False, policy: Policy | None = None
) -> Result:
    """Derive the state from facts, and what to do first.  Never trusts a remembered state.

    - VIP, mapped, mounted, Harbor up: adopt as MASTER (a daemon restart is hitless).
    - VIP and a partial promotion: resume it at the first step not yet done
      (every step is idempotent; Ceph fences us if the peer took the image).
    - VIP and nothing: promote from the start (the lease step).
    - Resuming past the lease step: renew it at once (``RESUME_LEASED``).
    - No VIP and anything held, or Harbor running on a bare mountpoint: demote.
    - The VIP and anything held while another node holds the lease (``lease_peer``): that
      node took over (a VIP left by a killed keepalived is no claim): never MASTER, never a
      resumed promotion.  Demote without renewing (``lease_lost``), the fault raised and
      backing off, as for a lost image.  A lease that could not be read is no such fact:
      the first renewal (at once) and the deadline bound the claim.
    - Nothing held, no VIP: BACKUP, watching the lease (``WATCH_FROM_START``).
    - A failsafe promise given before this start still runs (``promised_s``): instead of the
      lease step, BACKUP and promised until the PROMISE timer fires (then it promotes if
      keepalived still wants it).
    """
    base = Node(want_master=facts.vip, demote_on_exit=demote_on_exit, policy=policy or Policy())
    if base.policy.mode is Mode.REPLICATED:
        return _replicated(base, facts)
    if base.policy.mode is Mode.SHARED:
        return _shared(base, facts)
    bare_harbor = facts.harbor_running and not facts.mounted
    held = facts.mapped or facts.mounted or facts.harbor_running or facts.mount_foreign
    if held and facts.vip and facts.lease_peer:
        lost = replace(base, state=State.STOPPING, fault=True, rollback=True, failures=1,
                       lease_lost=True)  # fmt: skip
        node, actions = enter(lost)
        return node, (ACTION_OF[Do.BACKOFF](node, node, None), *actions)
    if bare_harbor or facts.mount_foreign or (held and not facts.vip):
        state = State.STOPPING
    elif not facts.vip or (facts.promised_s > 0 and not held):
        node = replace(base, promised=facts.promised_s > 0)
        actions = tuple(ACTION_OF[d](node, node, None) for d in WATCH_FROM_START)
        if node.promised:
            actions += (promise_left_timer(facts.promised_s),)
        return node, actions
    elif facts.mapped and facts.mounted and facts.harbor_running:
        state = State.MASTER
    elif facts.mapped and facts.mounted:
        state = State.STARTING
    elif facts.mapped:
        state = State.MOUNTING
    else:
        state = State.LEASING
    node, actions = enter(replace(base, state=state))
    if state in (State.MAPPING, State.MOUNTING, State.STARTING, State.MASTER):
        actions += tuple(ACTION_OF[d](node, node, None) for d in RESUME_LEASED)
    return node, actions


def _replicated(base: Node, facts: Facts) -> Result:
    """The replicated mode (no image, no lease): the VIP here with Harbor running is MASTER
    (a daemon restart is hitless; the monitor's first probes judge it as any MASTER's),
    unless the peer says it is MASTER (``peer_master``): then the VIP here is one a killed
    keepalived left on the interface, no claim, and the node starts as a BACKUP that
    keepalived did not elect.  Anything else is BACKUP with Harbor not yet seen healthy
    (``harbor_down``): the fault file stays up until the monitor's first verdict, so
    keepalived gives away a VIP left here without a running Harbor and elects no node whose
    Harbor is unknown.  A peer that did not answer is no such fact: the VIP decides."""
    if facts.vip and facts.harbor_running and not facts.peer_master:
        return enter(replace(base, state=State.MASTER))
    wanted = base.want_master and not facts.peer_master  # a VIP left here is no claim
    return replace(base, harbor_down=True, want_master=wanted), ()


def _shared(base: Node, facts: Facts) -> Result:
    """The shared mode (no VIP, no image, no lease): the configured filesystem mounted and
    Harbor running is SERVING (a daemon restart is hitless; the monitor judges it at once);
    mounted without Harbor resumes at STARTING; Harbor without the verified mount (a bare
    mountpoint, or another filesystem there) is stopped first (STOPPING: then the unmount
    refuses a foreign mount, and the node is DOWN with the fault); nothing held is DOWN,
    which joins at once unless maintenance holds it."""
    if facts.mounted and facts.harbor_running and not facts.mount_foreign:
        state = State.SERVING
    elif facts.harbor_running:
        state = State.STOPPING
    elif facts.mounted and not facts.mount_foreign:
        state = State.STARTING
    elif facts.mount_foreign:
        state = State.UNMOUNTING
    else:
        state = State.DOWN
    return enter(replace(base, want_master=False, state=state))
