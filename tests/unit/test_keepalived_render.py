"""keepalived.conf rendering: required pieces in order, unicast/multicast, real `keepalived -t`."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from harbor_ha.keepalived import RenderError, check_config, render_config
from harbor_ha.keepalived.render import static_problems
from harbor_ha.runner import ProcessRunner
from harbor_ha.settings import Settings, load_settings
from tests.fakes import example_settings


def make_settings(tmp_path: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "node_name": "node-a",
        "interface": "eth0",
        "vip": "10.77.0.100/24",
        "vrrp_instance": "VI_1",
        "vrrp_router_id": 77,
        "vrrp_advert_interval_s": 0.1,
        "keepalived_fifo": tmp_path / "run" / "keepalived.fifo",
        "priority_file": tmp_path / "run" / "priority",
        "fault_file": tmp_path / "run" / "fault",
        "priority_weight": 50,
        "keepalived_role": "MASTER",
    }
    values.update(over)
    return example_settings(**values)


def test_rendered_config_has_every_required_piece_in_order(tmp_path: Path) -> None:
    """global_defs: script_user, enable_script_security, then notify_fifo; instance as designed."""
    s = make_settings(tmp_path)
    text = render_config(s)
    order = [
        "global_defs {",
        "router_id node-a",
        "script_user root",
        "enable_script_security",
        f'notify_fifo "{s.keepalived_fifo}"',
        "fifo_write_vrrp_states_on_reload",
        "vrrp_version 3",
        "track_file harbor_ha_priority {",
        f'file "{s.priority_file}"',
        "weight 50",
        "init_file 0",
        "track_file harbor_ha_fault {",
        f'file "{s.fault_file}"',
        "weight 0",
        "init_file 1",
        "vrrp_instance VI_1 {",
        "state BACKUP",
        "nopreempt",
        "interface eth0",
        "virtual_router_id 77",
        "priority 110",
        "advert_int 0.1",
        "notify_priority_changes true",
        "10.77.0.100/24 dev eth0",
        "track_file {",
        "harbor_ha_priority",
        "harbor_ha_fault",
    ]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] not in "#!"]
    at = 0
    for piece in order:
        assert piece in lines[at:], f"{piece!r} missing or out of order"
        at = lines.index(piece, at) + 1
    assert "overwrite" not in text, "init_file must not overwrite the daemon's decision"
    assert text.count("{") == text.count("}")
    assert static_problems(text, s) == []


def test_multicast_by_default(tmp_path: Path) -> None:
    """Without unicast peers the config has no unicast_* keywords (multicast VRRP)."""
    text = render_config(make_settings(tmp_path))
    assert "unicast" not in text


def test_the_replicated_mode_renders_without_ceph_and_says_what_the_files_mean(
    tmp_path: Path,
) -> None:
    """render-keepalived in the replicated mode: no Ceph setting needed (loaded through the
    settings loader, as the CLI does), the same two track files, and comments saying the
    priority file is this node's Harbor health (the fault file up while it is not seen
    healthy); the static check finds nothing missing."""
    s = load_settings(None, {
        "HARBOR_HA_MODE": "replicated", "HARBOR_HA_VIP": "10.77.0.100/24",
        "HARBOR_HA_INTERFACE": "eth0", "HARBOR_HA_NODE_NAME": "node-a",
    })  # fmt: skip
    text = render_config(s)
    assert "# Mode replicated." in text and "own Harbor is healthy" in text
    assert "track_file harbor_ha_priority {" in text and "track_file harbor_ha_fault {" in text
    assert static_problems(text, s) == []


def test_unicast_peers(tmp_path: Path) -> None:
    """With unicast peers: unicast_src_ip and one unicast_peer entry per peer."""
    s = make_settings(
        tmp_path, vrrp_unicast_src_ip="10.77.0.11", vrrp_unicast_peers="10.77.0.12,10.77.0.13"
    )
    text = render_config(s)
    assert "unicast_src_ip 10.77.0.11" in text
    block = text[text.index("unicast_peer {") : text.index("}", text.index("unicast_peer {"))]
    assert block.split()[2:] == ["10.77.0.12", "10.77.0.13"]


def test_base_priority_and_advert_formatting(tmp_path: Path) -> None:
    """priority is the settings' base priority; advert_int is a plain decimal."""
    text = render_config(
        make_settings(tmp_path, keepalived_role="BACKUP", vrrp_advert_interval_s=1)
    )
    assert "priority 100\n" in text
    assert "advert_int 1\n" in text


@pytest.mark.parametrize(
    "over",
    [
        {"node_name": "node#a"},
        {"node_name": "node!a"},
        {"keepalived_fifo": Path("/run/harbor ha/fifo")},
        {"fault_file": Path('/run/x"y')},
        {"priority_file": Path("relative/prio")},
    ],
)
def test_unsafe_values_are_refused(tmp_path: Path, over: dict[str, Any]) -> None:
    """Values keepalived would read as comments, separators or quotes raise RenderError."""
    with pytest.raises(RenderError):
        render_config(make_settings(tmp_path, **over))


def test_static_check_finds_missing_pieces_and_bad_order(tmp_path: Path) -> None:
    """The static check names a missing FIFO/track file/instance and script_user after the FIFO."""
    s = make_settings(tmp_path)
    text = render_config(s)
    moved = text.replace("    script_user root\n", "").replace(
        "vrrp_version 3\n", "vrrp_version 3\n    script_user root\n"
    )
    assert any("before notify_fifo" in p for p in static_problems(moved, s))
    problems = static_problems("global_defs {\n}\n", s)
    assert len(problems) == 4, problems


def _real_interface() -> str | None:
    """A multicast-capable interface of this host (keepalived -t checks it exists)."""
    for _, name in socket.if_nameindex():
        try:
            flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
        except (OSError, ValueError):
            continue
        if name != "lo" and flags & 0x1000:  # IFF_MULTICAST
            return name
    return None


needs_keepalived = pytest.mark.skipif(
    shutil.which("keepalived") is None or _real_interface() is None,
    reason="keepalived not installed or no non-loopback interface",
)


@needs_keepalived
async def test_rendered_config_passes_real_keepalived_check(tmp_path: Path) -> None:
    """The real `keepalived -t -f` accepts the rendered config (unicast and multicast)."""
    iface = _real_interface()
    for over in ({}, {"vrrp_unicast_src_ip": "10.77.0.11", "vrrp_unicast_peers": "10.77.0.12"}):
        s = make_settings(tmp_path, interface=iface, **over)
        conf = tmp_path / "keepalived.conf"
        conf.write_text(render_config(s))
        assert await check_config(ProcessRunner(), s, conf) == []


@needs_keepalived
async def test_check_config_reports_keepalived_errors(tmp_path: Path) -> None:
    """A config keepalived rejects yields its error lines as problems."""
    s = make_settings(tmp_path, interface=_real_interface())
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render_config(s).replace("nopreempt", "no_such_keyword"))
    problems = await check_config(ProcessRunner(), s, conf)
    assert any("no_such_keyword" in p for p in problems), problems


async def test_check_config_reports_missing_file_and_binary(tmp_path: Path) -> None:
    """A missing config file or keepalived binary is a problem, not an exception."""
    s = make_settings(tmp_path, keepalived_bin=str(tmp_path / "no-keepalived"))
    assert "cannot read" in (await check_config(ProcessRunner(), s, tmp_path / "none"))[0]
    conf = tmp_path / "keepalived.conf"
    conf.write_text(render_config(s))
    problems = await check_config(ProcessRunner(), s, conf)
    assert len(problems) == 1 and "cannot execute" in problems[0], problems
