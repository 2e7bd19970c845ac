"""The settings source: the process environment over the env file, by the settings' names.

A pydantic-settings source (``PydanticBaseSettingsSource``), so the lookup of one field is
the source's ``get_field_value``: the first of the field's names (``HARBOR_HA_<FIELD>``, then
the predecessor's name, :func:`harbor_ha.settings.naming.env_names`) found in the
environment, else in the env file.  The environment wins: under systemd both hold the same
values, since systemd read the same file with the same grammar.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from harbor_ha.settings.naming import env_names


class HarborHaSource(PydanticBaseSettingsSource):
    """Values by field name, from ``environ`` and then ``file_values`` (both already read)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str],
        file_values: Mapping[str, str],
    ) -> None:
        super().__init__(settings_cls)
        self._sources = (environ, file_values)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for source in self._sources:
            for name in env_names(field_name):
                if name in source:
                    return source[name], name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                values[name] = value
        return values
