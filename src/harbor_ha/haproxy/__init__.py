"""HAProxy in front of the cluster's nodes: its configuration, rendered from the settings."""

from harbor_ha.haproxy.render import SERVING_PATH, detection_s, render_haproxy

__all__ = ["SERVING_PATH", "detection_s", "render_haproxy"]
