"""The lab's client: HTTPS requests to Harbor through the VIP, from the client's netns; and
one plain GET from inside any of the lab's netns (``http_get``)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import aiohttp

from lab.netns import NetnsExecutor


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the answer (or error) came
    ok: bool  # HTTP 200 and status == healthy
    detail: str
    served_by: str = ""  # the node that answered (the Harbor shape's extra field)


class Client:
    """GET https://VIP/api/v2.0/health from inside the client netns (certificate not verified)."""

    def __init__(self, netns: str, vip: str, port: int = 443, timeout_s: float = 1.0) -> None:
        self._ex = NetnsExecutor(netns)
        self._url = f"https://{vip}:{port}/api/v2.0/health"
        self._timeout = timeout_s

    async def _get(self) -> Answer:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as s,
                s.get(self._url, ssl=ctx) as r,
            ):
                body = await r.text()
            data = json.loads(body) if r.status == 200 else {}
            status, node = data.get("status"), str(data.get("served_by", ""))
            bad = [
                f"{c.get('name')}: {c.get('error', c.get('status'))}"
                for c in data.get("components", [])
                if isinstance(c, dict) and c.get("status") != "healthy"
            ]
            why = f" ({'; '.join(bad)})" if bad else ""
            return Answer(
                time.time(), status == "healthy", f"HTTP {r.status} {status} from {node}{why}",
                node,
            )  # fmt: skip
        except (aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError) as exc:
            return Answer(time.time(), False, f"{type(exc).__name__}: {exc}")

    def check(self) -> Answer:
        return asyncio.run(self._ex.run(self._get))

    async def acheck(self) -> Answer:
        return await self._ex.run(self._get)

    def first_healthy_after(
        self, t0: float, within_s: float, node: str = "", every_s: float = 0.05
    ) -> Answer:
        """Poll until a healthy answer (from ``node`` if given) comes, or ``within_s`` passes
        (then the last answer)."""
        deadline = time.monotonic() + within_s
        answer = self.check()
        while (
            not (answer.ok and answer.at >= t0 and (not node or answer.served_by == node))
            and time.monotonic() < deadline
        ):
            time.sleep(every_s)
            answer = self.check()
        return answer

    def close(self) -> None:
        self._ex.close()


def http_get(netns: str, url: str, timeout_s: float = 3.0) -> tuple[int, str]:
    """GET ``url`` from inside ``netns`` (no proxy; https certificate not verified): (HTTP
    status, body), or (0, the error) when no HTTP answer came."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )

    async def get() -> tuple[int, str]:
        try:
            with opener.open(url, timeout=timeout_s) as r:
                return int(r.status), r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets are OSErrors
            return 0, f"{type(exc).__name__}: {exc}"

    ex = NetnsExecutor(netns)
    try:
        return asyncio.run(ex.run(get))
    finally:
        ex.close()
