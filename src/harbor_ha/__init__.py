"""harbor-ha: keeps one Harbor registry available on two nodes (keepalived + Ceph RBD)."""

__version__ = "0.1.0"
