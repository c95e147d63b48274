// End to end on `wrangler dev` (what `npm start` runs), over loopback: the seeded dev key answers the README's
// classify call; a key made by the key CLI publishes through the API with the offline publish command (--api),
// which also lists versions and rolls back; the key CLI lists without showing secrets, revokes, refuses bad input;
// the official openai client talks to the OpenAI-compatible routes; every client the project ships gets through a
// proxy that drops kept-alive connections. Child processes run asynchronously once the server is up: a blocked event
// loop would let pooled connections outlive the server's keep-alive timeout unnoticed.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDev } from "../../scripts/lib/dev-server.mjs";
import { DEV_KEYS } from "../../scripts/lib/keys.mjs";
import { catalogPlan } from "../../scripts/lib/catalog-plan.mjs";
import { publishCatalog } from "../../scripts/lib/publish-catalog.mjs";
import { request } from "../../scripts/lib/http.mjs";
import { droppingProxy } from "./dropping-proxy";
import OpenAI from "openai";

const state = mkdtempSync(join(tmpdir(), "softedge-e2e-"));
let dev: Awaited<ReturnType<typeof startDev>>;
let ciKey = "",
  revokedKey = "",
  revokeOut = "",
  listing = "";
/** a command's exit status and output, without blocking the event loop */
const run = (cmd: string, args: string[], env = process.env) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
    execFile(cmd, args, { encoding: "utf8", env }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
    ),
  );
const keys = (...a: string[]) => run("node", ["scripts/keys.mjs", ...a, "--persist-to", state]);
const publishVia = (api: string, ...a: string[]) => run("scripts/py", ["publish", ...a, "--api", api], { ...process.env, SOFTEDGE_API_KEY: ciKey });
const publish = (...a: string[]) => publishVia(dev.base, ...a);

beforeAll(async () => {
  dev = await startDev({
    state,
    port: 8796,
    beforeStart: () => {
      // synchronous is fine here: no server is up yet
      ciKey = execFileSync("node", ["scripts/keys.mjs", "create", "--tenant", "ci", "--scope", "publish", "--label", "e2e", "--persist-to", state], {
        encoding: "utf8",
      }).trim();
      revokedKey = execFileSync("node", ["scripts/keys.mjs", "create", "--tenant", "ci", "--scope", "read", "--persist-to", state], {
        encoding: "utf8",
      }).trim();
      revokeOut = execFileSync("node", ["scripts/keys.mjs", "revoke", revokedKey.split("_")[1], "--persist-to", state], { encoding: "utf8" });
      listing = execFileSync("node", ["scripts/keys.mjs", "list", "--persist-to", state], { encoding: "utf8" });
    },
  });
}, 120_000);
afterAll(() => dev?.stop());

describe("wrangler dev, key CLI and publishing through the API", () => {
  it("answers the README's classify call with the seeded dev key, and 401 without one", async () => {
    const body = JSON.stringify({ adapter: "demo/spam-prefix", text: "WIN a FREE cruise!!! Click here to claim your prize now" });
    let r = await fetch(`${dev.base}/v1/classify`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${DEV_KEYS[0][0]}` },
      body,
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).adapter).toBe("demo/spam-prefix");
    r = await fetch(`${dev.base}/v1/classify`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([401, "missing_key"]);
  });

  it("creates and lists keys: the key is printed once and never stored or listed", async () => {
    expect(ciKey).toMatch(/^se_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const id = ciKey.split("_")[1];
    expect(listing).toContain(id);
    expect(listing).toContain("'ci'");
    expect(listing).not.toContain(ciKey.slice(16));
    const bad = await keys("create", "--tenant", "CI!", "--scope", "read");
    expect([bad.status, bad.stderr.trim()]).toEqual([2, "error: tenant must be lowercase letters, digits, '-' or '_' (at most 63)"]);
    expect((await keys("create", "--tenant", "ci", "--scope", "owner")).stderr).toMatch(/^error: scope must be one of read, publish, admin/);
    expect((await keys("revoke", "nope")).stderr).toMatch(/^error: revoke needs a key id/);
    expect(revokeOut.trim()).toBe(`revoked ${revokedKey.split("_")[1]}`);
    expect(listing).not.toContain(revokedKey.split("_")[1]);
  });

  it("refuses a revoked key", async () => {
    const r = await fetch(`${dev.base}/v1/tenant`, { headers: { authorization: `Bearer ${revokedKey}` } });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([401, "invalid_key"]);
  });

  it("publishes, lists and rolls back with `scripts/py publish --api`; refuses another tenant's alias", async () => {
    let p = await publish("adapters/default/spam-prefix.safetensors", "--alias", "ci/spam");
    expect(p.stderr).toBe("");
    const v1 = p.stdout.trim().split(" -> ")[1];
    p = await publish("adapters/default/spam-prompt.safetensors", "--alias", "ci/spam");
    const v2 = p.stdout.trim().split(" -> ")[1];
    expect(v2).toMatch(/^[0-9a-f]{16}$/);
    const r = await fetch(`${dev.base}/v1/classify`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ciKey}` },
      body: JSON.stringify({ adapter: "ci/spam", text: "cheap meds" }),
    });
    expect(((await r.json()) as any).version).toBe(v2);
    const list = JSON.parse((await publish("--list", "ci/spam")).stdout);
    expect([list.current, list.history]).toEqual([v2, [v1]]);
    expect((await publish("--rollback", "ci/spam")).stdout.trim()).toBe(`ci/spam -> ${v1}`);
    p = await publish("adapters/default/spam-prefix.safetensors", "--alias", "acme/spam");
    expect([p.status, p.stderr.trim()]).toEqual([
      2,
      "error: PUT /v1/adapters/acme/spam: 403 forbidden: a key may only change its own tenant's adapters",
    ]);
  });
});

describe("publishing the catalog through the API, as a deploy does", () => {
  it("publishes each adapter whose alias is absent, keeps those already on this backbone, refuses a key that may not", async () => {
    const plan = catalogPlan(".");
    const ci = { ...plan, adapters: plan.adapters.map((a: any) => ({ ...a, alias: a.alias.replace(/^demo\//, "ci/cat-") })) };
    expect(await publishCatalog(dev.base, ciKey, ci)).toEqual({ published: ci.adapters.length, kept: 0 });
    expect(await publishCatalog(dev.base, ciKey, ci)).toEqual({ published: 0, kept: ci.adapters.length });
    const r = await fetch(`${dev.base}/v1/adapters/${ci.adapters[0].alias}`, { headers: { authorization: `Bearer ${ciKey}` } });
    expect(((await r.json()) as any).version).toBe(ci.adapters[0].version);
    const other = { ...plan, adapters: [{ ...plan.adapters[0], alias: "ci/cat-other" }] };
    await expect(publishCatalog(dev.base, DEV_KEYS[1][0], other)).rejects.toThrow(/^(GET|PUT) \/v1\/adapters\/ci\/cat-other: 40[34] /);
  });
});

describe("every client through a proxy that drops kept-alive connections before answering", () => {
  let proxy: Awaited<ReturnType<typeof droppingProxy>>;
  beforeAll(async () => {
    proxy = await droppingProxy(dev.base);
  });
  afterAll(() => proxy?.close());

  it("publishes the catalog (publish pass, then keep pass) on connections that go stale between requests", async () => {
    const plan = catalogPlan(".");
    const ci = { ...plan, adapters: plan.adapters.map((a: any) => ({ ...a, alias: a.alias.replace(/^demo\//, "ci/drop-") })) };
    const dropped = proxy.counts.dropped;
    proxy.dropNext(2); // besides every reuse of a connection, a fresh one's first two requests
    expect(await publishCatalog(proxy.base, ciKey, ci)).toEqual({ published: ci.adapters.length, kept: 0 });
    proxy.dropNext(2);
    expect(await publishCatalog(proxy.base, ciKey, ci)).toEqual({ published: 0, kept: ci.adapters.length });
    expect(proxy.counts.dropped - dropped).toBeGreaterThanOrEqual(4);
  });

  it("publishes, lists and rolls back with `scripts/py publish --api` when the connection drops", async () => {
    proxy.dropNext(1); // the upload's first connection is closed on its request
    let p = await publishVia(proxy.base, "adapters/default/spam-prefix.safetensors", "--alias", "ci/drop");
    expect([p.status, p.stderr]).toEqual([0, ""]);
    const v1 = p.stdout.trim().split(" -> ")[1];
    proxy.dropNext(1);
    p = await publishVia(proxy.base, "adapters/default/spam-prompt.safetensors", "--alias", "ci/drop");
    const v2 = p.stdout.trim().split(" -> ")[1];
    proxy.dropNext(1);
    p = await publishVia(proxy.base, "--list", "ci/drop");
    expect([p.status, p.stderr]).toEqual([0, ""]);
    expect(JSON.parse(p.stdout).history).toEqual([v1]);
    // the rollback reads the history, then names its target on the same connection, which the proxy drops
    const dropped = proxy.counts.dropped;
    p = await publishVia(proxy.base, "--rollback", "ci/drop");
    expect([p.status, p.stdout.trim(), p.stderr]).toEqual([0, `ci/drop -> ${v1}`, ""]);
    expect(proxy.counts.dropped).toBe(dropped + 1);
    expect(JSON.parse((await publish("--list", "ci/drop")).stdout)).toMatchObject({ current: v1, history: [v2] });
  });

  it("the shared HTTP client of the benchmarks and the load test retries an idempotent request, never a POST", async () => {
    let sent = proxy.counts.requests;
    proxy.dropNext(2);
    expect((await request(`${proxy.base}/healthz`)).status).toBe(200);
    expect(proxy.counts.requests - sent).toBeGreaterThanOrEqual(3); // two dropped, then answered on a fresh connection
    const post = {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${DEV_KEYS[0][0]}` },
      body: JSON.stringify({ adapter: "demo/spam-prefix", text: "hello" }),
    };
    // a POST classify marked as harmless to repeat goes through; an unmarked POST fails and is not sent again
    proxy.dropNext(1);
    expect((await request(`${proxy.base}/v1/classify`, { ...post, idempotent: true })).status).toBe(200);
    sent = proxy.counts.requests;
    proxy.dropNext(1);
    await expect(request(`${proxy.base}/v1/classify`, post)).rejects.toMatchObject({
      code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET|EPIPE)$/),
    });
    expect(proxy.counts.requests).toBe(sent + 1);
  });
});

describe("the official openai client against wrangler dev", () => {
  const client = () => new OpenAI({ baseURL: `${dev.base}/v1`, apiKey: DEV_KEYS[0][0], maxRetries: 0 });
  const generate = async (body: object) =>
    (await (
      await fetch(`${dev.base}/v1/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${DEV_KEYS[0][0]}` },
        body: JSON.stringify(body),
      })
    ).json()) as any;

  it("completes as /v1/generate does, whole and streamed, with finish reason and usage", async () => {
    const want = await generate({ adapter: "demo/define-prefix", input: "volcano", max_new_tokens: 8, stop: ["\u0000"] });
    const c = await client().completions.create({ model: "demo/define-prefix", prompt: "volcano", max_tokens: 8, temperature: 0, stop: "\u0000" });
    expect(c.object).toBe("text_completion");
    expect(c.choices[0].text.trim()).toBe(want.text);
    expect(c.choices[0].finish_reason).toBe(want.finish_reason);
    expect(c.usage).toEqual({
      prompt_tokens: want.usage.prompt_tokens,
      completion_tokens: want.usage.completion_tokens,
      total_tokens: want.usage.prompt_tokens + want.usage.completion_tokens,
    });
    const stream = await client().completions.create({
      model: "demo/define-prefix",
      prompt: "volcano",
      max_tokens: 8,
      temperature: 0,
      stop: "\u0000",
      stream: true,
    });
    let text = "",
      finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0].text;
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    expect(text.trim()).toBe(want.text);
    expect(finish).toBe(want.finish_reason);
    // seeded sampling repeats exactly
    const a = await client().completions.create({ model: "demo/define-prefix", prompt: "ocean", max_tokens: 6, temperature: 0.9, seed: 7 });
    const b = await client().completions.create({ model: "demo/define-prefix", prompt: "ocean", max_tokens: 6, temperature: 0.9, seed: 7 });
    expect(a.choices[0].text).toBe(b.choices[0].text);
  });

  it("lists the generation adapters as models, and reports errors the client can read", async () => {
    const ids = [];
    for await (const m of client().models.list()) ids.push(m.id);
    expect(ids).toContain("demo/define-prefix");
    expect(ids).not.toContain("demo/spam-prefix"); // a classifier is not a completion model
    await expect(client().completions.create({ model: "demo/spam-prefix", prompt: "x" })).rejects.toMatchObject({ status: 400 });
    await expect(client().completions.create({ model: "demo/nope", prompt: "x" })).rejects.toMatchObject({ status: 404 });
    const bad = new OpenAI({ baseURL: `${dev.base}/v1`, apiKey: "se_000000000000_nope", maxRetries: 0 });
    await expect(bad.completions.create({ model: "demo/define-prefix", prompt: "x" })).rejects.toMatchObject({ status: 401 });
  });
});
