"""The daemon: wires the adapters to the pure state machine and supervises the root tasks."""
