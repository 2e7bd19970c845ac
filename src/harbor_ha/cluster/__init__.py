"""One cluster, consistent: what must be identical on every node serving one Harbor (its
secrets, its database and Redis endpoints, its version), read as hashes from Harbor's
configuration on each node, and the comparison of the nodes' readings."""

from harbor_ha.cluster.compare import Comparison, NodeReading, compare_nodes
from harbor_ha.cluster.fingerprint import Fingerprint, read_fingerprint

__all__ = ["Comparison", "Fingerprint", "NodeReading", "compare_nodes", "read_fingerprint"]
