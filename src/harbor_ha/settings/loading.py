"""Building the settings once at the edge: one error line per problem, naming its variable.

The sources, in order of precedence: the process environment (given by the caller: the CLI
passes ``os.environ``), then the env file (read by :mod:`.envfile`, systemd's grammar).  Under
systemd both hold the same values, since systemd read the same file with the same grammar.

Strict on names: an unknown ``HARBOR_HA_*`` variable, in the environment or the env file, is
an error with the nearest known name as a suggestion.  Any other variable of the environment
(PATH, HOME, DOCKER_HOST, ...) is not ours and is ignored.  In the env file every key must be
a setting's name (``HARBOR_HA_*`` or a predecessor's name): the file is harbor-ha's own, so
any other key is most likely a typo (``VIP=`` for ``HARBOR_HA_VIP=``), and systemd would pass
it on to the daemon unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from harbor_ha.settings.envfile import EnvFileError, read_env_file
from harbor_ha.settings.mode import Mode
from harbor_ha.settings.model import REQUIRED_BY_MODE, Settings, required_in_mode
from harbor_ha.settings.naming import ENV_PREFIX, env_names, known_names, suggestion
from harbor_ha.settings.source import HarborHaSource


class SettingsError(Exception):
    """Invalid configuration: one message per problem, naming the variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _unknown(key: str, known: Mapping[str, str], where: str) -> str:
    near = suggestion(key, known)
    hint = f" (did you mean {near}?)" if near else ""
    return f"{key}: unknown setting{hint} [{where}]"


def _validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        field = str(loc[0]) if loc and str(loc[0]) in Settings.model_fields else None
        msg = err["msg"].removeprefix("Value error, ")
        if field is None:  # a rule across fields: its message names the variables
            problems += msg.splitlines()  # one line per problem
            continue
        names = " / ".join(env_names(field))
        if err["type"] == "missing":
            problems.append(f"{names}: required, not set")
            continue
        shown = "***" if "key" in field else repr(err.get("input"))
        problems.append(f"{names}: {msg} (got {shown})")
    return problems


def load_settings(
    env_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from ``environ`` (none if not given) and ``env_file``.

    Raises SettingsError with one line per problem: each unknown name, each line of the env
    file systemd would ignore or misread, each invalid or missing value (naming the
    variable(s) that set it).
    """
    known = known_names(Settings.model_fields)
    environment = dict(environ or {})
    problems: list[str] = []
    file_values: dict[str, str] = {}
    if env_file is not None:
        try:
            parsed = read_env_file(env_file)
        except EnvFileError as exc:
            raise SettingsError([str(exc)]) from None
        problems += [f"env file {env_file}:{line}: {msg}" for line, msg in parsed.problems]
        for key, line in parsed.lines.items():
            if key not in known:
                problems.append(_unknown(key, known, f"env file {env_file}:{line}"))
        file_values = parsed.values
    for key in environment:
        if key.upper().startswith(ENV_PREFIX) and key not in known:
            problems.append(_unknown(key, known, "environment"))
    values = HarborHaSource(Settings, environment, file_values)()
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        problems += _validation_problems(exc)
        problems += _required_by_mode(values)
    if problems:
        raise SettingsError(list(dict.fromkeys(problems)))
    return settings


def _required_by_mode(values: Mapping[str, object]) -> list[str]:
    """The fields the configured mode requires and that are not set: listed with the other
    problems (Settings' own rule across fields runs only once every field is valid)."""
    try:
        mode = Mode(str(values.get("mode", Mode.RBD)))
    except ValueError:
        return []  # the mode itself is the problem (already listed)
    return [required_in_mode(f, mode) for f in REQUIRED_BY_MODE.get(mode, ()) if not values.get(f)]
