"""Publishing to the local R2 that `wrangler dev` serves (miniflare state in a temp folder): immutable versions,
alias moved only after the version is written, idempotent re-publish, rollback, refusal of damaged artifacts; the
API client's retries against a server that hangs up on every request."""
import json
import os
import socketserver
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from softedge.artifacts import adapter as A
from softedge.common import CliError
from softedge.publishing.publish import Api
from conftest import run_module
from test_adapters import tiny_bundle, one_line_error  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    return run_module("publish", *args)


def r2_get(state, key):
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false"}
    r = subprocess.run(
        [
            "npx",
            "--no-install",
            "wrangler",
            "r2",
            "object",
            "get",
            f"softedge/{key}",
            "--pipe",
            "--local",
            "--persist-to",
            str(state),
        ],
        capture_output=True,
        cwd=ROOT,
        env=env,
    )
    return r.stdout if r.returncode == 0 else None


def test_publish_rollback_and_refusals(tiny_bundle, tmp_path):  # noqa: F811
    cfg = json.loads((tiny_bundle / "config.json").read_text())
    files = []
    for i in range(2):
        kv = torch.randn(
            cfg["num_layers"], 2, cfg["num_kv_heads"], 3, cfg["head_dim"], generator=torch.Generator().manual_seed(i)
        )
        f = tmp_path / f"v{i}.safetensors"
        f.write_bytes(A.pack("prefix", "generate", cfg, kv, template="{input}"))
        files.append(f)
    state = tmp_path / "state"
    common = ["--local", "--persist-to", state, "--backbones", tiny_bundle.parent]
    r1 = cli(files[0], "--alias", "acme/spam", *common)
    assert r1.returncode == 0, r1.stderr
    v1 = r1.stdout.split("-> ")[1].strip()
    r2 = cli(files[1], "--alias", "acme/spam", *common)
    v2 = r2.stdout.split("-> ")[1].strip()
    assert v1 != v2
    alias = json.loads(r2_get(state, "adapters/acme/spam/alias.json"))
    assert alias["version"] == v2 and alias["history"] == [v1]
    assert r2_get(state, f"adapters/acme/spam/versions/{v1}.safetensors") == files[0].read_bytes()
    # the same bytes again: same version, alias unchanged
    assert cli(files[1], "--alias", "acme/spam", *common).stdout.strip().endswith(v2)
    # rollback moves the alias back; the versions stay
    rb = cli("--rollback", "acme/spam", *common)
    assert rb.returncode == 0 and rb.stdout.strip().endswith(v1)
    assert json.loads(r2_get(state, "adapters/acme/spam/alias.json"))["version"] == v1
    # a damaged artifact is refused before anything is written
    bad = tmp_path / "bad.safetensors"
    buf = files[0].read_bytes()
    bad.write_bytes(buf[:-5] + bytes([buf[-5] ^ 1]) + buf[-4:])
    one_line_error(cli(bad, "--alias", "acme/spam", *common), "checksum")
    one_line_error(
        cli(files[0], "--alias", "Acme/../x", *common), "adapter must be 'tenant/name'"
    )  # the worker's own rule
    # the worker's checks, not a second set: a classifier without labels is refused here as the API refuses it
    kv = torch.randn(cfg["num_layers"], 2, cfg["num_kv_heads"], 3, cfg["head_dim"])
    (tmp_path / "nolabels.safetensors").write_bytes(A.pack("prefix", "classify", cfg, kv, template="{text}"))
    one_line_error(
        cli(tmp_path / "nolabels.safetensors", "--alias", "acme/x", *common), "without usable labels (adapter_invalid)"
    )
    one_line_error(cli(files[0], "--alias", "acme/spam", "--remote"), "publish with --api")
    listing = json.loads(cli("--list", "acme/spam", *common).stdout)
    assert (
        listing["current"] == v1
        and listing["history"] == [v2]
        and {v["version"] for v in listing["versions"]} == {v1, v2}
    )
    assert json.loads(r2_get(state, "adapters/acme/spam/alias.json"))["version"] == v1


@pytest.fixture
def hangup_server():
    """A TCP server that reads each request's first bytes and closes the connection without a response."""
    seen = []

    class Hangup(socketserver.BaseRequestHandler):
        def handle(self):
            seen.append(self.request.recv(65536).split(b" ", 1)[0].decode())

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Hangup) as srv:
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
        srv.shutdown()


def test_api_retries_what_is_safe_to_repeat_then_fails_in_one_line(hangup_server, monkeypatch):
    base, seen = hangup_server
    env = {"SOFTEDGE_API_KEY": "se_000000000000_test"}
    one_line_error(run_module("publish", "--list", "acme/spam", "--api", base, env=env), f"cannot reach {base}")
    assert seen == ["GET"] * 4  # the first try and three retries
    seen.clear()
    r = run_module("publish", "--rollback", "acme/spam", "--to", "0123456789abcdef", "--api", base, env=env)
    one_line_error(r, "(POST /v1/adapters/acme/spam/rollback)")
    assert seen == ["POST"] * 4  # a rollback to a named version may be repeated
    seen.clear()
    monkeypatch.setenv("SOFTEDGE_API_KEY", env["SOFTEDGE_API_KEY"])
    with pytest.raises(CliError, match=f"cannot reach {base}"):
        Api(base).call("POST", "/v1/adapters/acme/spam/rollback", b"{}")  # not marked idempotent: sent once
    assert seen == ["POST"]
