"""Building the settings once at the edge: one error line per bad field, naming its variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, ValidationError

from harbor_ha.settings.model import Settings
from harbor_ha.settings.naming import env_names


class SettingsError(Exception):
    """Invalid configuration: one message per bad field, naming the variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _field_for(loc: tuple[int | str, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0])
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if head == name or any(str(c).lower() == head.lower() for c in choices):
            return name
    return None


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment and ``env_file``.

    Raises SettingsError with one line per invalid field, each naming the
    environment variable(s) that set it.
    """
    if env_file is not None and not env_file.is_file():
        raise SettingsError([f"env file {env_file}: not found or not a regular file"])
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = _field_for(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if field is None:
                problems.append(f"configuration: {msg}")
                continue
            names = " / ".join(env_names(field))
            given = err.get("input")
            shown = "***" if "key" in field else repr(given)
            problems.append(f"{names}: {msg} (got {shown})")
        raise SettingsError(problems) from None
