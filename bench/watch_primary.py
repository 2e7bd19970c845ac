"""When the taker's ``/primary`` (what README tells load balancers to check) first answers 200
after a fault: a thread polls ``GET http://NODE:9105/primary`` every ``every_s`` from the lab
client's netns (the load balancer's view), from just before the fault until it answers 200."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp

from lab.netns import NetnsExecutor

POLL_TIMEOUT_S = 0.5


class PrimaryWatch:
    """``start(t0)`` before the fault; ``result()`` -> seconds from t0 to the first 200 (None:
    none before ``stop``)."""

    def __init__(self, netns: str, url: str, every_s: float = 0.05) -> None:
        self._netns = netns
        self._url = url
        self._every_s = every_s
        self._stop = threading.Event()
        self._first: float | None = None
        self._t0 = 0.0
        self._thread: threading.Thread | None = None

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, name="primary-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ex = NetnsExecutor(self._netns)
        try:
            asyncio.run(ex.run(self._poll))
        finally:
            ex.close()

    async def _poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=POLL_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stop.is_set():
                try:
                    async with session.get(self._url) as resp:
                        at = time.time()
                        if resp.status == 200 and at >= self._t0:
                            self._first = at
                            return
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
                await asyncio.sleep(self._every_s)

    def result(self, wait_s: float = 30.0) -> float | None:
        """Seconds from t0 to the first 200, waiting up to ``wait_s`` for it; the watch ends."""
        if self._thread is not None:
            self._thread.join(wait_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return None if self._first is None else self._first - self._t0
