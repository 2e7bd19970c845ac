"""Harbor's generated configuration files, parsed (pure: text in, values out).

Harbor's prepare step writes them from harbor.yml: ``core/env`` and ``jobservice/env``
(KEY=VALUE lines), ``registry/config.yml`` and ``jobservice/config.yml`` (YAML).  harbor-ha
needs a few scalars of the YAML files, read with an indentation-aware line reader (block
mappings as prepare writes them; no flow style, anchors or multi-line scalars), so it
carries no YAML library.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_KEY = re.compile(r"(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(?:\s+(?P<value>.*?))?\s*$")
_LOGGER = re.compile(r"\s*-\s*name:\s*(?P<name>\S+)")
_CORE_IMAGE = re.compile(r"^\s*image:\s*[\"']?(?P<repo>\S*/harbor-core):(?P<tag>[^\s\"']+)")


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines (Harbor's env files: no quoting, no continuation); comments and blank
    lines skipped; the last assignment wins."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        values[key.strip()] = value.strip()
    return values


def _unquote(value: str) -> str:
    value = re.sub(r"\s+#.*$", "", value)  # a comment after the value
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def yaml_scalar(text: str, path: tuple[str, ...]) -> str | None:
    """The scalar at ``path`` (mapping keys from the top) of a block-style YAML text, or None.
    List items and what they hold are never on a path of mapping keys."""
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        if body.startswith("-"):  # a list item: what is below it is inside the item
            indent = len(line) - len(line.lstrip())
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, "-"))
            continue
        m = _KEY.match(line)
        if m is None:
            continue
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys = (*[k for _, k in stack], m.group("key"))
        value = m.group("value")
        if keys == path and value:
            return _unquote(value)
        stack.append((indent, m.group("key")))
    return None


def job_loggers(text: str) -> list[str]:
    """The names under jobservice's top-level ``job_loggers:`` (FILE, DB, STD_OUTPUT)."""
    names: list[str] = []
    inside = False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith(("-", "#")):
            inside = line.split(":", 1)[0].strip() == "job_loggers"
            continue
        m = _LOGGER.match(line)
        if inside and m is not None:
            names.append(_unquote(m.group("name")).upper())
    return names


def core_image_tag(compose_text: str) -> str | None:
    """Harbor's version: the tag of the harbor-core image in Harbor's docker-compose.yml
    (goharbor/harbor-core:v2.6.2 -> v2.6.2), or None."""
    for line in compose_text.splitlines():
        m = _CORE_IMAGE.match(line)
        if m is not None:
            return m.group("tag")
    return None


def endpoint(url: str) -> str:
    """A Redis (or other) URL without its credentials and query: scheme://host:port/path.
    What must be identical across nodes is where it points, and the password is not hashed
    (an operator's password can be guessed from its hash; see fingerprint)."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def database(env: dict[str, str]) -> str | None:
    """core's database endpoint from its env: host:port/database user sslmode (None when the
    env names no host)."""
    host = env.get("POSTGRESQL_HOST")
    if not host:
        return None
    return (
        f"{host}:{env.get('POSTGRESQL_PORT', '')}/{env.get('POSTGRESQL_DATABASE', '')}"
        f" user={env.get('POSTGRESQL_USERNAME', '')} sslmode={env.get('POSTGRESQL_SSLMODE', '')}"
    )
