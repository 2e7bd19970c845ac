"""Network faults between the lab's netns: iptables DROP rules, recorded in the lab's state
so ``heal`` (and ``down``) remove exactly the rules that were added."""

from __future__ import annotations

from lab.procs import sh
from lab.state import HOSTS, LabState, host


def _drop(st: LabState, netns: str, peer: str) -> None:
    """iptables DROP of everything to and from ``peer`` in ``netns``.  (Blackhole routes do not
    cut keepalived: it sends on a socket bound to eth0, which ignores them — measured.)"""
    for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
        rule = [chain, flag, f"{peer}/32", "-j", "DROP"]
        sh("ip", "netns", "exec", netns, "iptables", "-I", *rule)
        st.blackholes.append([netns, *rule])
    st.save()


def partition(st: LabState, a: str = "a", b: str = "b") -> None:
    """Cut the two nodes from each other, VRRP included (both keep Ceph and the client)."""
    na, nb = st.nodes[a], st.nodes[b]
    _drop(st, na.netns, nb.address)
    _drop(st, nb.netns, na.address)


def isolate_from_ceph(st: LabState, name: str) -> None:
    """Cut one node from the Ceph netns (it keeps its peer and the client)."""
    _drop(st, st.nodes[name].netns, host(st.subnet, HOSTS["ceph"]))


def heal(st: LabState) -> None:
    for netns, *rule in st.blackholes:
        sh("ip", "netns", "exec", netns, "iptables", "-D", *rule, check=False)
    st.blackholes.clear()
    st.save()
