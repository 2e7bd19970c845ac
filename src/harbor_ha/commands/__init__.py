"""One-shot operator commands of the CLI that use the adapters but not the daemon."""
