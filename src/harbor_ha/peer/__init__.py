"""The peer harbor-ha over the network: its /status (read-only HTTP) and the failsafe
exchange (authenticated with the shared secret)."""

from harbor_ha.peer.status import PeerUnreachable, peer_status

__all__ = ["PeerUnreachable", "peer_status"]
