"""`harbor-ha check` on a Harbor install dir: Harbor's services, harbor.yml's data_volume
against the mountpoint, and the secrets the data volume must hold."""

from __future__ import annotations

from pathlib import Path

from harbor_ha.compose.install import HARBOR_SERVICES, install_findings, top_level

HARBOR_YML = """\
# Configuration file of Harbor
hostname: reg.example.internal
http:
  port: 80
https:
  port: 443
  certificate: /your/certificate/path
data_volume: /srv/harbor-data   # where Harbor keeps its data
trivy:
  ignore_unfixed: false
"""


def test_harbor_yml_top_level_keys() -> None:
    """Top-level scalars are read with comments stripped; sections are present with ""."""
    keys = top_level(HARBOR_YML)
    assert keys["data_volume"] == "/srv/harbor-data"
    assert keys["https"] == "" and keys["hostname"] == "reg.example.internal"
    assert "port" not in keys  # nested


def test_a_data_volume_other_than_the_mountpoint_fails() -> None:
    """harbor.yml's data_volume must be HARBOR_HA_MOUNTPOINT: Harbor would write beside the
    image otherwise."""
    found = install_findings(HARBOR_YML, HARBOR_SERVICES, Path("/data"), False, Path.exists)
    fails = [m for level, m in found if level == "FAIL"]
    assert fails and "data_volume /srv/harbor-data" in fails[0]
    ok = install_findings(HARBOR_YML, HARBOR_SERVICES, Path("/srv/harbor-data"), False,
                          Path.exists)  # fmt: skip
    assert not [m for level, m in ok if level == "FAIL"]


def test_missing_services_are_named() -> None:
    """A compose project without Harbor's jobservice and proxy is reported by name."""
    services = [s for s in HARBOR_SERVICES if s not in ("jobservice", "proxy")]
    found = install_findings(None, services, Path("/data"), False, Path.exists)
    warn = [m for level, m in found if level == "WARN" and "missing" in m]
    assert warn == ["harbor: compose services missing against Harbor's: jobservice, proxy"]


def test_secrets_are_checked_on_the_mounted_data_volume(tmp_path: Path) -> None:
    """Mounted here: every secret file (and the https certificate dir of an https install)
    must exist on the data volume, the absent ones named; not mounted: they are listed."""
    yml = HARBOR_YML.replace("/srv/harbor-data", str(tmp_path))
    (tmp_path / "secret" / "keys").mkdir(parents=True)
    (tmp_path / "secret" / "keys" / "secretkey").write_text("k")
    found = install_findings(yml, HARBOR_SERVICES, tmp_path, True, Path.exists)
    fails = [m for level, m in found if level == "FAIL"]
    assert len(fails) == 1
    assert "secret/core/private_key.pem" in fails[0] and "secret/cert" in fails[0]
    assert "secret/keys/secretkey," not in fails[0]
    listed = install_findings(yml, HARBOR_SERVICES, tmp_path, False, Path.exists)
    assert any("must hold" in m and "secret/cert" in m for _, m in listed)
