"""HAProxy in front of the cluster's nodes: its configuration, rendered from the settings."""

from harbor_ha.haproxy.render import detection_s, render_haproxy

__all__ = ["detection_s", "render_haproxy"]
