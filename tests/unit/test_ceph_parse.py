"""Parsing of real captured `rbd`/`ceph` outputs and stderr-to-error mapping (no Ceph needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.ceph import (
    CephBlocklisted,
    CephError,
    CephPermissionDenied,
    CephUnreachable,
    DeviceBusy,
    ImageNotFound,
    MappedDevice,
    Watcher,
    classify,
    is_client_address,
    parse_blocklist,
    parse_device_list,
    parse_watchers,
)
from harbor_ha.ceph.argv import ceph_argv, common_args, rbd_argv
from harbor_ha.ceph.parse import parse_image_info, parse_mapped_device
from harbor_ha.runner import CommandResult
from tests.fakes import example_settings

DATA = Path(__file__).parent / "data" / "ceph"


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def failed(stderr: str, rc: int = 1) -> CommandResult:
    return CommandResult(("rbd",), rc, "", stderr, 0.01)


def test_watchers_two_clients() -> None:
    """`rbd status` with two watchers parses to exact IP:0/NONCE addresses, clients and cookies."""
    ws = parse_watchers(data("rbd_status_two.json"))
    assert ws == [
        Watcher("127.0.0.1:0/220337131", 4244, 140569313555536),
        Watcher("127.0.0.1:0/1790273069", 4255, 140583137973008),
    ]


def test_watchers_none() -> None:
    """`rbd status` of an unwatched image parses to an empty list."""
    assert parse_watchers(data("rbd_status_none.json")) == []


def test_watchers_garbage_is_named_error() -> None:
    """Non-JSON or wrongly shaped status output raises CephError, not a KeyError."""
    with pytest.raises(CephError):
        parse_watchers("rbd: something went wrong")
    with pytest.raises(CephError):
        parse_watchers('{"watchers":[{"address":"1.2.3.4:0/1"}]}')


def test_blocklist_two_arrays_back_to_back() -> None:
    """`ceph osd blocklist ls -f json` prints two arrays back to back: all addrs are returned."""
    assert parse_blocklist(data("blocklist_ls.json")) == [
        "127.0.0.1:0/4242",
        "127.0.0.1:0/775381891",
        "127.0.0.1:0/2312502550",
    ]


def test_blocklist_empty_and_ranges() -> None:
    """An empty blocklist (`[][]`) is empty; range entries of the second array are returned."""
    assert parse_blocklist("\n[][]") == []
    assert parse_blocklist('[]\n[{"range":"10.0.0.0/24","until":"x"}]') == ["10.0.0.0/24"]
    with pytest.raises(CephError):
        parse_blocklist("[][")


def test_device_list() -> None:
    """`rbd device list --format json` rows become MappedDevice records."""
    assert parse_device_list(data("rbd_device_list_wrapper.json")) == [
        MappedDevice("0", "rbd", "", "harbor", "-", "/dev/loop0")
    ]
    assert parse_device_list("[]") == []
    assert parse_device_list("") == []


def test_client_address_shape() -> None:
    """Only exact IP:PORT/NONCE addresses with a non-zero nonce may be blocklisted."""
    assert is_client_address("127.0.0.1:0/220337131")
    assert is_client_address("10.99.0.11:0/12")
    assert is_client_address("v1:10.99.0.11:6789/12")
    assert not is_client_address("10.99.0.11")
    assert not is_client_address("10.99.0.11:0/0")  # what Ceph makes of a bare IP
    assert not is_client_address("10.99.0.11:0")
    assert not is_client_address("")


@pytest.mark.parametrize(
    ("stderr_file", "rc", "error"),
    [
        ("stderr_image_missing.txt", 2, ImageNotFound),
        ("stderr_pool_missing.txt", 2, ImageNotFound),
        ("stderr_blocklist_eacces.txt", 13, CephPermissionDenied),
        ("stderr_status_eperm.txt", 1, CephPermissionDenied),
        ("stderr_no_keyring.txt", 1, CephPermissionDenied),
    ],
)
def test_classify_captured_stderr(stderr_file: str, rc: int, error: type[CephError]) -> None:
    """Real captured stderr maps to the named error, and the message keeps Ceph's words."""
    exc = classify(failed(data(stderr_file), rc), "rbd info rbd/x")
    assert type(exc) is error
    assert data(stderr_file).strip().splitlines()[-1] in str(exc)


@pytest.mark.parametrize(
    ("stderr", "rc", "error"),
    [
        ("rbd: couldn't connect to the cluster!", 110, CephUnreachable),
        ("rbd: error opening image h: (110) Connection timed out", 110, CephUnreachable),
        (
            "rbd: error opening image h: (108) Cannot send after transport endpoint shutdown",
            108,
            CephBlocklisted,
        ),
        ("rbd: sysfs write failed\nrbd: map failed: (30) Read-only file system", 30, CephError),
        (
            "rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy",
            16,
            DeviceBusy,
        ),
    ],
)
def test_classify_other_errors(stderr: str, rc: int, error: type[CephError]) -> None:
    """Unreachable, blocklisted and other failures map to their named errors."""
    assert type(classify(failed(stderr, rc), "x")) is error


def test_image_info_recorded() -> None:
    """`rbd info --format json` of the real image parses to its dict (features listed); a JSON
    value that is not an object raises CephError naming the command."""
    info = parse_image_info(data("rbd_info.json"), "rbd info rbd/harbor")
    assert "exclusive-lock" in info["features"]
    with pytest.raises(CephError, match="rbd info rbd/harbor"):
        parse_image_info("[1, 2]", "rbd info rbd/harbor")


def test_mapped_device_is_the_last_printed_line() -> None:
    """`rbd device map` prints the device last (after any warning lines); nothing -> ""."""
    assert parse_mapped_device("rbd: warning: something\n/dev/rbd0\n\n") == "/dev/rbd0"
    assert parse_mapped_device("  \n") == ""


def test_common_args_order_and_optional_parts() -> None:
    """--id always, then -m, -c and --keyring only when set, in that order; rbd/ceph argv put
    them between the executable and the subcommand."""
    s = example_settings(
        ceph_user="hb",
        ceph_mon_host="10.0.0.1",
        ceph_conf=Path("/e/ceph.conf"),
        ceph_keyring=Path("/k/kr"),
        rbd_bin="/x/rbd",
    )
    assert common_args(s) == [
        "--id", "hb", "-m", "10.0.0.1", "-c", "/e/ceph.conf", "--keyring", "/k/kr",
    ]  # fmt: skip
    assert common_args(example_settings(ceph_user="hb")) == ["--id", "hb"]
    assert rbd_argv(s, "status")[0] == "/x/rbd" and rbd_argv(s, "status")[-1] == "status"
    assert ceph_argv(example_settings(ceph_user="hb"), "osd") == ["ceph", "--id", "hb", "osd"]
