// The API inside workerd against miniflare's R2, seeded from the default catalog: golden answers from the Python
// side, mixed-adapter batches, streaming, one backbone load for concurrent cold requests, and bad input.
import { parityTolerance } from "../parity-tolerance";
import { env } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import app from "../../src/index";
import pkg from "../../package.json";
import { getBackbone, stats } from "../../src/store/backbone";
import { AdapterCache } from "../../src/store/adapters";
import type { Adapter } from "../../src/engine/adapter";
import { bytes, call, fx, newKey, plant, postJson, seedDefaults, type Catalog } from "./helpers";

let catalog: Catalog;
let golden: any;
let key: string; // a read key of an ordinary tenant: the demo namespace is public
const byFile: Record<string, string> = {}; // adapter file name -> alias

const post = (path: string, body: unknown) => postJson(path, key, body);

beforeAll(async () => {
  catalog = await seedDefaults();
  golden = await (await fx("test/fixtures/golden.json")).json();
  key = await newKey("acme", "read");
  for (const a of catalog.adapters) byFile[a.file.split("/").pop()!] = a.alias;
});

describe("API in workerd", () => {
  it("loads the backbone once for concurrent cold requests", async () => {
    const g = golden.adapters.find((a: any) => a.task === "classify");
    const res = await Promise.all(Array.from({ length: 6 }, () => post("/v1/classify", { adapter: byFile[g.adapter], text: g.cases[0].text })));
    for (const r of res) expect(r.status).toBe(200);
    expect(stats.loads).toBe(1);
  });

  it("classifies as the Python side does, with a Server-Timing header", async () => {
    for (const a of golden.adapters.filter((x: any) => x.task === "classify"))
      for (const c of a.cases) {
        const r = await post("/v1/classify", { adapter: byFile[a.adapter], text: c.text });
        expect(r.status).toBe(200);
        expect(r.headers.get("server-timing")).toMatch(/adapter;dur=.*tokenize;dur=.*inference;dur=/);
        const j: any = await r.json();
        expect(j.label).toBe(c.label);
        expect(j.scores[0].label).toBe(j.label);
        expect(j.scores.map((x: any) => x.score)).toEqual(Object.values(j.probabilities).sort((x: any, y: any) => y - x));
        expect(j.adapter).toBe(byFile[a.adapter]);
        expect(j.version).toMatch(/^[0-9a-f]{16}$/);
        const tol = parityTolerance(golden.reference.replace(/^simulated /, "")).probabilities;
        for (const [l, p] of Object.entries<number>(c.probabilities)) expect(Math.abs(j.probabilities[l] - p)).toBeLessThanOrEqual(tol);
      }
  });

  it("runs items with different adapters as one batch, each answering as it would alone", async () => {
    const items = golden.adapters
      .filter((x: any) => x.task === "classify")
      .flatMap((a: any) => a.cases.map((c: any) => ({ adapter: byFile[a.adapter], text: c.text })));
    expect(new Set(items.map((x: any) => x.adapter)).size).toBeGreaterThan(1);
    const batch: any = await (await post("/v1/classify", { items })).json();
    for (const [i, it] of items.entries()) {
      const single: any = await (await post("/v1/classify", it)).json();
      expect(batch.results[i].label).toBe(single.label);
      for (const l of Object.keys(single.probabilities))
        expect(Math.abs(batch.results[i].probabilities[l] - single.probabilities[l])).toBeLessThanOrEqual(1e-4);
    }
  });

  it("generates as the Python side does (the adapter's beams; greedy), with finish reason and token counts; streaming yields the same", async () => {
    const a = golden.adapters.find((x: any) => x.task === "generate");
    for (const [c, beams] of a.cases.slice(0, 4).map((c: any, i: number) => [c, i % 2 === 0])) {
      // the adapter's decoding (its beams) by default, greedy with num_beams 1
      const body = {
        adapter: byFile[a.adapter],
        input: c.input,
        max_new_tokens: golden.max_new_tokens, // the adapter's stop strings, as the Python side used them
        ...(beams ? {} : { num_beams: 1 }),
      };
      const want = beams ? c.beam_ids : c.greedy_ids;
      const j: any = await (await post("/v1/generate", body)).json();
      expect(j.text).toBe((beams ? c.beam_text : c.greedy_text).trim());
      expect(j.finish_reason).toBe(want.length < golden.max_new_tokens ? "stop" : "length");
      expect(j.usage).toEqual({ prompt_tokens: c.prompt_ids.length, completion_tokens: want.length });
      const sse = await (await post("/v1/generate", { ...body, stream: true })).text();
      const events = [...sse.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => [m[1], JSON.parse(m[2])]);
      const streamed = events
        .filter((e) => e[0] === "token")
        .map((e) => e[1].text)
        .join("");
      expect(streamed.trim()).toBe(j.text);
      expect(events.at(-1)![0]).toBe("done");
      expect(events.at(-1)![1]).toMatchObject({ text: j.text, finish_reason: j.finish_reason, usage: j.usage });
    }
    // streamed text is never taken back: with a stop string that begins in text a step has already decoded (two
    // characters across a token boundary at some offset), the deltas still join to the final text
    const long = a.cases.find((x: any) => x.greedy_text.length >= 20);
    for (let at = 1; at < 12; at++) {
      const body = {
        adapter: byFile[a.adapter],
        input: long.input,
        max_new_tokens: golden.max_new_tokens,
        num_beams: 1,
        stop: [long.greedy_text.slice(at, at + 2)],
      };
      const whole: any = await (await post("/v1/generate", body)).json();
      const events = [...(await (await post("/v1/generate", { ...body, stream: true })).text()).matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => [
        m[1],
        JSON.parse(m[2]),
      ]);
      const joined = events
        .filter((e) => e[0] === "token")
        .map((e) => e[1].text)
        .join("");
      expect(joined.trim()).toBe(whole.text);
      expect(events.at(-1)![1].text).toBe(whole.text);
    }
    // a stop string ends it with "stop", and cuts the text before the string
    const c = a.cases.find((x: any) => x.greedy_text.trim().includes(" "));
    const j: any = await (
      await post("/v1/generate", { adapter: byFile[a.adapter], input: c.input, max_new_tokens: golden.max_new_tokens, stop: [" "], num_beams: 1 })
    ).json();
    expect(j.finish_reason).toBe("stop");
    expect(c.greedy_text.trim().startsWith(j.text)).toBe(true);
    expect(j.text).not.toContain(" ");
    // the adapter's no-repeat n-gram size (GET /v1/adapters/..: generation) is the default; a request may set it
    const alias = byFile[a.adapter];
    const info: any = await (await call("GET", `/v1/adapters/${alias}`, { key })).json();
    const stored = info.generation.no_repeat_ngram_size;
    expect(stored).toBeGreaterThan(0); // the tuner chose one on its dev split
    expect(info.generation.num_beams).toBe(c.num_beams); // and its beams
    const gen = async (extra: object) =>
      (await (await post("/v1/generate", { adapter: alias, input: c.input, max_new_tokens: 24, ...extra })).json()) as any;
    expect((await gen({ no_repeat_ngram_size: stored })).text).toBe((await gen({})).text);
    // a request's 0 turns the adapter's setting off: plain greedy, as PyTorch decodes it
    const off: any = await (
      await post("/v1/generate", {
        adapter: alias,
        input: c.input,
        max_new_tokens: golden.max_new_tokens,
        stop: ["\u0000"],
        no_repeat_ngram_size: 0,
        num_beams: 1,
      })
    ).json();
    expect(off.text).toBe(c.plain_greedy_text.trim());
    const looping = a.cases.find((x: any) => new Set(x.greedy_ids).size < x.greedy_ids.length);
    expect(looping).toBeDefined();
    const asStored: any = await (
      await post("/v1/generate", { adapter: alias, input: looping.input, max_new_tokens: golden.max_new_tokens, num_beams: 1 })
    ).json();
    const once: any = await (
      await post("/v1/generate", {
        adapter: alias,
        input: looping.input,
        max_new_tokens: golden.max_new_tokens,
        no_repeat_ngram_size: 1,
        num_beams: 1,
      })
    ).json();
    expect(asStored.text).toBe(looping.greedy_text.trim());
    expect(once.text).not.toBe(asStored.text); // the default answer repeats a token, which n = 1 bans
    for (const bad of [{ no_repeat_ngram_size: 9 }, { num_beams: 9 }, { num_beams: 0 }, { num_beams: 2, temperature: 0.7 }]) {
      const r = await post("/v1/generate", { adapter: alias, input: c.input, ...bad });
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error.code).toBe("invalid_request");
    }
    // a sampled request leaves the adapter's beams aside (they are greedy), and is answered
    const sampled = await post("/v1/generate", { adapter: alias, input: c.input, max_new_tokens: 8, temperature: 0.7, seed: 3 });
    expect(sampled.status).toBe(200);
    expect(((await sampled.json()) as any).text.length).toBeGreaterThan(0);
  });

  it("lists adapters and describes one", async () => {
    const list: any = await (await call("GET", "/v1/adapters", { key })).json();
    expect(list.adapters.map((x: any) => x.alias).sort()).toEqual(catalog.adapters.map((a) => a.alias).sort());
    const one: any = await (await call("GET", `/v1/adapters/${catalog.adapters[0].alias}`, { key })).json();
    expect(one.alias).toBe(catalog.adapters[0].alias);
    expect(one.backbone).toBe(catalog.default_backbone);
    const doc: any = await (await app.request("/openapi.json", {}, env)).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/classify",
        "/v1/generate",
        "/v1/adapters",
        "/v1/adapters/{tenant}/{name}",
        "/v1/adapters/{tenant}/{name}/versions",
        "/v1/adapters/{tenant}/{name}/rollback",
        "/v1/tenant",
        "/v1/tenant/defaults",
        "/v1/tenant/grants/{reader}",
      ]),
    );
    expect(Object.keys(doc.paths["/v1/adapters/{tenant}/{name}"])).toEqual(expect.arrayContaining(["get", "put"]));
    expect(doc.components.securitySchemes.apiKey.scheme).toBe("bearer");
    // typed adapter metadata: the readout of each default adapter, in the document too
    for (const a of catalog.adapters) {
      const info: any = await (await call("GET", `/v1/adapters/${a.alias}`, { key })).json();
      expect(info.readout === null ? "generation" : info.readout.type).toBe(a.task === "generate" ? "generation" : (a as any).readout);
    }
    expect(Object.keys(doc.components.schemas.AdapterInfo.properties)).toEqual(
      expect.arrayContaining(["readout", "labels", "training", "virtual_tokens"]),
    );
  });

  it("documents every route (tagged), both streaming shapes and one version; its request examples run on the default catalog", async () => {
    const doc: any = await (await app.request("/openapi.json", {}, env)).json();
    expect(doc.info.version).toBe(pkg.version);
    const ops = Object.entries(doc.paths).flatMap(([p, o]: [string, any]) => Object.entries(o).map(([m, op]: [string, any]) => ({ p, m, op })));
    expect(ops.map((o) => `${o.m} ${o.p}`)).toEqual(
      expect.arrayContaining(["get /healthz", "post /v1/completions", "get /v1/models", "get /v1/tenant/usage"]),
    );
    for (const { p, m, op } of ops) expect(op.tags?.length, `${m} ${p}`).toBe(1);
    for (const p of ["/v1/generate", "/v1/completions"])
      expect(Object.keys(doc.paths[p].post.responses["200"].content).sort()).toEqual(["application/json", "text/event-stream"]);
    expect(Object.keys(doc.components.schemas.Training.properties)).toEqual(expect.arrayContaining(["eval", "max_tokens", "train_examples"]));
    for (const [path, schema] of [
      ["/v1/classify", "ClassifyRequest"],
      ["/v1/generate", "GenerateRequest"],
      ["/v1/completions", "CompletionRequest"],
    ]) {
      const example = doc.components.schemas[schema].example;
      expect(example, schema).toBeDefined();
      const r = await post(path, example);
      expect(r.status, `${path} with the documented example`).toBe(200);
    }
  });

  it.each([
    ["malformed JSON", '{"adapter": ', 400, "invalid_json"],
    ["wrong types", { adapter: 5, text: "x" }, 400, "invalid_request"],
    ["empty text", { adapter: "demo/spam-prefix", text: "" }, 400, "invalid_request"],
    ["unknown field", { adapter: "demo/spam-prefix", text: "x", foo: 1 }, 400, "invalid_request"],
    ["too many items", { items: Array.from({ length: 33 }, () => ({ adapter: "demo/spam-prefix", text: "x" })) }, 413, "too_many_items"],
    ["text too long", { adapter: "demo/spam-prefix", text: "x".repeat(8001) }, 413, "text_too_long"],
    ["unknown adapter", { adapter: "demo/nope", text: "x" }, 404, "adapter_not_found"],
    ["bad adapter ref", { adapter: "../etc/passwd", text: "x" }, 400, "invalid_adapter_ref"],
  ])("refuses %s with a JSON error", async (_n, body, status, code) => {
    const r = await post("/v1/classify", body);
    expect(r.status).toBe(status);
    const j: any = await r.json();
    expect(j.error.code).toBe(code);
    expect(typeof j.error.message).toBe("string");
  });

  it("refuses max_new_tokens over the cap, an adapter of the wrong task, and one for another backbone (409)", async () => {
    const gen = byFile[golden.adapters.find((x: any) => x.task === "generate").adapter];
    let r = await post("/v1/generate", { adapter: gen, input: "cat", max_new_tokens: 65 });
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error.code).toBe("max_new_tokens_over_cap");
    r = await post("/v1/classify", { adapter: gen, text: "cat" });
    expect(((await r.json()) as any).error.code).toBe("wrong_task");
    // re-label a real artifact's header as packed for another backbone (the tensors and checksum stay valid)
    const buf = await bytes(`adapters/${catalog.adapters[0].file}`);
    const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
    header.__metadata__.backbone = "another-backbone-000000000000";
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + buf.length - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(buf.subarray(8 + n), 8 + h.length);
    await plant("acme/foreign", out);
    r = await post("/v1/classify", { adapter: "acme/foreign", text: "x" });
    expect(r.status).toBe(409);
    expect(((await r.json()) as any).error.code).toBe("backbone_mismatch");
    // and the worker keeps serving
    expect((await post("/v1/classify", { adapter: catalog.adapters[0].alias, text: "still here?" })).status).toBe(200);
  });

  it("evicts adapters from the cache by bytes, least recently used first", () => {
    const a = (n: number) => ({ memoryBytes: n }) as Adapter;
    const c = new AdapterCache(100);
    c.set("a", a(40));
    c.set("b", a(40));
    c.get("a");
    c.set("c", a(40));
    expect(c.keys()).toEqual(["a", "c"]);
    expect(c.bytes).toBe(80);
    c.set("d", a(150)); // larger than the budget: kept alone
    expect(c.keys()).toEqual(["d"]);
  });

  it("refuses a bad setting with a clear error instead of a silent default", async () => {
    for (const [name, value] of [
      ["MAX_ITEMS", "lots"],
      ["MAX_BATCH_TOKENS", "0"],
      ["R2_TIMEOUT_MS", "1.5"],
    ]) {
      const r = await call("GET", "/v1/tenant", { key }, { ...env, [name]: value });
      expect(r.status).toBe(500);
      const j: any = await r.json();
      expect(j.error.code).toBe("config_invalid");
      expect(j.error.message).toContain(`${name}=${JSON.stringify(value)}`);
    }
  });
});

describe("request log and request id", () => {
  afterEach(() => vi.restoreAllMocks());
  const lines = (spy: { mock: { calls: unknown[][] } }) =>
    spy.mock.calls
      .map((a) => String(a[0]))
      .filter((l) => l.startsWith('{"request_id"'))
      .map((l) => JSON.parse(l));

  it("writes one JSON line per request, with the id the response carries, and no input text or key", async () => {
    const spy = vi.spyOn(console, "log").mockImplementation(() => {});
    const g = golden.adapters.find((a: any) => a.task === "classify");
    const text = "zebra quartz secret-marker " + g.cases[0].text;
    const r = await post("/v1/classify", {
      items: [
        { adapter: byFile[g.adapter], text },
        { adapter: byFile[g.adapter], text: "hello" },
      ],
    });
    expect(r.status).toBe(200);
    const id = r.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    // another test's deferred line (a stream's, written when it ends) may land here: count this request's own
    const mine = lines(spy).filter((l) => l.request_id === id);
    expect(mine.length).toBe(1);
    const line = mine[0];
    expect(line).toMatchObject({
      request_id: id,
      method: "POST",
      path: "/v1/classify",
      status: 200,
      tenant: "acme",
      task: "classify",
      items: 2,
      error_code: null,
      adapters: [{ ref: byFile[g.adapter], cache: expect.stringMatching(/^(hit|miss)$/) }],
    });
    expect(line.input_tokens).toBeGreaterThan(10);
    const raw = JSON.stringify(line);
    expect(raw).not.toContain("secret-marker");
    // the whole secret (it may itself hold "_", so not key.split("_")[2], which flaked on a one-letter fragment)
    expect(raw).not.toContain(key.replace(/^se_[0-9a-f]{12}_/, ""));
  });

  it("gives errors an id and an error code too", async () => {
    const spy = vi.spyOn(console, "log").mockImplementation(() => {});
    const bad = await postJson("/v1/classify", "se_000000000000_nope", { text: "x" });
    expect(bad.status).toBe(401);
    const missing = await call("GET", "/v1/nothing-here", { key });
    const [a, b] = [bad, missing].map((r) => lines(spy).find((l) => l.request_id === r.headers.get("x-request-id")));
    expect(a).toMatchObject({ request_id: bad.headers.get("x-request-id"), status: 401, tenant: null });
    expect(typeof a.error_code).toBe("string");
    expect(b).toMatchObject({ request_id: missing.headers.get("x-request-id"), status: 404, error_code: "not_found" });
    expect(a.request_id).not.toBe(b.request_id);
  });

  it("ends a stream that fails midway with an error event in the API's error shape, and logs its code", async () => {
    const spy = vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "error").mockImplementation(() => {});
    const bb = await getBackbone(
      { bucket: env.BUCKET, retry: { attempts: 1, timeoutMs: 10_000, backoffMs: 0 }, waitUntil: () => {} },
      catalog.default_backbone,
    );
    const run = bb.session.run.bind(bb.session);
    let calls = 0;
    // the prompt's pass and two decode steps succeed, the third step fails
    vi.spyOn(bb.session, "run").mockImplementation(((...a: Parameters<typeof run>) =>
      ++calls > 3 ? Promise.reject(new Error("simulated")) : run(...a)) as typeof run);
    const a = golden.adapters.find((x: any) => x.task === "generate");
    const r = await post("/v1/generate", {
      adapter: byFile[a.adapter],
      input: "volcano",
      max_new_tokens: 12,
      stream: true,
      stop: ["\u0000"],
      num_beams: 1,
    });
    const events = [...(await r.text()).matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => [m[1], JSON.parse(m[2])]);
    expect(r.status).toBe(200);
    expect(events.filter((e) => e[0] === "token").length).toBeGreaterThan(0);
    expect(events.at(-1)).toEqual(["error", { error: { code: "internal", message: "internal error" } }]);
    expect(events.some((e) => e[0] === "done")).toBe(false);
    await new Promise((res) => setTimeout(res, 10));
    expect(lines(spy).find((l) => l.request_id === r.headers.get("x-request-id"))).toMatchObject({ status: 200, error_code: "internal" });
  });

  it("logs a streamed generation when the stream ends, with its token count", async () => {
    const spy = vi.spyOn(console, "log").mockImplementation(() => {});
    const a = golden.adapters.find((x: any) => x.task === "generate");
    const r = await post("/v1/generate", { adapter: byFile[a.adapter], input: a.cases[0].input, max_new_tokens: 6, stream: true, stop: ["\u0000"] });
    expect(r.status).toBe(200);
    const body = await r.text();
    const done = JSON.parse(body.split("event: done\ndata: ")[1].split("\n")[0]);
    await new Promise((res) => setTimeout(res, 10));
    const line = lines(spy).find((l) => l.request_id === r.headers.get("x-request-id"));
    expect(line).toMatchObject({ task: "generate", generated_tokens: done.tokens, status: 200 });
    expect(done.tokens).toBeGreaterThan(0);
  });
});

describe("per-tenant usage", () => {
  it("counts a tenant's inference for its admin, and only its own", async () => {
    const admin = await newKey("usage-co", "admin");
    const reader = await newKey("usage-co", "read");
    const g = golden.adapters.find((a: any) => a.task === "classify");
    const gen = golden.adapters.find((a: any) => a.task === "generate");
    const before: any = await (await call("GET", "/v1/tenant/usage", { key: admin })).json();
    expect(before).toMatchObject({ tenant: "usage-co", source: "isolate", usage: [] });
    expect(
      (
        await postJson("/v1/classify", reader, {
          items: [
            { adapter: byFile[g.adapter], text: "one" },
            { adapter: byFile[g.adapter], text: "two" },
          ],
        })
      ).status,
    ).toBe(200);
    const r = await postJson("/v1/generate", reader, { adapter: byFile[gen.adapter], input: "volcano", max_new_tokens: 4, stop: ["\u0000"] });
    const tokens = ((await r.json()) as any).tokens;
    expect((await postJson("/v1/classify", reader, { adapter: "demo/nope", text: "x" })).status).toBe(404); // failures do not count
    const u: any = await (await call("GET", "/v1/tenant/usage", { key: admin })).json();
    const by = Object.fromEntries(u.usage.map((x: any) => [x.task, x]));
    expect(by.classify).toMatchObject({ requests: 1, items: 2, generated_tokens: 0 });
    expect(by.classify.input_tokens).toBeGreaterThan(2);
    expect(by.generate).toMatchObject({ requests: 1, items: 1, generated_tokens: tokens });
    expect((await call("GET", "/v1/tenant/usage", { key: reader })).status).toBe(403); // admin scope only
    const other: any = await (await call("GET", "/v1/tenant/usage", { key: await newKey("usage-other", "admin") })).json();
    expect(other.usage).toEqual([]);
  });
});
