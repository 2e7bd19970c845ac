"""The part of Harbor's v2.0 REST API the replicated pair uses (registries, replication
policies and executions), over aiohttp with basic auth; every call bounded by a timeout."""

from __future__ import annotations

import asyncio
import ssl
from types import TracebackType
from typing import Any

import aiohttp

API = "/api/v2.0"
PAGE_SIZE = 100


class HarborApiError(Exception):
    """Harbor did not answer as its API says (the message names the call and the answer).

    ``maybe_done``: the call may have had its effect (no answer within the timeout, or the
    connection dropped after the request went out); False when Harbor answered with a refusal
    or the connection was never made."""

    def __init__(self, message: str, *, maybe_done: bool = False) -> None:
        super().__init__(message)
        self.maybe_done = maybe_done


class HarborApi:
    """One Harbor's API as ``username``; ``async with`` closes its connection."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        insecure: bool = False,
        ca_file: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._auth = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        if insecure:
            self._ssl: ssl.SSLContext | bool = False
        else:
            self._ssl = ssl.create_default_context(cafile=ca_file or None)
        self._timeout = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HarborApi:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._auth)
        return self._session

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any, str]:
        """(status, JSON body or None, Location header) of one call within the timeout."""
        what = f"{method} {self.url}{API}{path}"
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client().request(
                    method, f"{self.url}{API}{path}", json=json, params=params, ssl=self._ssl
                ) as resp,
            ):
                body = await resp.json(content_type=None) if resp.content_length != 0 else None
                return resp.status, body, resp.headers.get("Location", "")
        except TimeoutError as exc:
            raise HarborApiError(
                f"{what}: no answer within {self._timeout:g} s", maybe_done=True
            ) from exc
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise HarborApiError(f"{what}: {type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise HarborApiError(f"{what}: {type(exc).__name__}: {exc}", maybe_done=True) from exc

    async def _list(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        out: list[Any] = []
        page = 1
        while True:
            query = {**(params or {}), "page": str(page), "page_size": str(PAGE_SIZE)}
            status, body, _ = await self._call("GET", path, params=query)
            if status != 200 or not isinstance(body, list):
                raise HarborApiError(f"GET {self.url}{API}{path}: HTTP {status}: {body!r}")
            out += body
            if len(body) < PAGE_SIZE:
                return out
            page += 1

    async def _create(self, path: str, body: dict[str, Any]) -> int:
        status, answer, location = await self._call("POST", path, json=body)
        if status != 201:
            raise HarborApiError(f"POST {self.url}{API}{path}: HTTP {status}: {answer!r}")
        try:
            return int(location.rstrip("/").rsplit("/", 1)[1])
        except (IndexError, ValueError) as exc:
            raise HarborApiError(f"POST {self.url}{API}{path}: Location {location!r}") from exc

    async def registries(self) -> list[dict[str, Any]]:
        return await self._list("/registries")

    async def create_registry(self, body: dict[str, Any]) -> int:
        return await self._create("/registries", body)

    async def policies(self) -> list[dict[str, Any]]:
        return await self._list("/replication/policies")

    async def create_policy(self, body: dict[str, Any]) -> int:
        return await self._create("/replication/policies", body)

    async def executions(self, policy_id: int) -> list[dict[str, Any]]:
        """The policy's executions, newest first (Harbor's default sort)."""
        return await self._list("/replication/executions", {"policy_id": str(policy_id)})

    async def latest_execution(self, policy_id: int) -> dict[str, Any] | None:
        """The policy's newest execution (Harbor lists them newest first), None if none."""
        newest = await self.recent_executions(policy_id, 1)
        return newest[0] if newest else None

    async def recent_executions(self, policy_id: int, count: int) -> list[dict[str, Any]]:
        """The policy's ``count`` newest executions, newest first (one page)."""
        path = "/replication/executions"
        query = {"policy_id": str(policy_id), "page": "1", "page_size": str(count)}
        status, body, _ = await self._call("GET", path, params=query)
        if status != 200 or not isinstance(body, list) or any(type(e) is not dict for e in body):
            raise HarborApiError(f"GET {self.url}{API}{path}: HTTP {status}: {body!r:.200}")
        return body

    async def start_execution(self, policy_id: int) -> int:
        return await self._create("/replication/executions", {"policy_id": policy_id})

    async def ping(self) -> None:
        """Harbor's core answers ``GET /api/v2.0/ping`` (200 ``Pong``, no authentication
        needed) within the timeout; else HarborApiError (a 502 from Harbor's proxy while
        core is down included)."""
        what = f"GET {self.url}{API}/ping"
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client().get(f"{self.url}{API}/ping", ssl=self._ssl) as resp,
            ):
                await resp.read()
                status = resp.status
        except TimeoutError as exc:
            raise HarborApiError(f"{what}: no answer within {self._timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise HarborApiError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise HarborApiError(f"{what}: HTTP {status}")
