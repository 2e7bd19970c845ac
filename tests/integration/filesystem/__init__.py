"""Integration tests of the filesystem adapter (real loop devices, real ext4)."""
