"""FAKE stand-ins shared by the unit tests (strictly typed).

:class:`FakeRunner` implements :class:`harbor_ha.runner.Runner`: it records every call and
answers from rules, with outputs recorded from the real tools.  It only pins the exact command
lines an adapter issues and produces failures on demand; the real commands run in
tests/integration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from harbor_ha.runner import CommandResult
from harbor_ha.settings import Settings

REQUIRED_SETTINGS: dict[str, str] = {
    "interface": "eth0",
    "vip": "192.0.2.100/24",
    "ceph_pool": "rbd",
    "ceph_image": "harbor",
}
"""Values for the four settings without a default (the VIP from TEST-NET-1, RFC 5737)."""

REQUIRED_ENV: dict[str, str] = {f"HARBOR_HA_{k.upper()}": v for k, v in REQUIRED_SETTINGS.items()}
"""The same four as environment variables, for tests that run the real CLI."""


def example_settings(**fields: Any) -> Settings:
    """Settings with :data:`REQUIRED_SETTINGS`, then ``fields`` (by field name) on top."""
    return Settings(**{**REQUIRED_SETTINGS, **fields})


Reply = CommandResult | Exception
"""A rule's answer: a result (its argv is replaced by the call's) or an exception to raise."""
Rule = Callable[[list[str]], Reply | None]
"""Answers one argv, or None to leave it to the next rule."""


class Call(NamedTuple):
    """One recorded call of :meth:`FakeRunner.run`."""

    argv: tuple[str, ...]
    timeout_s: float
    env: dict[str, str]


def reply(stdout: str = "", stderr: str = "", rc: int = 0) -> CommandResult:
    """A result with these outputs and exit code (the argv is filled in by FakeRunner)."""
    return CommandResult((), rc, stdout, stderr, 0.01)


def by_substring(outputs: Mapping[str, str | Reply]) -> Rule:
    """A rule: the first output whose key occurs in the space-joined argv: a string is its
    stdout (exit 0); a CommandResult is returned as it is; an exception is raised."""

    def rule(argv: list[str]) -> Reply | None:
        joined = " ".join(argv)
        for key, out in outputs.items():
            if key in joined:
                return reply(out) if isinstance(out, str) else out
        return None

    return rule


@dataclass
class FakeRunner:
    """FAKE runner: records every call and answers from ``rules`` (first match wins; no match:
    exit 0 with empty output)."""

    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        input_data: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> CommandResult:
        args = list(argv)
        self.calls.append(Call(tuple(args), timeout_s, dict(env or {})))
        for rule in self.rules:
            answer = rule(args)
            if answer is None:
                continue
            if isinstance(answer, Exception):
                raise answer
            return CommandResult(tuple(args), answer.returncode, answer.stdout, answer.stderr, 0.01)
        return CommandResult(tuple(args), 0, "", "", 0.01)

    def argvs(self) -> list[list[str]]:
        """The argv of every call, in order."""
        return [list(c.argv) for c in self.calls]


class FakeFs:
    """FAKE filesystem (real mounts: integration): mounted read-write and readable; mounted from
    ``device`` only, or from any device when it is None."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def is_read_only(self) -> bool:
        return False

    def is_mounted_from(self, device: str) -> bool:
        return self.device is None or device == self.device

    async def read_probe(self, device: str, timeout_s: float) -> bool:
        return True
