"""Harbor-to-Harbor replication for the replicated pair: the endpoints and event-based
policies `harbor-ha replication setup` makes through Harbor's v2.0 API (``plan`` decides,
``api`` talks to Harbor, ``credentials`` reads the root-only file)."""
