"""argv building of the Ceph adapter, against tests.fakes.FakeRunner (recorded outputs, no Ceph).

FakeRunner only replays outputs captured from the real cluster so the argv and
parsing can be checked; the behaviour (fencing, mapping) is proven by
tests/integration/ceph against a real cluster.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from harbor_ha.ceph import Ceph, CephError, FenceError, write_keyring
from harbor_ha.runner import CommandResult, CommandTimeout
from harbor_ha.settings import Settings
from tests.fakes import FakeRunner, Reply, by_substring, example_settings, reply

DATA = Path(__file__).parent / "data" / "ceph"


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "ceph_user": "harbor",
        "ceph_pool": "rbd",
        "ceph_image": "img",
        "ceph_keyring": Path("/k/keyring"),
        "command_timeout_s": 7.0,
    }
    base.update(kw)
    return example_settings(**base)


async def test_common_args_all_set() -> None:
    """Every command carries --id, -m, -c and --keyring, in that order, before the subcommand."""
    runner = FakeRunner([by_substring({"status": (DATA / "rbd_status_none.json").read_text()})])
    ceph = Ceph(settings(ceph_mon_host="10.0.0.1,10.0.0.2", ceph_conf=Path("/e/ceph.conf")), runner)
    await ceph.watchers()
    argv, timeout, _ = runner.calls[0]
    assert argv == (
        "rbd", "--id", "harbor", "-m", "10.0.0.1,10.0.0.2", "-c", "/e/ceph.conf",
        "--keyring", "/k/keyring", "status", "rbd/img", "--format", "json",
    )  # fmt: skip
    assert timeout == 7.0


async def test_common_args_minimal_and_passed_keyring(tmp_path: Path) -> None:
    """Without mon host/conf only --id is given; a key from settings is used via its keyring."""
    s = settings(ceph_keyring=None, ceph_user_key=SecretStr("AQBkey=="), ceph_bin="/x/ceph")
    path = write_keyring(s, tmp_path / "run" / "ceph.keyring")
    runner = FakeRunner()
    await Ceph(s.model_copy(update={"ceph_keyring": path}), runner).blocklist_ls()
    assert runner.calls[0].argv == (
        "/x/ceph", "--id", "harbor", "--keyring", str(path), "osd", "blocklist", "ls", "-f", "json",
    )  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "[client.harbor]\n\tkey = AQBkey==\n"
    assert "AQBkey" not in " ".join(runner.calls[0].argv)


def test_key_without_keyring_path_is_refused() -> None:
    """A key in settings without a written keyring is a configuration error, not a silent no-key."""
    with pytest.raises(CephError, match="write_keyring"):
        Ceph(settings(ceph_keyring=None, ceph_user_key=SecretStr("AQB")), FakeRunner())


async def test_blocklist_add_argv_and_refusals() -> None:
    """blocklist add passes ADDR and EXPIRE; a bare IP or IP:0/0 is refused before any command."""
    runner = FakeRunner()
    ceph = Ceph(settings(), runner)
    await ceph.blocklist_add("127.0.0.1:0/123", 86400, timeout_s=3)
    assert runner.calls[-1][:2] == (
        ("ceph", "--id", "harbor", "--keyring", "/k/keyring",
         "osd", "blocklist", "add", "127.0.0.1:0/123", "86400"),
        3,
    )  # fmt: skip
    for bad in ("127.0.0.1", "127.0.0.1:0/0", "127.0.0.1:0"):
        with pytest.raises(FenceError):
            await ceph.blocklist_add(bad, 600)
    assert len(runner.calls) == 1


async def test_fence_argv_never_rm_and_excludes() -> None:
    """fence blocklists each non-excluded watcher with blocklist_expire_s; no argv contains rm."""
    two = (DATA / "rbd_status_two.json").read_text()
    runner = FakeRunner([by_substring({"status": two, "lock ls": "[]"})])
    ceph = Ceph(settings(blocklist_expire_s=3600), runner)
    # The FakeRunner keeps reporting both watchers, so the wait must hit its deadline.
    with pytest.raises(FenceError):
        await ceph.fence(exclude={"127.0.0.1:0/1790273069"}, timeout_s=0.6)
    adds = [argv for argv, _, _ in runner.calls if "add" in argv]
    assert adds == [
        ("ceph", "--id", "harbor", "--keyring", "/k/keyring",
         "osd", "blocklist", "add", "127.0.0.1:0/220337131", "3600"),
    ]  # fmt: skip
    assert all("rm" not in argv and "remove" not in argv for argv, _, _ in runner.calls)


async def test_fence_adds_through_the_given_adder_and_falls_back_to_the_cli() -> None:
    """With ``add`` (the lease agent's monitor calls) all the entries go through it in ONE
    call (the watcher and the stopped lease holder together: one monitor commit) and no
    `ceph osd blocklist add` runs; an adder that fails (agent dead, timed out) is followed
    by the CLI for every entry. A malformed address is refused before either."""
    two = (DATA / "rbd_status_two.json").read_text()
    runner = FakeRunner([by_substring({"status": two, "lock ls": "[]"})])
    ceph = Ceph(settings(blocklist_expire_s=3600), runner)
    added: list[tuple[tuple[str, ...], int]] = []

    async def add(addresses: Sequence[str], expire_s: int) -> None:
        added.append((tuple(addresses), expire_s))

    holder = "127.0.0.2:0/77"
    with pytest.raises(FenceError):  # the fake keeps listing the watchers
        await ceph.fence(exclude={"127.0.0.1:0/1790273069"}, also=(holder,), add=add, timeout_s=0.6)
    assert added == [(("127.0.0.1:0/220337131", holder), 3600)]
    assert not [argv for argv, _, _ in runner.calls if "add" in argv]

    async def broken(addresses: Sequence[str], expire_s: int) -> None:
        raise RuntimeError("agent gone")

    runner.calls.clear()
    with pytest.raises(FenceError):
        await ceph.fence(
            exclude={"127.0.0.1:0/1790273069"}, also=(holder,), add=broken, timeout_s=0.6
        )
    assert sorted(argv[-3:] for argv, _, _ in runner.calls if "add" in argv) == [
        ("add", "127.0.0.1:0/220337131", "3600"),
        ("add", holder, "3600"),
    ]
    runner.calls.clear()
    with pytest.raises(FenceError, match="not IP:PORT/NONCE"):
        await ceph.fence(also=("127.0.0.1:0/0",), add=add, timeout_s=0.6)
    assert len(added) == 1


async def test_map_and_unmap_argv() -> None:
    """map uses `device map -o exclusive,RBD_MAP_OPTIONS POOL/IMAGE` (default
    osd_request_timeout=60,noshare); unmap uses `device unmap DEV`."""
    listed = (DATA / "rbd_device_list_wrapper.json").read_text().replace('"harbor"', '"img"')
    runner = FakeRunner([by_substring({"device list": listed})])
    ceph = Ceph(settings(), runner)
    assert await ceph.map(10) == "/dev/loop0"  # already mapped: no map command
    assert not [a for a, _, _ in runner.calls if "map" in a]
    runner.rules = [by_substring({"device list": "[]", "device map": "/dev/loop3\n"})]
    with pytest.raises(CephError):  # printed device not confirmed by the list
        await ceph.map(10)
    assert (
        "rbd", "--id", "harbor", "--keyring", "/k/keyring",
        "device", "map", "-o", "exclusive,osd_request_timeout=60,noshare", "rbd/img",
    ) in [a for a, _, _ in runner.calls]  # fmt: skip
    runner.rules = [by_substring({"device list": "[]"})]
    await ceph.unmap(10)  # not mapped: success, no unmap command
    assert not [a for a, _, _ in runner.calls if "unmap" in a]


async def test_timeout_is_unreachable() -> None:
    """A command timeout (process group killed by the runner) becomes CephUnreachable."""
    from harbor_ha.ceph import CephUnreachable

    runner = FakeRunner([by_substring({"info": CommandTimeout(["rbd", "info"], 7.0)})])
    with pytest.raises(CephUnreachable, match="no answer within 7 s"):
        await Ceph(settings(), runner).image_info()


async def test_map_refused_by_live_lock_owner_is_lock_held() -> None:
    """krbd's EROFS answer to a map while a live peer holds the lock is LockHeld (a MapFailed),
    telling the operator to fence first (captured on the VM tier, tests/vm)."""
    from harbor_ha.ceph import LockHeld, MapFailed

    stderr = "rbd: sysfs write failed\nrbd: map failed: (30) Read-only file system\n"
    refused = CommandResult(("rbd",), 30, "", stderr, 1.8)
    runner = FakeRunner([by_substring({"device list": "[]", "device map": refused})])
    with pytest.raises(LockHeld, match="fence it before mapping") as info:
        await Ceph(settings(), runner).map(10)
    assert isinstance(info.value, MapFailed)


def test_map_options_can_be_cleared() -> None:
    """rbd_map_options="" maps with plain -o exclusive."""
    assert Ceph(settings(rbd_map_options=""), FakeRunner()).map_options() == "exclusive"


async def test_unmap_that_cannot_be_verified_is_unmap_failed() -> None:
    """The forced unmap hung until its timeout and the last `rbd device list` finds no answer
    either (seen on the VM tier on a node cut from Ceph): UnmapFailed naming why, so the
    demotion ends FENCED_SELF instead of claiming a clean node."""
    from harbor_ha.ceph import UnmapFailed

    listed = (DATA / "rbd_device_list_wrapper.json").read_text().replace('"harbor"', '"img"')
    lists: Iterator[Reply] = iter([reply(listed), CommandTimeout(["rbd", "device", "list"], 1.0)])

    def rule(argv: list[str]) -> Reply | None:
        if "list" in argv:
            return next(lists)
        if "unmap" in argv:
            return CommandTimeout(argv, 5.0)
        return None

    with pytest.raises(UnmapFailed, match="cannot verify the unmap"):
        await Ceph(settings(), FakeRunner([rule])).unmap(10)


async def test_fence_blocklists_the_lock_owner_without_a_watch() -> None:
    """No watcher left (the OSD dropped a silent client's watch) but a client still owns the
    exclusive lock (`rbd lock ls`): the fence blocklists that owner with blocklist_expire_s
    and confirms it in the blocklist, instead of finding nothing to fence."""
    owner = "127.0.0.1:0/173140613"
    locks = json.dumps([{"id": "client.4123", "locker": "auto 139872", "address": owner}])
    listed = json.dumps([{"addr": owner, "until": "2026-12-08T00:00:00.000000+0000"}])
    runner = FakeRunner([by_substring({
        "status": (DATA / "rbd_status_none.json").read_text(), "lock ls": locks,
        "blocklist ls": listed, "blocklist add": "",
    })])  # fmt: skip
    ceph = Ceph(settings(blocklist_expire_s=3600), runner)
    assert await ceph.fence(timeout_s=2.0) == [owner]
    adds = [argv for argv, _, _ in runner.calls if "add" in argv]
    assert adds == [
        ("ceph", "--id", "harbor", "--keyring", "/k/keyring",
         "osd", "blocklist", "add", owner, "3600"),
    ]  # fmt: skip
