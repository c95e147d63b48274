"""Publish an adapter version to object storage and move its alias; roll an alias back.

    scripts/py publish adapter.safetensors --alias acme/spam [--local | --remote] [--persist-to .wrangler/state]
    scripts/py publish --rollback acme/spam [--to VERSION] [--local | --remote]
    scripts/py publish --list acme/spam [--local | --remote]
    scripts/py publish adapter.safetensors --alias acme/spam --api https://softedge.example.workers.dev   (also --rollback, --list)

With --api the worker's own endpoints do the work (PUT /v1/adapters/<tenant>/<name>, POST .../rollback, GET
.../versions) with the API key in $SOFTEDGE_API_KEY (publish scope, the alias's tenant); the worker validates the
artifact against the backbone it serves. Without --api, storage goes through wrangler's R2 commands against the bucket bound in wrangler.toml: --local is the bucket
`wrangler dev` serves (miniflare, under --persist-to); --remote is Cloudflare R2 (credentials from the environment:
CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID).

Layout: adapters/<tenant>/<name>/versions/<version>.safetensors is immutable (version = first 16 hex digits of the
file's sha256, so re-publishing the same bytes is a no-op); adapters/<tenant>/<name>/alias.json names the current
version and the history. The version is written and read back before the alias moves (one object write).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import adapter as adapter_fmt
from .common import ROOT, CliError, run_cli

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def bucket_name() -> str:
    text = (ROOT / "wrangler.toml").read_text()
    m = re.search(r'\[\[r2_buckets\]\][^\[]*?bucket_name\s*=\s*"([^"]+)"', text, flags=re.S)
    if not m:
        raise CliError("wrangler.toml has no [[r2_buckets]] bucket_name")
    return m[1]


class Store:
    """R2 through wrangler (local miniflare state or remote)."""

    def __init__(self, remote: bool, persist_to: Path | None):
        self.remote, self.persist_to, self.bucket = remote, persist_to, bucket_name()

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        where = ["--remote"] if self.remote else ["--local"] + (["--persist-to", str(self.persist_to)] if self.persist_to else [])
        env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false"}
        return subprocess.run(["npx", "--no-install", "wrangler", "r2", "object", *args, *where], cwd=ROOT, env=env,
                              capture_output=True, **kw)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            r = self._run(["put", f"{self.bucket}/{key}", "--file", f.name, "--content-type", content_type])
        finally:
            os.unlink(f.name)
        if r.returncode != 0:
            raise CliError(f"writing {key} failed: {_last_line(r.stderr)}")

    def get(self, key: str) -> bytes | None:
        r = self._run(["get", f"{self.bucket}/{key}", "--pipe"])
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace")
            if "not found" in err.lower() or "does not exist" in err.lower():
                return None
            raise CliError(f"reading {key} failed: {_last_line(r.stderr)}")
        return r.stdout


def _last_line(b: bytes) -> str:
    lines = [l for l in b.decode(errors="replace").splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"


def parse_alias(alias: str) -> tuple[str, str]:
    parts = alias.split("/")
    if len(parts) != 2 or not all(NAME.match(p) for p in parts):
        raise CliError(f"alias {alias!r} must be tenant/name (lowercase letters, digits, '-', '_')")
    return parts[0], parts[1]


def backbone_config(backbone_id: str, backbones: Path) -> dict:
    p = backbones / backbone_id / "config.json"
    if not p.is_file():
        raise CliError(f"adapter was packed for backbone {backbone_id!r}, which is not in {backbones}")
    return json.loads(p.read_text())


def publish(store: Store, path: Path, alias: str, backbones: Path) -> str:
    tenant, name = parse_alias(alias)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    buf = path.read_bytes()
    try:
        kv, meta, _ = adapter_fmt.parse(buf, None, str(path))
        adapter_fmt.check_backbone(meta, kv.shape, backbone_config(meta["backbone"], backbones), str(path))
    except adapter_fmt.AdapterError as e:
        raise CliError(str(e)) from None
    version = hashlib.sha256(buf).hexdigest()[:16]
    base = f"adapters/{tenant}/{name}"
    vkey = f"{base}/versions/{version}.safetensors"
    existing = store.get(vkey)
    if existing is None:
        store.put(vkey, buf, "application/octet-stream")
        existing = store.get(vkey)
    if existing != buf:
        raise CliError(f"{vkey} holds other bytes than {path} (read-back mismatch); alias not moved")
    current = _alias(store, base)
    history = (current or {}).get("history", [])
    if current and current["version"] == version:
        return version
    doc = {"alias": alias, "version": version, "key": vkey, "backbone": meta["backbone"], "kind": meta["kind"],
           "task": meta["task"], "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "history": ([current["version"]] + history)[:50] if current else []}
    store.put(f"{base}/alias.json", json.dumps(doc).encode(), "application/json")
    return version


def _alias(store: Store, base: str) -> dict | None:
    raw = store.get(f"{base}/alias.json")
    return json.loads(raw) if raw else None


def rollback(store: Store, alias: str, to: str | None) -> str:
    tenant, name = parse_alias(alias)
    base = f"adapters/{tenant}/{name}"
    cur = _alias(store, base)
    if not cur:
        raise CliError(f"{alias}: not published")
    if not cur["history"] and not to:
        raise CliError(f"{alias}: no earlier version to roll back to")
    target = to or cur["history"][0]
    if to is not None and to != cur["version"] and to not in cur["history"]:
        raise CliError(f"{alias}: version {to!r} was never published under this alias")
    if store.get(f"{base}/versions/{target}.safetensors") is None:
        raise CliError(f"{alias}: version {target} is missing from the bucket")
    rest = [v for v in [cur["version"]] + cur["history"] if v != target]
    doc = {**cur, "version": target, "key": f"{base}/versions/{target}.safetensors",
           "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "history": rest[:50]}
    store.put(f"{base}/alias.json", json.dumps(doc).encode(), "application/json")
    return target


class Api:
    """The worker's publishing endpoints (the same layout and rules, enforced server-side)."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.key = os.environ.get("SOFTEDGE_API_KEY", "")
        if not self.key:
            raise CliError("--api needs an API key with publish scope in $SOFTEDGE_API_KEY (scripts/keys.mjs create ...)")

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> dict:
        req = urllib.request.Request(f"{self.base}{path}", data=body, method=method,
                                     headers={"authorization": f"Bearer {self.key}", "content-type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())["error"]
                raise CliError(f"{method} {path}: {e.code} {err['code']}: {err['message']}") from None
            except (ValueError, KeyError, TypeError):
                raise CliError(f"{method} {path}: HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise CliError(f"cannot reach {self.base}: {e.reason}") from None

    def publish(self, path: Path, alias: str) -> str:
        parse_alias(alias)
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        buf = path.read_bytes()
        try:
            adapter_fmt.parse(buf, None, str(path))  # damaged files fail here, before any upload
        except adapter_fmt.AdapterError as e:
            raise CliError(str(e)) from None
        return self.call("PUT", f"/v1/adapters/{alias}", buf, "application/octet-stream")["version"]

    def rollback(self, alias: str, to: str | None) -> str:
        parse_alias(alias)
        return self.call("POST", f"/v1/adapters/{alias}/rollback", json.dumps({"version": to} if to else {}).encode())["version"]

    def versions(self, alias: str) -> dict:
        parse_alias(alias)
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
    where.add_argument("--remote", action="store_true", help="Cloudflare R2")
    where.add_argument("--api", metavar="URL", help="publish through a running worker's API (key in $SOFTEDGE_API_KEY)")
    ap.add_argument("--persist-to", type=Path, default=None, help="local state folder (default: wrangler's .wrangler/state)")
    ap.add_argument("--backbones", type=Path, default=ROOT / "adapters" / "backbones",
                    help="where backbone bundles live (the adapter must fit one of them)")
    a = ap.parse_args()
    if a.api:
        api = Api(a.api)
        if a.rollback:
            print(f"{a.rollback} -> {api.rollback(a.rollback, a.to)}")
        elif a.list:
            print(json.dumps(api.versions(a.list), indent=2))
        else:
            if not a.adapter or not a.alias:
                raise CliError("give an adapter file and --alias tenant/name (or --rollback / --list)")
            print(f"{a.alias} -> {api.publish(a.adapter, a.alias)}")
        return
    store = Store(a.remote, a.persist_to)
    if a.rollback:
        print(f"{a.rollback} -> {rollback(store, a.rollback, a.to)}")
    elif a.list:
        tenant, name = parse_alias(a.list)
        print(json.dumps(_alias(store, f"adapters/{tenant}/{name}"), indent=2))
    else:
        if not a.adapter or not a.alias:
            raise CliError("give an adapter file and --alias tenant/name (or --rollback / --list)")
        print(f"{a.alias} -> {publish(store, a.adapter, a.alias, a.backbones)}")


if __name__ == "__main__":
    run_cli(main)
