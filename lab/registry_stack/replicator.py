"""The registry stack's replication: what Harbor's core + jobservice do for a push policy, done
by the lab's core with ``skopeo copy`` (stdlib + the skopeo binary: it runs in the core image).

* **On push** (``notified``): distribution sends its notifications to core
  (``/service/notifications``, as Harbor's registry config does); for each manifest pushed
  with a tag, each enabled event-based policy gets one execution (trigger ``event_based``,
  total 1): the image is copied from the local registry to the policy's destination, or
  skipped when the destination already has that tag at the same digest (Harbor skips an
  artifact already there: that is also what ends the ping-pong of a pair replicating both
  ways).  A copy that fails (the peer down) is recorded Failed and never retried, as Harbor.
* **Manual** (``run``, ``ReplicationApi.runner``): every repository:tag of the local registry
  (catalog + tags list) copied the same way; the execution is InProgress until the last one.

Each execution runs in a worker thread (at most ``WORKERS`` at once, as jobservice's worker
pool), never in the HTTP server's request thread.  Deletions are not replicated.
The destination's certificate: not verified when its endpoint is ``insecure``; else verified
with the CA Harbor's prepare puts in ``ca_download`` (core's /etc/core/ca).
"""

from __future__ import annotations

import concurrent.futures
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lab.harbor_api import ReplicationApi

LOCAL_REGISTRY = "172.30.250.11:5000"
"""The stack's registry on the harbor network (plain HTTP, no auth: docker-compose.yml.tmpl)."""
CA_DIR = Path("/etc/core/ca")
"""Core's ``ca_download`` bind: the CA of the pair's certificates (lab/registry_stack/stack.py)."""
WORKERS = 8
COPY_TIMEOUT_S = 60.0
"""Bound on one ``skopeo copy`` (the lab's images are one small layer)."""
HTTP_TIMEOUT_S = 5.0
PAGE = 1000
"""Entries per page of the catalog and tags lists (distribution's maximum)."""
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))  # fmt: skip


def say(**fields: Any) -> None:
    """One JSON line on stdout (core's log, through the syslog driver)."""
    sys.stdout.write(json.dumps({"component": "replication", **fields}) + "\n")
    sys.stdout.flush()


class Replicator:
    """Copies images for ``api``'s policies (set ``api.runner = replicator.run``)."""

    def __init__(
        self,
        api: ReplicationApi,
        *,
        registry: str = LOCAL_REGISTRY,
        ca_dir: Path = CA_DIR,
        skopeo: str = "skopeo",
    ) -> None:
        self.api, self.registry, self.ca_dir, self.skopeo = api, registry, ca_dir, skopeo
        self._pool = concurrent.futures.ThreadPoolExecutor(WORKERS, "replication")

    # ------------------------------------------------------------ triggers
    def notified(self, envelope: Any) -> int:
        """Distribution's notification envelope: one event-based execution per policy for each
        manifest pushed with a tag; returns how many were queued."""
        events = envelope.get("events", []) if isinstance(envelope, dict) else []
        queued = 0
        for ev in events:
            if not isinstance(ev, dict):
                continue
            target = ev.get("target") or {}
            repo, tag, digest = target.get("repository"), target.get("tag"), target.get("digest")
            if ev.get("action") != "push" or not repo or not tag:
                continue
            for policy in self.api.event_policies():
                self._pool.submit(self._event, policy, str(repo), str(tag), digest)
                queued += 1
        return queued

    def run(self, policy: dict[str, Any], execution: dict[str, Any]) -> None:
        """A manual execution (``ReplicationApi.runner``): every repository:tag, in a worker."""
        self._pool.submit(self._manual, policy, execution)

    # ------------------------------------------------------------- workers
    def _event(self, policy: dict[str, Any], repo: str, tag: str, digest: Any) -> None:
        ex = self.api.begin(int(policy["id"]), "event_based")
        error = self._guarded(policy, repo, tag, str(digest) if digest else None)
        self.api.finish(ex["id"], total=1, failed=1 if error else 0, text=error or "")
        say(event="event_based", execution=ex["id"], image=f"{repo}:{tag}", error=error)

    def _manual(self, policy: dict[str, Any], execution: dict[str, Any]) -> None:
        try:
            images = self.local_images()
        except (OSError, ValueError) as exc:
            self.api.finish(execution["id"], total=0, failed=1, text=f"catalog: {exc}")
            say(event="manual", execution=execution["id"], error=f"catalog: {exc}")
            return
        errors = [e for e in (self._guarded(policy, r, t) for r, t in images) if e]
        text = "; ".join(errors[:3])
        self.api.finish(execution["id"], total=len(images), failed=len(errors), text=text)
        say(event="manual", execution=execution["id"], total=len(images), failed=len(errors))

    def _guarded(
        self, policy: dict[str, Any], repo: str, tag: str, digest: str | None = None
    ) -> str | None:
        try:
            return self.copy(policy, repo, tag, digest)
        except Exception as exc:  # a worker's bug is the execution's failure, not core's
            return f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------ the copy
    def copy(
        self, policy: dict[str, Any], repo: str, tag: str, digest: str | None = None
    ) -> str | None:
        """Copy ``repo:tag`` to the policy's destination; None when done (or already there
        at the same digest), else why not.  ``digest``: the manifest a push event named, read
        by digest (distribution sends the event before it links the tag: a read by tag can
        find nothing yet)."""
        dest = policy.get("dest_registry") or {}
        host = str(dest.get("url", "")).split("://", 1)[-1].rstrip("/")
        insecure = bool(dest.get("insecure"))
        here, why = self.digest(f"http://{self.registry}", repo, digest or tag, insecure=True)
        if here is None:
            return f"{repo}:{digest or tag}: not in the local registry ({why or 'absent'})"
        there, unreachable = self.digest(f"https://{host}", repo, tag, insecure=insecure)
        if unreachable:  # fail now: a copy would wait skopeo's timeout for the same answer
            return f"{repo}:{tag} -> {host}: {unreachable}"
        if there == here:
            return None
        source = f"{repo}@{here}" if digest else f"{repo}:{tag}"
        argv = [self.skopeo, "--insecure-policy", "--command-timeout", f"{COPY_TIMEOUT_S:g}s",
                "copy", "--retry-times", "0", "--preserve-digests", "--src-tls-verify=false",
                f"docker://{self.registry}/{source}"]  # fmt: skip
        if insecure:
            argv.insert(-1, "--dest-tls-verify=false")
        else:
            argv[-1:-1] = ["--dest-cert-dir", str(self.ca_dir)]
        user = (dest.get("credential") or {}).get("access_key")
        secret = self.api.secret(int(dest.get("id", 0)))
        if user and secret:
            argv[-1:-1] = ["--dest-creds", f"{user}:{secret}"]
        argv.append(f"docker://{host}/{repo}:{tag}")
        try:
            res = subprocess.run(
                argv, capture_output=True, text=True, timeout=COPY_TIMEOUT_S + 5, check=False
            )
        except subprocess.TimeoutExpired:
            return f"{repo}:{tag} -> {host}: skopeo copy: no end in {COPY_TIMEOUT_S:g} s"
        if res.returncode != 0:
            return f"{repo}:{tag} -> {host}: skopeo copy: {res.stderr.strip()[-300:]}"
        return None

    def _ssl(self, insecure: bool) -> ssl.SSLContext:
        if insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            return ctx
        ca = self.ca_dir / "ca.crt"
        return ssl.create_default_context(cafile=str(ca) if ca.exists() else None)

    def digest(
        self, base: str, repo: str, ref: str, *, insecure: bool
    ) -> tuple[str | None, str | None]:
        """(the manifest digest of ``repo:ref`` (a tag or a digest) at ``base`` (HEAD) or None
        when absent, why ``base`` did not answer or None)."""
        req = urllib.request.Request(
            f"{base}/v2/{repo}/manifests/{ref}", method="HEAD",
            headers={"Accept": MANIFEST_ACCEPT},
        )  # fmt: skip
        ctx = self._ssl(insecure) if base.startswith("https:") else None
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S, context=ctx) as resp:
                got = resp.headers.get("Docker-Content-Digest")
                return (str(got) if got else None), None
        except urllib.error.HTTPError:
            return None, None
        except OSError as exc:
            return None, f"{base}: {exc}"

    def reachable(self, registry: dict[str, Any]) -> str | None:
        """``POST /registries/ping``: None when the endpoint's ``/v2/`` answers, else why."""
        base = str(registry.get("url", "")).rstrip("/")
        ctx = self._ssl(bool(registry.get("insecure"))) if base.startswith("https:") else None
        try:
            with urllib.request.urlopen(f"{base}/v2/", timeout=HTTP_TIMEOUT_S, context=ctx):
                return None
        except urllib.error.HTTPError as exc:
            return None if exc.code == 401 else f"{base}/v2/: HTTP {exc.code}"
        except OSError as exc:
            return f"{base}/v2/: {exc}"

    def _pages(self, path: str, key: str) -> list[Any]:
        """Every item under ``key`` of a paged list of the local registry (``n`` per page, the
        ``Link: <next>; rel="next"`` header followed: distribution refuses an ``n`` above
        its maximum of 1000)."""
        items: list[Any] = []
        url: str | None = f"http://{self.registry}{path}?n={PAGE}"
        while url:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:
                items += json.loads(resp.read()).get(key) or []
                link = resp.headers.get("Link") or ""
            nxt = link.split(";", 1)[0].strip().strip("<>") if 'rel="next"' in link else ""
            url = f"http://{self.registry}{nxt}" if nxt else None
        return items

    def local_images(self) -> list[tuple[str, str]]:
        """Every (repository, tag) of the local registry (catalog, then each tags list)."""
        out = []
        for repo in self._pages("/v2/_catalog", "repositories"):
            tags = self._pages(f"/v2/{repo}/tags/list", "tags")
            out += [(str(repo), str(tag)) for tag in sorted(tags)]
        return out
