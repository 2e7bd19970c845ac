"""Where the standby looks for Ceph's monitors: mon_host in each spelling Ceph accepts, and the
most specific ceph.conf section that sets it."""

from __future__ import annotations

from pathlib import Path

from harbor_ha.ceph.monitors import conf_mon_host, monitor_addresses, parse_mon_host


def test_mon_host_spellings() -> None:
    """Bare addresses stand for both ports; v1/v2 prefixes pick their port; an explicit port,
    a nonce, address vectors, bracketed IPv6 and repeats are read as Ceph reads them."""
    assert parse_mon_host("10.0.0.1") == [("10.0.0.1", 3300), ("10.0.0.1", 6789)]
    assert parse_mon_host("10.0.0.1:6790, mon2") == [
        ("10.0.0.1", 6790), ("mon2", 3300), ("mon2", 6789),
    ]  # fmt: skip
    assert parse_mon_host("v2:10.99.0.20:3300,v1:10.99.0.20:6789") == [
        ("10.99.0.20", 3300), ("10.99.0.20", 6789),
    ]  # fmt: skip
    assert parse_mon_host("[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0] [v2:10.0.0.2:3300/0]") == [
        ("10.0.0.1", 3300), ("10.0.0.1", 6789), ("10.0.0.2", 3300),
    ]  # fmt: skip
    assert parse_mon_host("[::1]:6789") == [("::1", 6789)]
    assert parse_mon_host("v1:10.0.0.1") == [("10.0.0.1", 6789)]
    assert parse_mon_host("") == []


def test_conf_most_specific_section_wins() -> None:
    """[client.USER] over [client] over [global]; spaces, dashes, underscores and case in the
    key are the same; comments and other sections ([mon.a]) are ignored."""
    text = (
        "[global]\n\tmon host = 10.0.0.1  # the old one\n"
        "[mon.a]\nmon_host = 10.9.9.9\n"
        "[client]\n  Mon-Host = 10.0.0.2\n"
        "[client.harbor]\n; mon host = 10.0.0.4\nmon_host = 10.0.0.3\n"
    )
    assert conf_mon_host(text, "harbor") == "10.0.0.3"
    assert conf_mon_host(text, "other") == "10.0.0.2"
    assert conf_mon_host("[global]\nfsid = x\n", "harbor") is None


def test_addresses_from_settings_then_conf(tmp_path: Path) -> None:
    """ceph_mon_host wins over the file; without either, or with an unreadable file, none."""
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon host = v2:10.99.0.20:3300,v1:10.99.0.20:6789\n")
    assert monitor_addresses(None, conf, "harbor") == [("10.99.0.20", 3300), ("10.99.0.20", 6789)]
    assert monitor_addresses("10.0.0.7:6789", conf, "harbor") == [("10.0.0.7", 6789)]
    assert monitor_addresses(None, tmp_path / "missing.conf", "harbor") == []
