"""Publish an adapter version and move its alias; roll an alias back; list its versions.

    scripts/py publish adapter.safetensors --alias acme/spam [--persist-to .wrangler/state]     (local: wrangler dev's bucket)
    scripts/py publish --rollback acme/spam [--to VERSION]
    scripts/py publish --list acme/spam
    scripts/py publish adapter.safetensors --alias acme/spam --api https://softedge.example.workers.dev   (also --rollback, --list)

Every alias write goes through the worker's own storage code (src/store/publish.ts: the artifact validated against
its backbone, the content-addressed version object written first, then alias.json moved by compare-and-swap on its
etag), so concurrent publishes and rollbacks never lose one another's history, whoever makes them:
  --api URL   the worker's endpoints (PUT /v1/adapters/<tenant>/<name>, POST .../rollback, GET .../versions), with an
              API key with publish scope for the alias's tenant in $SOFTEDGE_API_KEY. The way to publish to Cloudflare.
              A request that failed before any response (a dropped kept-alive connection, a reset, a refused
              connect) is sent again on a fresh connection, a few times with backoff, when repeating it is harmless.
  --local     (default) the bucket `wrangler dev` serves (miniflare state under --persist-to), without a running
              worker: scripts/publish-local.mjs runs the same code in Node.
There is no direct remote write: R2's compare-and-swap is only reachable through a worker, so publish to a deployed
one with --api.

Layout: adapters/<tenant>/<name>/versions/<version>.safetensors is immutable (version = first 16 hex digits of the
file's sha256, so re-publishing the same bytes is a no-op); adapters/<tenant>/<name>/alias.json names the current
version and the history.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import urllib3

from softedge.artifacts import adapter as adapter_fmt
from softedge.common import ROOT, CliError, run_cli


def split_alias(alias: str) -> tuple[str, str]:
    """tenant, name for building URLs; the worker (or its store code, locally) checks the names themselves."""
    parts = alias.split("/")
    if len(parts) != 2 or not all(parts):
        raise CliError(f"alias {alias!r} must be tenant/name")
    return parts[0], parts[1]


class Local:
    """wrangler dev's bucket through the worker's storage code run in Node (scripts/publish-local.mjs)."""

    def __init__(self, persist_to: Path | None, backbones: Path):
        self.common = ["--backbones", str(backbones)] + (["--persist-to", str(persist_to)] if persist_to else [])

    def _run(self, *args: str) -> dict:
        env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false"}
        r = subprocess.run(
            ["node", "scripts/publish-local.mjs", *args, *self.common],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            msg = next((l for l in lines if l.startswith("error: ")), lines[-1] if lines else "no output")
            raise CliError(msg.removeprefix("error: "))
        return json.loads(r.stdout.strip().splitlines()[-1])

    def publish(self, path: Path, alias: str) -> str:
        return self._run("publish", str(path.resolve()), "--alias", alias)["version"]

    def rollback(self, alias: str, to: str | None) -> str:
        return self._run("rollback", alias, *(["--to", to] if to else []))["version"]

    def versions(self, alias: str) -> dict:
        return self._run("list", alias)


class Api:
    """The worker's publishing endpoints (the same layout and rules, enforced server-side)."""

    # a request that got no response is sent again only where that is harmless: GET reads; PUT of an artifact is
    # content-addressed (its version is its sha256, and re-sending the current version changes nothing); a rollback
    # is sent with an explicit version, which a repeat leaves in place. A refused connect is retried for any method
    # (nothing reached the server); the first retry is at once, then 0.5 s, 1 s.
    RETRY = urllib3.util.Retry(
        total=3, status=0, allowed_methods=frozenset({"GET", "PUT"}), backoff_factor=0.25, raise_on_status=False
    )

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.key = os.environ.get("SOFTEDGE_API_KEY", "")
        if not self.key:
            raise CliError(
                "--api needs an API key with publish scope in $SOFTEDGE_API_KEY (scripts/keys.mjs create ...)"
            )
        self.http = urllib3.PoolManager(retries=self.RETRY, timeout=60)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        idempotent: bool = False,
    ) -> dict:
        retries = self.RETRY.new(allowed_methods=self.RETRY.allowed_methods | {method}) if idempotent else self.RETRY
        try:
            r = self.http.request(
                method,
                f"{self.base}{path}",
                body=body,
                headers={"authorization": f"Bearer {self.key}", "content-type": content_type},
                retries=retries,
            )
        except urllib3.exceptions.HTTPError as e:
            why = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            raise CliError(f"cannot reach {self.base} ({method} {path}): {why.args[-1] if why.args else why}") from None
        if not 200 <= r.status < 300:
            try:
                err = json.loads(r.data)["error"]
                raise CliError(f"{method} {path}: {r.status} {err['code']}: {err['message']}") from None
            except (ValueError, KeyError, TypeError):
                raise CliError(f"{method} {path}: HTTP {r.status}") from None
        return json.loads(r.data)

    def publish(self, path: Path, alias: str) -> str:
        split_alias(alias)
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        buf = path.read_bytes()
        try:
            adapter_fmt.parse(buf, None, str(path))  # damaged files fail here, before any upload
        except adapter_fmt.AdapterError as e:
            raise CliError(str(e)) from None
        return self.call("PUT", f"/v1/adapters/{alias}", buf, "application/octet-stream")["version"]

    def rollback(self, alias: str, to: str | None) -> str:
        split_alias(alias)
        if not to:
            # "the previous version" is resolved here, so that the request names its target and may be repeated
            history = self.versions(alias)["history"]
            to = history[0] if history else None
        body = json.dumps({"version": to} if to else {}).encode()
        return self.call("POST", f"/v1/adapters/{alias}/rollback", body, idempotent=bool(to))["version"]

    def versions(self, alias: str) -> dict:
        split_alias(alias)
        return self.call("GET", f"/v1/adapters/{alias}/versions")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter", type=Path, nargs="?")
    ap.add_argument("--alias")
    ap.add_argument("--rollback", metavar="ALIAS")
    ap.add_argument("--to", help="with --rollback: the version to point at (default: the previous one)")
    ap.add_argument("--list", metavar="ALIAS")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="the bucket `wrangler dev` uses (default)")
    where.add_argument("--remote", action="store_true", help=argparse.SUPPRESS)
    where.add_argument("--api", metavar="URL", help="publish through a running worker's API (key in $SOFTEDGE_API_KEY)")
    ap.add_argument(
        "--persist-to", type=Path, default=None, help="local state folder (default: wrangler's .wrangler/state)"
    )
    ap.add_argument(
        "--backbones",
        type=Path,
        default=ROOT / "adapters" / "backbones",
        help="where backbone bundles live (the adapter must fit one of them)",
    )
    a = ap.parse_args()
    if a.remote:
        raise CliError(
            "there is no direct write to Cloudflare R2 (its compare-and-swap is reached through a worker): "
            "publish with --api https://<your worker>"
        )
    target = Api(a.api) if a.api else Local(a.persist_to, a.backbones)
    if a.rollback:
        print(f"{a.rollback} -> {target.rollback(a.rollback, a.to)}")
    elif a.list:
        print(json.dumps(target.versions(a.list), indent=2))
    else:
        if not a.adapter or not a.alias:
            raise CliError("give an adapter file and --alias tenant/name (or --rollback / --list)")
        if not a.adapter.is_file():
            raise CliError(f"{a.adapter}: no such file")
        print(f"{a.alias} -> {target.publish(a.adapter, a.alias)}")


if __name__ == "__main__":
    run_cli(main)
