"""Settings: the four required values, strict names, the env file, one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.settings import LEGACY_NAMES, Settings, SettingsError, env_names, load_settings

REQUIRED = {
    "HARBOR_HA_VIP": "10.0.0.100/24",
    "HARBOR_HA_INTERFACE": "eth1",
    "HARBOR_HA_CEPH_POOL": "rbd",
    "HARBOR_HA_CEPH_IMAGE": "harbor",
}


def problems(env_file: Path | None = None, /, **environ: str) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(env_file, environ)
    return info.value.problems


def test_nothing_set_names_the_four_required() -> None:
    """With no env file and no variables: one line per required setting (VIP, interface,
    Ceph pool and image), each naming its variables; no invented default."""
    assert problems() == [
        "HARBOR_HA_INTERFACE / INTERFACE: required, not set",
        "HARBOR_HA_VIP / HARBOR_VIP: required, not set",
        "HARBOR_HA_CEPH_POOL / CEPH_POOL_NAME: required, not set (HARBOR_HA_MODE=rbd)",
        "HARBOR_HA_CEPH_IMAGE / CEPH_IMAGE_NAME: required, not set (HARBOR_HA_MODE=rbd)",
    ]


def test_the_image_is_required_by_the_rbd_mode_only() -> None:
    """The Ceph pool and image are required in the rbd mode (named once each, also when every
    other value is valid) and not in the replicated mode, which has no image."""
    base = {"HARBOR_HA_VIP": "10.0.0.100/24", "HARBOR_HA_INTERFACE": "eth1"}
    assert problems(**base) == [
        "HARBOR_HA_CEPH_POOL / CEPH_POOL_NAME: required, not set (HARBOR_HA_MODE=rbd)",
        "HARBOR_HA_CEPH_IMAGE / CEPH_IMAGE_NAME: required, not set (HARBOR_HA_MODE=rbd)",
    ]
    s = load_settings(None, {**base, "HARBOR_HA_MODE": "replicated"})
    assert (s.mode, s.ceph_pool, s.ceph_image) == ("replicated", "", "")
    assert problems(**base, HARBOR_HA_MODE="nas") == [
        "HARBOR_HA_MODE: Input should be 'rbd', 'replicated' or 'shared' (got 'nas')"
    ]


def test_required_set_the_rest_defaults() -> None:
    """The four required values are enough; everything else has its documented default."""
    s = load_settings(None, REQUIRED)
    assert (s.vip, s.interface, s.ceph_pool, s.ceph_image) == ("10.0.0.100/24", "eth1", "rbd",
                                                               "harbor")  # fmt: skip
    assert s.https_port == 443 and s.base_priority == 100 and s.mountpoint == Path("/data")


def test_predecessor_names() -> None:
    """The bash predecessor's variables still work."""
    s = load_settings(
        None,
        {
            "HARBOR_VIP": "10.1.2.3",
            "CEPH_MON_HOST": "10.0.0.1,10.0.0.2",
            "CEPH_USER": "hb",
            "CEPH_USER_KEY": "AQBx==",
            "CEPH_POOL_NAME": "p",
            "CEPH_IMAGE_NAME": "img",
            "KEEPALIVED_ROLE": "MASTER",
            "INTERFACE": "ens3",
        },
    )
    assert s.vip == "10.1.2.3/32" and s.vip_address == "10.1.2.3"
    assert s.ceph_mon_host == "10.0.0.1,10.0.0.2" and s.ceph_user == "hb"
    assert s.ceph_user_key is not None and s.ceph_user_key.get_secret_value() == "AQBx=="
    assert (s.ceph_pool, s.ceph_image, s.interface) == ("p", "img", "ens3")
    assert s.base_priority == 110


def test_own_name_wins_over_legacy() -> None:
    """HARBOR_HA_VIP beats HARBOR_VIP when both are set."""
    env = {**REQUIRED, "HARBOR_VIP": "10.1.2.3", "HARBOR_HA_VIP": "10.9.9.9/24"}
    assert load_settings(None, env).vip == "10.9.9.9/24"


def test_bare_names_are_not_read() -> None:
    """A field's bare name (VIP, MOUNTPOINT, LOG_LEVEL, NODE_NAME, DOCKER_HOST, ...) sets
    nothing, and like every other unrelated variable of the environment it is no error."""
    env = {
        **REQUIRED,
        "VIP": "10.7.7.7/24",
        "MOUNTPOINT": "/elsewhere",
        "LOG_LEVEL": "not-a-level",
        "NODE_NAME": "other",
        "DOCKER_HOST": "tcp://10.0.0.9:2375",
        "vip": "10.8.8.8/24",
        "PATH": "/usr/bin",
        "HOME": "/root",
    }
    s = load_settings(None, env)
    assert s.vip == "10.0.0.100/24" and s.mountpoint == Path("/data")
    assert s.log_level == "info" and s.node_name != "other"
    assert s.docker_host == "unix:///var/run/docker.sock"


def test_unknown_prefixed_variable_in_environment() -> None:
    """An unknown HARBOR_HA_* variable is an error naming it, with the nearest known name;
    a wrong case counts as unknown (the environment is case-sensitive)."""
    found = problems(**REQUIRED, HARBOR_HA_VIPP="10.0.0.1/24", harbor_ha_mountpoint="/x")
    assert found == [
        "HARBOR_HA_VIPP: unknown setting (did you mean HARBOR_HA_VIP?) [environment]",
        "harbor_ha_mountpoint: unknown setting (did you mean HARBOR_HA_MOUNTPOINT?) [environment]",
    ]


def test_unknown_prefixed_without_near_name() -> None:
    """Far from every known name: the error has no suggestion."""
    assert problems(**REQUIRED, HARBOR_HA_ZZZZZZZZZZZZZZZZZZZZZZ="1") == [
        "HARBOR_HA_ZZZZZZZZZZZZZZZZZZZZZZ: unknown setting [environment]"
    ]


def test_env_file(tmp_path: Path) -> None:
    """An env file sets fields with systemd's grammar (comments, quotes, blanks)."""
    f = tmp_path / "h.env"
    f.write_text(
        "# comment\nHARBOR_HA_VIP=10.0.0.100/24\nINTERFACE = eth2\nCEPH_POOL_NAME='p'\n"
        'HARBOR_HA_CEPH_IMAGE="img"\nHARBOR_HA_MOUNTPOINT="/srv/harbor"\n'
        "HARBOR_HA_HTTPS_PORT=8443\nHARBOR_HA_VRRP_UNICAST_PEERS=10.0.0.2, 10.0.0.3\n"
        "HARBOR_HA_COMPOSE_COMMAND=docker compose\n"
    )
    s = load_settings(f, {})
    assert (s.interface, s.ceph_pool, s.ceph_image) == ("eth2", "p", "img")
    assert s.mountpoint == Path("/srv/harbor") and s.https_port == 8443
    assert s.vrrp_unicast_peers == ["10.0.0.2", "10.0.0.3"]
    assert s.compose_command == ["docker", "compose"]


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    """A variable of the environment beats the env file's value, whatever name sets it."""
    f = tmp_path / "h.env"
    f.write_text("HARBOR_HA_VIP=10.0.0.1/24\nHARBOR_HA_HTTPS_PORT=8443\n")
    env = {k: v for k, v in REQUIRED.items() if k != "HARBOR_HA_VIP"}
    s = load_settings(f, {**env, "HARBOR_VIP": "10.0.0.2/24"})
    assert s.vip == "10.0.0.2/24" and s.https_port == 8443


def test_inline_comment_is_part_of_the_value(tmp_path: Path) -> None:
    """`HARBOR_HA_VIP=10.0.0.100/24   # the VIP` keeps the comment, as systemd does, and is
    then an invalid VIP: check and the service agree."""
    f = tmp_path / "h.env"
    f.write_text(
        "HARBOR_HA_VIP=10.0.0.100/24   # the VIP\nHARBOR_HA_INTERFACE=eth0\n"
        "HARBOR_HA_CEPH_POOL=rbd\nHARBOR_HA_CEPH_IMAGE=harbor\n"
    )
    found = problems(f)
    assert len(found) == 1
    assert found[0].startswith("HARBOR_HA_VIP / HARBOR_VIP: not an IP address")
    assert "# the VIP" in found[0]


def test_unknown_keys_in_env_file(tmp_path: Path) -> None:
    """In the env file every key must be a setting: a typo of a HARBOR_HA_* name, a bare field
    name and any other variable are errors with the file, the line and a suggestion."""
    f = tmp_path / "h.env"
    f.write_text(
        "HARBOR_HA_VIPP=10.0.0.100/24\nVIP=10.0.0.100/24\nLOG_LEVEL=debug\nCEPH_POOL=rbd\n"
        "http_proxy=http://proxy:3128\n"
    )
    found = problems(f, **REQUIRED)
    assert found == [
        f"HARBOR_HA_VIPP: unknown setting (did you mean HARBOR_HA_VIP?) [env file {f}:1]",
        f"VIP: unknown setting (did you mean HARBOR_HA_VIP?) [env file {f}:2]",
        f"LOG_LEVEL: unknown setting (did you mean HARBOR_HA_LOG_LEVEL?) [env file {f}:3]",
        f"CEPH_POOL: unknown setting (did you mean HARBOR_HA_CEPH_POOL?) [env file {f}:4]",
        f"http_proxy: unknown setting [env file {f}:5]",
    ]


def test_env_file_lines_systemd_ignores_are_errors(tmp_path: Path) -> None:
    """Lines systemd would drop (no '=', `export`, invalid names) are errors with file:line,
    reported with the other problems in one go."""
    f = tmp_path / "h.env"
    f.write_text("export HARBOR_HA_VIP=10.0.0.1/24\nHARBOR_HA_HTTPS_PORT\nHARBOR_HA_HTTP_PORT=-5\n")
    env = {k: v for k, v in REQUIRED.items() if k != "HARBOR_HA_VIP"}
    found = problems(f, **env)
    assert found[0].startswith(f"env file {f}:1: 'export HARBOR_HA_VIP' is not a valid")
    assert found[1].startswith(f"env file {f}:2: 'HARBOR_HA_HTTPS_PORT' has no '='")
    assert found[2:] == [
        "HARBOR_HA_VIP / HARBOR_VIP: required, not set",
        "HARBOR_HA_HTTP_PORT: Input should be greater than or equal to 0 (got '-5')",
    ]


def test_missing_env_file(tmp_path: Path) -> None:
    """A named env file that does not exist is an error, not silently ignored."""
    assert problems(tmp_path / "nope.env", **REQUIRED) == [
        f"env file {tmp_path / 'nope.env'}: not found or not a regular file"
    ]


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("HARBOR_VIP", "10.0.0.300", "HARBOR_HA_VIP / HARBOR_VIP"),
        ("HARBOR_HA_HTTPS_PORT", "70000", "HARBOR_HA_HTTPS_PORT"),
        ("HARBOR_HA_HTTPS_PORT", "abc", "HARBOR_HA_HTTPS_PORT"),
        ("KEEPALIVED_ROLE", "PRIMARY", "KEEPALIVED_ROLE"),
        ("HARBOR_HA_MOUNTPOINT", "relative/dir", "HARBOR_HA_MOUNTPOINT"),
        ("HARBOR_HA_MOUNTPOINT", "/", "HARBOR_HA_MOUNTPOINT"),
        ("CEPH_POOL_NAME", "bad pool", "CEPH_POOL_NAME"),
        ("HARBOR_HA_FSCK_TIMEOUT_S", "-1", "HARBOR_HA_FSCK_TIMEOUT_S"),
        ("HARBOR_HA_VRRP_UNICAST_PEERS", "10.0.0.1,nothost", "HARBOR_HA_VRRP_UNICAST_PEERS"),
        ("HARBOR_HA_VRRP_ROUTER_ID", "0", "HARBOR_HA_VRRP_ROUTER_ID"),
        ("HARBOR_HA_GUARD_MOUNTPOINT", "maybe", "HARBOR_HA_GUARD_MOUNTPOINT"),
        ("HARBOR_HA_HEALTH_PATH", "api/health", "HARBOR_HA_HEALTH_PATH"),
    ],
)
def test_bad_value_names_the_variable(var: str, value: str, needle: str) -> None:
    """Each invalid value gives one message naming the variable(s) that set it."""
    env = {k: v for k, v in REQUIRED.items() if k not in ("HARBOR_HA_VIP", "HARBOR_HA_CEPH_POOL")}
    env |= {"HARBOR_VIP": "10.0.0.100/24", "CEPH_POOL_NAME": "rbd", var: value}
    found = problems(**env)
    assert len(found) == 1
    assert needle in found[0]


def test_every_bad_field_reported_at_once() -> None:
    """Several bad values: one line each, all in one go."""
    assert len(problems(**{**REQUIRED, "HARBOR_HA_VIP": "x", "HARBOR_HA_HTTP_PORT": "-5"})) == 2


def test_secret_not_echoed() -> None:
    """A key never appears in an error message."""
    env = {**REQUIRED, "HARBOR_HA_BACKOFF_MAX_S": "1", "CEPH_USER_KEY": "SUPERSECRET"}
    assert "SUPERSECRET" not in "\n".join(problems(**env))


def test_cross_field_rules_name_the_variables() -> None:
    """Rules across fields name the variables, not the Python fields."""
    env = {**REQUIRED, "HARBOR_HA_PRIORITY_FILE": "/run/x", "HARBOR_HA_FAULT_FILE": "/run/x"}
    assert problems(**env) == [
        "HARBOR_HA_PRIORITY_FILE and HARBOR_HA_FAULT_FILE must differ (both /run/x)"
    ]
    env = {**REQUIRED, "HARBOR_HA_BACKOFF_MAX_S": "5", "HARBOR_HA_BACKOFF_INITIAL_S": "10"}
    assert problems(**env) == [
        "HARBOR_HA_BACKOFF_MAX_S (5.0) must be >= HARBOR_HA_BACKOFF_INITIAL_S (10.0)"
    ]


def test_every_field_is_set_by_its_prefixed_name_and_legacy_name_only() -> None:
    """Each field is set by HARBOR_HA_<FIELD> and, for the predecessor's eight, its legacy
    name, in that order of precedence: one mechanism, no per-field alias."""
    assert set(LEGACY_NAMES.values()) == {
        "HARBOR_VIP", "CEPH_MON_HOST", "CEPH_USER", "CEPH_USER_KEY", "CEPH_POOL_NAME",
        "CEPH_IMAGE_NAME", "KEEPALIVED_ROLE", "INTERFACE",
    }  # fmt: skip
    for name in Settings.model_fields:
        expected = [f"HARBOR_HA_{name.upper()}"] + ([LEGACY_NAMES[name]] if name in LEGACY_NAMES
                                                    else [])  # fmt: skip
        assert env_names(name) == expected


def test_settings_reads_nothing_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings is a plain model: the process environment does not leak into it, and a
    misspelt field is refused (tests and code build it by field name)."""
    monkeypatch.setenv("HARBOR_HA_HTTPS_PORT", "8443")
    s = Settings(vip="10.0.0.1/24", interface="eth0", ceph_pool="rbd", ceph_image="harbor")
    assert s.https_port == 443
    with pytest.raises(ValueError, match="https_prot"):
        Settings(  # type: ignore[call-arg]
            vip="10.0.0.1/24", interface="eth0", ceph_pool="p", ceph_image="i", https_prot=1
        )


def test_env_example_is_what_the_generator_writes() -> None:
    """config/harbor-ha.env.example is exactly scripts/gen-env-example's output (it cannot
    drift from the settings: regenerate it after changing a field)."""
    import importlib.machinery
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    loader = importlib.machinery.SourceFileLoader(
        "gen_env_example", str(root / "scripts" / "gen-env-example")
    )
    spec = importlib.util.spec_from_loader("gen_env_example", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    rendered: str = module.render()
    assert rendered == (root / "config" / "harbor-ha.env.example").read_text()


def test_env_example_with_the_required_filled_in_loads(tmp_path: Path) -> None:
    """The shipped example, with its four required lines filled in, loads without a problem
    (every other line is a comment in systemd's grammar)."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "config" / "harbor-ha.env.example").read_text()
    for name, value in REQUIRED.items():
        assert f"\n{name}=\n" in text, name
        text = text.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    f = tmp_path / "h.env"
    f.write_text(text)
    assert load_settings(f, {}).vip == "10.0.0.100/24"
    f.write_text((root / "config" / "harbor-ha.env.example").read_text())
    assert len(problems(f)) == 4


@pytest.mark.parametrize(
    ("advert", "explicit", "watch"),
    [
        ("0.5", None, 0.75),  # the defaults: 3 x 0.5 - 0.5 - 0.25
        ("0.1", None, 0.1),  # the lab's adverts: no budget left, the fastest watch
        ("1", None, 1.0),  # slow adverts: at most 1 s
        ("0.1", "0.3", 0.3),  # set: used as given
    ],
)
def test_lease_watch_derived_from_the_vrrp_adverts(
    advert: str, explicit: str | None, watch: float
) -> None:
    """Unset, the standby's lease watch is the slowest one whose stale judgment (one renewal
    interval + margin after its first look) still ends within keepalived's master-down
    interval (3 adverts), kept within 0.1-1 s; a value set is used as given."""
    env = {**REQUIRED, "HARBOR_HA_VRRP_ADVERT_INTERVAL_S": advert}
    if explicit is not None:
        env["HARBOR_HA_LEASE_WATCH_INTERVAL_S"] = explicit
    assert load_settings(None, env).lease_watch_s == watch
