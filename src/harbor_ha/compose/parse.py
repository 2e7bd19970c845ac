"""What compose and the docker CLI print, parsed (pure: no I/O)."""

from __future__ import annotations

import re

from harbor_ha.runner import CommandResult

_IMAGE_LINE = re.compile(r"^ {4}image: *(?P<image>\S.*?)\s*$")


def detail(result: CommandResult) -> str:
    """A failed command's message: the end of its stderr, else of its stdout."""
    return (result.stderr.strip() or result.stdout.strip())[-500:]


def parse_config_images(config_yaml: str) -> list[str]:
    """Image references from the normalized ``compose config`` YAML (v1 and v2 both print the
    services at indent 2 and their keys at indent 4).  Order kept, duplicates dropped."""
    images: list[str] = []
    in_services = False
    for line in config_yaml.splitlines():
        if line and not line.startswith(" "):
            in_services = line.rstrip() == "services:"
            continue
        if not in_services:
            continue
        m = _IMAGE_LINE.match(line)
        if m:
            image = m.group("image").strip("'\"")
            if image not in images:
                images.append(image)
    return images


def parse_image_list(text: str) -> list[str]:
    """``compose config --images`` (one reference per line): order kept, duplicates dropped."""
    images: list[str] = []
    for line in text.split():
        if line not in images:
            images.append(line)
    return images


def parse_ids(text: str) -> list[str]:
    """Container IDs printed one per line (``docker ps -q``, ``docker kill``, ``docker rm``)."""
    return text.split()


_SERVICE_LINE = re.compile(r"^ {2}(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*):\s*$")


def service_blocks(config_yaml: str) -> dict[str, str]:
    """service -> the text of its block in the normalized ``compose config`` YAML (services at
    indent 2 under ``services:``, v1 and v2 alike).  Order kept."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    in_services = False
    for line in config_yaml.splitlines():
        if line and not line.startswith(" "):
            in_services = line.rstrip() == "services:"
            current = None
            continue
        if not in_services:
            continue
        m = _SERVICE_LINE.match(line)
        if m:
            current = m.group("name")
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def _paths_under(path: str) -> re.Pattern[str]:
    """A path at or under ``path`` as a whole path: it starts where a YAML value or a bind's
    part starts (not inside another path: ``/srv/data/harbor`` is not under ``/data``) and
    ends at a component boundary (``/data2`` is not under ``/data``)."""
    root = path.rstrip("/") or "/"
    return re.compile(
        r"(?:^|(?<=[\s'\"=:,\[]))"
        + re.escape(root)
        + r"(?P<rest>/[^\s'\":,\]]*)?(?=$|[\s'\":,\]])",
        re.MULTILINE,
    )


def services_naming(config_yaml: str, path: str) -> list[str]:
    """Services whose config names ``path`` or a path under it, as whole path components (a
    bind mount of the data, or anything else pointing there): they touch the data, whatever
    a setting says."""
    under = _paths_under(path)
    return [name for name, block in service_blocks(config_yaml).items() if under.search(block)]


SECRET_DIR = "secret"
"""Harbor's installer keeps its secrets under ``data_volume/secret`` (the proxy's https
certificate, core's keys, the registry's token certificate)."""


def services_naming_only_secrets(config_yaml: str, path: str) -> list[str]:
    """Services whose every path under ``path`` is under ``path/secret``: they need the mount
    for their secrets (an https proxy's certificate) but keep no data there."""
    under = _paths_under(path)
    out: list[str] = []
    for name, block in service_blocks(config_yaml).items():
        rests = [m.group("rest") or "" for m in under.finditer(block)]
        if rests and all(r.strip("/").split("/")[0] == SECRET_DIR for r in rests):
            out.append(name)
    return out


_BIND_SOURCE = re.compile(r"^\s*source:\s*['\"]?(?P<src>/[^'\"\s]*)['\"]?\s*$", re.MULTILINE)


def startable_on_bare_mountpoint(config_yaml: str, path: str) -> list[str]:
    """Services that bind ``path`` itself and nothing below it.  dockerd's restart policy can
    start such a service on the bare (unmounted) mountpoint after a dockerd restart: the
    directory exists.  A bind of a sub-directory or file under it cannot start there, because
    the bare mountpoint is immutable and Docker cannot create the bind's source (Harbor's own
    file binds ``data_volume/ca_download`` and ``secret/`` beside ``data_volume`` itself)."""
    root = path.rstrip("/") or "/"
    out: list[str] = []
    for name, block in service_blocks(config_yaml).items():
        sources = [m.group("src").rstrip("/") or "/" for m in _BIND_SOURCE.finditer(block)]
        if root in sources and not any(s.startswith(root + "/") for s in sources):
            out.append(name)
    return out


def _list_items(block: str) -> list[list[str]]:
    """The items of every YAML list in a service block, each as its stripped lines."""
    items: list[list[str]] = []
    current: list[str] | None = None
    dash = 0
    for line in block.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("- "):
            current, dash = [stripped[2:]], indent
            items.append(current)
        elif current is not None and indent > dash:
            current.append(stripped)
        else:
            current = None
    return items


def strict_binds_under(config_yaml: str, path: str) -> dict[str, list[str]]:
    """service -> sources at or under ``path`` of its long-syntax binds that do not create a
    missing source (``type: bind`` + ``source:`` without ``create_host_path: true``).  Docker
    refuses to create such a container while its source is missing ("bind source path does
    not exist"): on a node whose data volume is not mounted, these services cannot even be
    created (Harbor's core, registry and trivy-adapter bind secrets and data this way).  Short
    binds (compose v1 prints them as ``src:dst``, v2 with ``create_host_path: true``) create
    their source when the container starts, not when it is created."""
    under = _paths_under(path)
    out: dict[str, list[str]] = {}
    for name, block in service_blocks(config_yaml).items():
        for item in _list_items(block):
            source = next((ln.split(":", 1)[1].strip().strip("'\"") for ln in item
                           if ln.startswith("source:")), None)  # fmt: skip
            creates = any(ln.replace(" ", "") == "create_host_path:true" for ln in item)
            if source and not creates and under.fullmatch(source):
                out.setdefault(name, []).append(source)
    return out


def parse_service_ids(text: str) -> dict[str, str]:
    """``docker ps --format '{{.ID}} {{.Label "com.docker.compose.service"}}'``: id -> service."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
        elif len(parts) == 1:
            out[parts[0]] = ""
    return out
