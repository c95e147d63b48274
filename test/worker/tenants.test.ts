// Tenants, keys and scopes in workerd: the isolation matrix (every endpoint x own key, another tenant's key, no key,
// bad keys, too small a scope), grants, per-tenant defaults, publish -> versions -> rollback through the API, limits.
import { env } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { bytes, call, hex, newKey, postJson, putAdapter, seedDefaults, withHeader, type Catalog } from "./helpers";
import { Directory, MAX_ENTRIES, MAX_MISSING } from "../../src/auth/tenants";
import { AdapterCache, AdapterStore } from "../../src/store/adapters";
import { parseRef } from "../../src/store/refs";

let catalog: Catalog;
const art: Record<string, Uint8Array> = {};
const K: Record<string, string> = {};
let v1 = "",
  v2 = "";

/** every object under a tenant's prefix with its etag: a write leaves a trace here */
async function snapshot(prefix: string) {
  const page = await env.BUCKET.list({ prefix });
  return page.objects.map((o) => `${o.key} ${o.etag}`).sort();
}

beforeAll(async () => {
  catalog = await seedDefaults();
  for (const n of ["spam-prefix", "spam-prompt", "topic-prefix", "define-prefix"]) art[n] = await bytes(`adapters/default/${n}.safetensors`);
  for (const [t, s] of [
    ["acme", "read"],
    ["acme", "publish"],
    ["acme", "admin"],
    ["globex", "admin"],
    ["globex", "read"],
  ] as const)
    K[`${t}-${s}`] = await newKey(t, s);
  // a revoked key: created, then its record deleted, as `scripts/keys.mjs revoke` does
  K.revoked = await newKey("acme", "admin");
  await env.TENANTS.delete(`key/${K.revoked.split("_")[1]}`);
  // a known id with the wrong secret (its last character changed: always part of the secret; changing letters of
  // the id, as before, left the key intact whenever the id's first 8 hex digits held no letter, ~2% of runs), and
  // a string that is not a key at all
  K.wrongSecret = K["acme-admin"].slice(0, -1) + (K["acme-admin"].endsWith("A") ? "B" : "A");
  expect(K.wrongSecret.split("_")[1]).toBe(K["acme-admin"].split("_")[1]);
  expect(K.wrongSecret).not.toBe(K["acme-admin"]);
  K.malformed = "not-a-key";
  let r = await putAdapter("acme/spam", K["acme-publish"], art["spam-prefix"]);
  expect(r.status).toBe(201);
  v1 = ((await r.json()) as any).version;
  r = await putAdapter("acme/define", K["acme-publish"], art["define-prefix"]);
  expect(r.status).toBe(201);
  r = await putAdapter("globex/topics", K["globex-admin"], art["topic-prefix"]);
  expect(r.status).toBe(201);
  v2 = (await hex(art["spam-prompt"])).slice(0, 16);
});

describe("publishing through the API", () => {
  it("publishes a version, moves the alias, lists versions, rolls back and forward", async () => {
    const key = K["acme-publish"];
    let r = await putAdapter("acme/spam", key, art["spam-prompt"]);
    expect(r.status).toBe(201);
    expect(await r.json()).toMatchObject({ alias: "acme/spam", version: v2, previous: v1, moved: true, kind: "prompt", task: "classify" });
    // the isolate that moved the alias serves the new version at once
    let j: any = await (await postJson("/v1/classify", key, { adapter: "acme/spam", text: "cheap meds" })).json();
    expect(j.version).toBe(v2);
    // same bytes again: nothing moves
    r = await putAdapter("acme/spam", key, art["spam-prompt"]);
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).moved).toBe(false);
    j = await (await call("GET", "/v1/adapters/acme/spam/versions", { key })).json();
    expect(j.current).toBe(v2);
    expect(j.history).toEqual([v1]);
    expect(j.versions.map((v: any) => v.version).sort()).toEqual([v1, v2].sort());
    expect(j.versions.find((v: any) => v.version === v2).bytes).toBe(art["spam-prompt"].byteLength);
    // rollback (default: the previous version), then forward again by naming the version
    r = await postJson("/v1/adapters/acme/spam/rollback", key, {});
    expect(await r.json()).toMatchObject({ version: v1, previous: v2, moved: true });
    j = await (await postJson("/v1/classify", key, { adapter: "acme/spam", text: "cheap meds" })).json();
    expect(j.version).toBe(v1);
    r = await call("POST", "/v1/adapters/acme/spam/rollback", { key }); // no body at all: the previous version
    expect(((await r.json()) as any).version).toBe(v2);
    r = await postJson("/v1/adapters/acme/spam/rollback", key, { version: v1 });
    expect(((await r.json()) as any).version).toBe(v1);
    j = await (await call("GET", "/v1/adapters/acme/spam/versions", { key })).json();
    expect(j.history).toEqual([v2]);
    // a version never published under this alias, and an alias that does not exist
    r = await postJson("/v1/adapters/acme/spam/rollback", key, { version: "0123456789abcdef" });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([404, "version_not_found"]);
    r = await postJson("/v1/adapters/acme/nothing/rollback", key, {});
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([404, "adapter_not_found"]);
    r = await postJson("/v1/adapters/acme/define/rollback", key, {});
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([409, "no_previous_version"]);
  });

  it("keeps both publishers' versions in the history when they race (compare-and-swap on the alias)", async () => {
    const key = K["acme-publish"];
    const variants = await Promise.all(
      Array.from({ length: 6 }, async (_, i) =>
        withHeader(art["spam-prefix"], (h) => {
          h.__metadata__.created = `race-${i}`;
        }),
      ),
    );
    const res = await Promise.all(variants.map((b) => putAdapter("acme/race", key, b)));
    for (const r of res) expect(r.status).toBe(201);
    const versions = await Promise.all(variants.map(async (b) => (await hex(b)).slice(0, 16)));
    const j: any = await (await call("GET", "/v1/adapters/acme/race/versions", { key })).json();
    expect([j.current, ...j.history].sort()).toEqual([...versions].sort());
  });

  it("refuses uploads over MAX_ADAPTER_BYTES, with or without a Content-Length, and writes nothing", async () => {
    const before = await snapshot("adapters/acme/");
    const e = { ...env, MAX_ADAPTER_BYTES: "1000" };
    let r = await putAdapter("acme/big", K["acme-publish"], art["spam-prefix"], e);
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([413, "adapter_too_large"]);
    const stream = new Blob([art["spam-prefix"]]).stream(); // chunked: no length up front
    r = await call(
      "PUT",
      "/v1/adapters/acme/big",
      { key: K["acme-publish"], headers: { "content-type": "application/octet-stream" }, body: stream },
      e,
    );
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([413, "adapter_too_large"]);
    expect(await snapshot("adapters/acme/")).toEqual(before);
  });
});

describe("isolation", () => {
  // each endpoint: how to call it for acme's resources, and what the owner (acme admin) gets
  const classify = (k?: string) => postJson("/v1/classify", k, { adapter: "acme/spam", text: "hello" });
  const endpoints: [string, "read" | "publish" | "admin", (k?: string) => Promise<Response>][] = [
    ["POST /v1/classify", "read", classify],
    ["POST /v1/classify (pinned version)", "read", (k) => postJson("/v1/classify", k, { adapter: `acme/spam@${v1}`, text: "hello" })],
    [
      "POST /v1/classify (batch)",
      "read",
      (k) =>
        postJson("/v1/classify", k, {
          items: [
            { adapter: "demo/spam-prefix", text: "a" },
            { adapter: "acme/spam", text: "b" },
          ],
        }),
    ],
    ["POST /v1/generate", "read", (k) => postJson("/v1/generate", k, { adapter: "acme/define", input: "cat", max_new_tokens: 2 })],
    ["GET /v1/adapters", "read", (k) => call("GET", "/v1/adapters", { key: k })],
    ["GET /v1/adapters/{t}/{n}", "read", (k) => call("GET", "/v1/adapters/acme/spam", { key: k })],
    ["GET /v1/adapters/{t}/{n}/versions", "read", (k) => call("GET", "/v1/adapters/acme/spam/versions", { key: k })],
    ["PUT /v1/adapters/{t}/{n}", "publish", (k) => putAdapter("acme/spam", k, art["topic-prefix"])],
    ["POST /v1/adapters/{t}/{n}/rollback", "publish", (k) => postJson("/v1/adapters/acme/spam/rollback", k, {})],
    ["GET /v1/tenant", "read", (k) => call("GET", "/v1/tenant", { key: k })],
    [
      "PUT /v1/tenant/defaults",
      "admin",
      (k) =>
        call("PUT", "/v1/tenant/defaults", {
          key: k,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ classify: "acme/spam" }),
        }),
    ],
    ["GET /v1/tenant/grants", "admin", (k) => call("GET", "/v1/tenant/grants", { key: k })],
    ["PUT /v1/tenant/grants/{reader}", "admin", (k) => call("PUT", "/v1/tenant/grants/initech", { key: k })],
    ["DELETE /v1/tenant/grants/{reader}", "admin", (k) => call("DELETE", "/v1/tenant/grants/initech", { key: k })],
  ];
  const scopes = ["read", "publish", "admin"];

  it("holds for every endpoint x key", async () => {
    const cells: string[] = [];
    const acmeBefore = await snapshot("adapters/acme/");
    const acmeSettings = await env.TENANTS.get("tenant/acme");
    for (const [name, need, fn] of endpoints) {
      // no key, and three kinds of bad key: 401 with a generic message
      for (const [kind, k, code] of [
        ["no key", undefined, "missing_key"],
        ["malformed key", K.malformed, "invalid_key"],
        ["wrong secret", K.wrongSecret, "invalid_key"],
        ["revoked key", K.revoked, "invalid_key"],
      ] as const) {
        const r = await fn(k);
        const text = await r.text();
        expect([name, kind, r.status, JSON.parse(text).error.code]).toEqual([name, kind, 401, code]);
        expect(text).not.toMatch(/acme|globex/);
        for (const secret of Object.values(K)) expect(text).not.toContain(secret);
        cells.push(`${name} / ${kind}`);
      }
      // a scope below the endpoint's: 403, nothing changes
      for (const s of scopes.slice(0, scopes.indexOf(need))) {
        const r = await fn(K[`acme-${s}`]);
        expect([name, s, r.status, ((await r.json()) as any).error.code]).toEqual([name, s, 403, "insufficient_scope"]);
        cells.push(`${name} / scope ${s}`);
      }
      // another tenant's admin key: acme's adapters are invisible (404, the same as a missing one; also as a default)
      // and unwritable (403); tenant endpoints answer about globex only
      const r = await fn(K["globex-admin"]);
      const text = await r.text();
      if (name.startsWith("GET /v1/adapters") && !name.includes("{t}")) {
        expect(r.status).toBe(200);
        const aliases = JSON.parse(text).adapters.map((a: any) => a.alias);
        expect(aliases).toContain("globex/topics");
        expect(aliases.filter((a: string) => a.startsWith("acme/"))).toEqual([]);
      } else if (name.includes("tenant") && name !== "PUT /v1/tenant/defaults") {
        expect(r.status).toBe(200);
        expect(text).not.toMatch(/acme/);
      } else if (need === "publish") {
        expect([name, r.status, JSON.parse(text).error.code]).toEqual([name, 403, "forbidden"]);
      } else {
        expect([name, r.status, JSON.parse(text).error.code]).toEqual([name, 404, "adapter_not_found"]);
      }
      expect(text).not.toMatch(/acme\//);
      cells.push(`${name} / other tenant`);
    }
    // nothing of acme's changed through any of those calls
    expect(await snapshot("adapters/acme/")).toEqual(acmeBefore);
    expect(await env.TENANTS.get("tenant/acme")).toBe(acmeSettings);
    // and the owner's key works on every endpoint
    for (const [name, , fn] of endpoints) {
      const r = await fn(K["acme-admin"]);
      expect([name, r.status < 300]).toEqual([name, true]);
      cells.push(`${name} / own key`);
    }
    // 4 bad-key kinds + other tenant + own per endpoint, and one cell per scope below the one needed
    expect(cells.length).toBe(endpoints.length * 6 + endpoints.reduce((n, [, need]) => n + scopes.indexOf(need), 0));
    console.log(`isolation matrix: ${cells.length} cells, ${endpoints.length} endpoints`);
  });

  it("lets a tenant read another's adapters only while granted; public namespaces are readable by all", async () => {
    const g = K["globex-read"];
    expect((await postJson("/v1/classify", g, { adapter: "demo/spam-prefix", text: "hi" })).status).toBe(200);
    expect((await postJson("/v1/classify", g, { adapter: "acme/spam", text: "hi" })).status).toBe(404);
    expect((await call("PUT", "/v1/tenant/grants/globex", { key: K["acme-admin"] })).status).toBe(200);
    expect((await postJson("/v1/classify", g, { adapter: "acme/spam", text: "hi" })).status).toBe(200);
    let list: any = await (await call("GET", "/v1/adapters", { key: g })).json();
    expect(list.adapters.map((a: any) => a.alias)).toContain("acme/spam");
    const t: any = await (await call("GET", "/v1/tenant", { key: g })).json();
    expect(t.readable).toEqual(["acme", "demo", "globex"]);
    // a grant is read-only: globex still cannot publish into acme
    expect((await putAdapter("acme/spam", K["globex-admin"], art["spam-prefix"])).status).toBe(403);
    expect((await call("DELETE", "/v1/tenant/grants/globex", { key: K["acme-admin"] })).status).toBe(200);
    expect((await postJson("/v1/classify", g, { adapter: "acme/spam", text: "hi" })).status).toBe(404);
    list = await (await call("GET", "/v1/adapters", { key: g })).json();
    expect(list.adapters.map((a: any) => a.alias).filter((a: string) => a.startsWith("acme/"))).toEqual([]);
  });
});

describe("per-tenant routing", () => {
  it("uses the tenant's default adapter per task when a request names none", async () => {
    const admin = K["acme-admin"],
      read = K["acme-read"];
    const setDefaults = (k: string, body: unknown) =>
      call("PUT", "/v1/tenant/defaults", { key: k, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    let r = await postJson("/v1/classify", K["globex-read"], { text: "hi" });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([400, "no_default_adapter"]);
    r = await setDefaults(admin, { classify: "demo/spam-prefix", generate: "acme/define" });
    expect(await r.json()).toEqual({ classify: "demo/spam-prefix", generate: "acme/define" });
    let j: any = await (await postJson("/v1/classify", read, { text: "hi" })).json();
    expect(j.adapter).toBe("demo/spam-prefix");
    j = await (await postJson("/v1/classify", read, { items: [{ text: "a" }, { adapter: "acme/spam", text: "b" }] })).json();
    expect(j.results.map((x: any) => x.adapter)).toEqual(["demo/spam-prefix", "acme/spam"]);
    j = await (await postJson("/v1/generate", read, { input: "cat", max_new_tokens: 2 })).json();
    expect(j.adapter).toBe("acme/define");
    // a default must be readable and of the right task; null removes one
    r = await setDefaults(admin, { classify: "globex/topics" });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([404, "adapter_not_found"]);
    r = await setDefaults(admin, { classify: "acme/define" });
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([400, "wrong_task"]);
    r = await setDefaults(admin, { generate: null });
    expect(await r.json()).toEqual({ classify: "demo/spam-prefix" });
  });
});

describe("alias propagation", () => {
  it("another isolate sees a moved alias within its alias TTL, and a pinned version at once", async () => {
    const cfg = JSON.parse(await (await env.BUCKET.get(`backbones/${catalog.default_backbone}/config.json`))!.text());
    const io = { bucket: env.BUCKET, retry: { attempts: 3, timeoutMs: 2000, backoffMs: 10 } };
    const other = new AdapterStore(new AdapterCache(1 << 20), 200); // a second isolate's store, TTL 200 ms
    const key = K["acme-publish"];
    const first = ((await (await putAdapter("acme/ttl", key, art["spam-prefix"])).json()) as any).version;
    expect((await other.resolve(io, parseRef("acme/ttl"), cfg)).version).toBe(first);
    const second = ((await (await putAdapter("acme/ttl", key, art["spam-prompt"])).json()) as any).version;
    expect((await other.resolve(io, parseRef("acme/ttl"), cfg)).version).toBe(first); // within the TTL: the version it knows
    expect((await other.resolve(io, parseRef(`acme/ttl@${second}`), cfg)).version).toBe(second); // pinned: at once
    await new Promise((r) => setTimeout(r, 250));
    expect((await other.resolve(io, parseRef("acme/ttl"), cfg)).version).toBe(second); // after the TTL: the moved alias
  });
});

describe("key cache", () => {
  it("serves a cached key record within the TTL, then refreshes it: a revoked key stops working", async () => {
    const dir = new Directory(50, 10_000);
    const pending: Promise<unknown>[] = [];
    const src = {
      kv: env.TENANTS,
      waitUntil: (p: Promise<unknown>) => {
        pending.push(p);
      },
    };
    const key = await newKey("initech", "read"),
      id = key.split("_")[1];
    expect((await dir.keyRecord(src, id))?.tenant).toBe("initech");
    await env.TENANTS.delete(`key/${id}`);
    expect((await dir.keyRecord(src, id))?.tenant).toBe("initech"); // within the TTL: cached
    await new Promise((r) => setTimeout(r, 60));
    expect((await dir.keyRecord(src, id))?.tenant).toBe("initech"); // expired: the old answer while one refresh runs
    await Promise.all(pending); // the refresh was handed to waitUntil
    expect(await dir.keyRecord(src, id)).toBeNull();
  });

  /** the real KV behind a switch (reads fail while `fail` is set), counting reads; refreshes go to `pending` */
  function kvSource() {
    const s = { fail: false, reads: 0 };
    const kv = {
      get: async (k: string, type: "json") => {
        s.reads++;
        if (s.fail) throw new Error("KV unavailable (injected)");
        return env.TENANTS.get(k, type);
      },
      list: (o?: KVNamespaceListOptions) => env.TENANTS.list(o),
      put: (k: string, v: string) => env.TENANTS.put(k, v),
      delete: (k: string) => env.TENANTS.delete(k),
    } as unknown as KVNamespace;
    const pending: Promise<unknown>[] = [];
    return { s, kv, pending, src: { kv, waitUntil: (p: Promise<unknown>) => void pending.push(p) } };
  }
  /** Date.now under the test's control, from now on */
  function clock() {
    const c = { t: Date.now() };
    vi.spyOn(Date, "now").mockImplementation(() => c.t);
    return c;
  }
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("answers a revoked key from the stale cache only within AUTH_STALE_MS while KV fails, then auth_unavailable", async () => {
    const key = await newKey("initech", "read"),
      id = key.split("_")[1];
    const k = kvSource(),
      c = clock(),
      dir = new Directory(10_000, 50_000);
    expect((await dir.keyRecord(k.src, id))?.tenant).toBe("initech");
    await env.TENANTS.delete(`key/${id}`); // revoked, and KV cannot be read from now on
    k.s.fail = true;
    c.t += 10_000; // past the TTL: the stale record while a refresh runs, and that refresh fails
    expect((await dir.keyRecord(k.src, id))?.tenant).toBe("initech");
    await Promise.all(k.pending);
    expect(k.s.reads).toBe(2);
    c.t += 49_999; // the failed refresh did not make the record younger: still within TTL + grace, just
    expect((await dir.keyRecord(k.src, id))?.tenant).toBe("initech");
    await Promise.all(k.pending);
    c.t += 1; // TTL + grace: no stale answer any more
    const err = await dir.keyRecord(k.src, id).then(
      () => null,
      (e) => e,
    );
    expect([err?.code, err?.headers?.["retry-after"]]).toEqual(["auth_unavailable", "1"]);
    k.s.fail = false; // KV back: the revocation is seen
    expect(await dir.keyRecord(k.src, id)).toBeNull();
  });

  it("answers 503 auth_unavailable with Retry-After when a key cannot be looked up", async () => {
    const k = kvSource();
    k.s.fail = true;
    const unknown = `se_${"0123456789ab"}_${"A".repeat(43)}`; // well formed, never cached on this isolate
    const r = await call("GET", "/v1/tenant", { key: unknown }, { ...env, TENANTS: k.kv });
    expect([r.status, ((await r.json()) as any).error.code, r.headers.get("retry-after")]).toEqual([503, "auth_unavailable", "1"]);
  });

  it("keeps a known key cached through a flood of random key ids; misses are cached briefly, apart, bounded", async () => {
    const key = await newKey("initech", "read"),
      id = key.split("_")[1];
    const k = kvSource(),
      c = clock(), // stands still during the flood: every entry stays within its TTL
      dir = new Directory(10_000, 50_000);
    expect((await dir.keyRecord(k.src, id))?.tenant).toBe("initech");
    const flood = Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => (0xa000_0000_0000 + i).toString(16));
    for (let i = 0; i < flood.length; i += 500) await Promise.all(flood.slice(i, i + 500).map((f) => dir.keyRecord(k.src, f)));
    expect(k.s.reads).toBe(1 + flood.length);
    // the known key: still cached, no KV read
    expect((await dir.keyRecord(k.src, id))?.tenant).toBe("initech");
    expect(k.s.reads).toBe(1 + flood.length);
    // the misses: held apart, at most MAX_MISSING of them; the latest ones answer without a KV read
    expect(dir.sizes).toEqual({ found: 1, missing: MAX_MISSING });
    const recent = flood.slice(-100);
    for (const f of recent) expect(await dir.keyRecord(k.src, f)).toBeNull();
    expect(k.s.reads).toBe(1 + flood.length);
    // past the short miss TTL (well within the key TTL) an unknown id is looked up again
    c.t += 2_000;
    expect(await dir.keyRecord(k.src, recent[0])).toBeNull();
    expect(k.s.reads).toBe(2 + flood.length);
    expect(dir.sizes).toEqual({ found: 1, missing: MAX_MISSING });
  });
});

describe("limits", () => {
  it("caps the JSON body (413 payload_too_large)", async () => {
    const r = await postJson(
      "/v1/classify",
      K["acme-read"],
      { adapter: "demo/spam-prefix", text: "x".repeat(2000) },
      { ...env, MAX_BODY_BYTES: "1000" },
    );
    expect([r.status, ((await r.json()) as any).error.code]).toEqual([413, "payload_too_large"]);
  });

  it("rate-limits per tenant when a limiter is bound (429 rate_limited), other tenants unaffected", async () => {
    const e = { ...env, RATE_LIMITER: env.TIGHT_LIMITER }; // 3 requests per 60 s per tenant
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await call("GET", "/v1/tenant", { key: K["acme-read"] }, e)).status);
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    const r = await call("GET", "/v1/tenant", { key: K["acme-read"] }, e);
    expect(r.headers.get("retry-after")).toBeTruthy();
    expect(((await r.json()) as any).error.code).toBe("rate_limited");
    expect((await call("GET", "/v1/tenant", { key: K["globex-read"] }, e)).status).toBe(200);
  });
});
