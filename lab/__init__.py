"""The two-node harbor-ha lab (real keepalived, Ceph, dockerd, Harbor-shaped project)."""
