"""Settings: environment, env file, the predecessor's names, one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_ha.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if (
            key.startswith("HARBOR_")
            or key.startswith("CEPH_")
            or key in ("KEEPALIVED_ROLE", "INTERFACE")
        ):
            monkeypatch.delenv(key)


def test_defaults_are_valid() -> None:
    """With nothing set, the defaults validate (documented one-machine defaults)."""
    s = load_settings()
    assert s.ceph_pool == "rbd" and s.https_port == 443 and s.base_priority == 100


def test_predecessor_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bash predecessor's variables still work."""
    for k, v in {
        "HARBOR_VIP": "10.1.2.3",
        "CEPH_MON_HOST": "10.0.0.1,10.0.0.2",
        "CEPH_USER": "hb",
        "CEPH_USER_KEY": "AQBx==",
        "CEPH_POOL_NAME": "p",
        "CEPH_IMAGE_NAME": "img",
        "KEEPALIVED_ROLE": "MASTER",
        "INTERFACE": "ens3",
    }.items():
        monkeypatch.setenv(k, v)
    s = load_settings()
    assert s.vip == "10.1.2.3/32" and s.vip_address == "10.1.2.3"
    assert s.ceph_mon_host == "10.0.0.1,10.0.0.2" and s.ceph_user == "hb"
    assert s.ceph_user_key is not None and s.ceph_user_key.get_secret_value() == "AQBx=="
    assert (s.ceph_pool, s.ceph_image, s.interface) == ("p", "img", "ens3")
    assert s.base_priority == 110


def test_own_name_wins_over_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HARBOR_HA_VIP beats HARBOR_VIP when both are set."""
    monkeypatch.setenv("HARBOR_VIP", "10.1.2.3")
    monkeypatch.setenv("HARBOR_HA_VIP", "10.9.9.9/24")
    assert load_settings().vip == "10.9.9.9/24"


def test_env_file(tmp_path: Path) -> None:
    """An env file sets fields, with comments and quotes as systemd's EnvironmentFile allows."""
    f = tmp_path / "h.env"
    f.write_text(
        '# comment\nHARBOR_HA_MOUNTPOINT="/srv/harbor"\nHARBOR_HA_HTTPS_PORT=8443\n'
        "HARBOR_HA_VRRP_UNICAST_PEERS=10.0.0.2, 10.0.0.3\n"
        "HARBOR_HA_COMPOSE_COMMAND=docker compose\n"
    )
    s = load_settings(f)
    assert s.mountpoint == Path("/srv/harbor") and s.https_port == 8443
    assert s.vrrp_unicast_peers == ["10.0.0.2", "10.0.0.3"]
    assert s.compose_command == ["docker", "compose"]


def test_missing_env_file(tmp_path: Path) -> None:
    """A named env file that does not exist is an error, not silently ignored."""
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.env")


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
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str
) -> None:
    """Each invalid value gives one message naming the variable(s) that set it."""
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert len(info.value.problems) == 1
    assert needle in info.value.problems[0]


def test_every_bad_field_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several bad values: one line each, all in one go."""
    monkeypatch.setenv("HARBOR_VIP", "x")
    monkeypatch.setenv("HARBOR_HA_HTTP_PORT", "-5")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert len(info.value.problems) == 2


def test_secret_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key never appears in an error message."""
    monkeypatch.setenv("HARBOR_HA_BACKOFF_MAX_S", "1")
    monkeypatch.setenv("CEPH_USER_KEY", "SUPERSECRET")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "SUPERSECRET" not in str(info.value)


def test_cross_field_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coherence rules across fields are reported too."""
    monkeypatch.setenv("HARBOR_HA_PRIORITY_FILE", "/run/x")
    monkeypatch.setenv("HARBOR_HA_FAULT_FILE", "/run/x")
    with pytest.raises(SettingsError, match="must differ"):
        load_settings()


def test_every_field_has_the_generated_aliases() -> None:
    """Each field is set by HARBOR_HA_<FIELD>, its own name and (for the predecessor's eight)
    its legacy name, in that order of precedence: one mechanism, no per-field alias."""
    from harbor_ha.settings import LEGACY_NAMES, Settings, env_aliases

    assert set(LEGACY_NAMES.values()) == {
        "HARBOR_VIP", "CEPH_MON_HOST", "CEPH_USER", "CEPH_USER_KEY", "CEPH_POOL_NAME",
        "CEPH_IMAGE_NAME", "KEEPALIVED_ROLE", "INTERFACE",
    }  # fmt: skip
    for name, field in Settings.model_fields.items():
        assert field.validation_alias == env_aliases(name), name
        assert env_aliases(name).choices[:2] == [f"HARBOR_HA_{name.upper()}", name]


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
