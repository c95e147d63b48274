// Memory inside the isolate (Workers allow 128 MB, WebAssembly memory included): the worst requests the limits
// allow, with 0, 10 and 100 adapters cached, keep ONNX Runtime's wasm memory (which never shrinks, so its size is
// the peak) within 80 MB; the adapter cache stays within its byte bound; a batch run as several passes answers as
// its items do alone. Figures are printed for BENCHMARKS.md.
import { beforeAll, describe, expect, it } from "vitest";
import { SETTINGS } from "../../src/config";
import { bytes, call, newKey, plant, postJson, seedDefaults, type Catalog } from "./helpers";

const MB = 1 << 20;
const WASM_BUDGET = 80 * MB;
const [MAX_ITEMS, MAX_TOKENS, MAX_NEW] = [SETTINGS.MAX_ITEMS[0], SETTINGS.MAX_TOKENS[0], SETTINGS.MAX_NEW_TOKENS[0]];
let catalog: Catalog;
let key: string;
const figures: Record<string, number> = {};
const health = async () => (await (await call("GET", "/healthz")).json<any>()).isolate;
// long enough to be truncated at MAX_TOKENS, different per item (no shared work)
const longText = (i: number) => Array.from({ length: 120 }, (_, j) => `word${(i * 31 + j * 7) % 997} spam offer meeting`).join(" ");

async function worstClassify(adapters: string[]) {
  const items = Array.from({ length: MAX_ITEMS }, (_, i) => ({ adapter: adapters[i % adapters.length], text: longText(i) }));
  const r = await postJson("/v1/classify", key, { items });
  expect(r.status).toBe(200);
  const j: any = await r.json();
  expect(j.results.every((x: any) => x.truncated)).toBe(true);
  return { items, results: j.results };
}
async function worstGenerate(adapter: string) {
  // sampling, no stop strings: runs up to MAX_NEW_TOKENS unless </s> comes first
  const r = await postJson("/v1/generate", key, { adapter, input: longText(99), max_new_tokens: MAX_NEW, temperature: 1, seed: 3, stop: ["\u0000"] });
  expect(r.status).toBe(200);
  expect(((await r.json()) as any).truncated).toBe(true);
}

beforeAll(async () => {
  catalog = await seedDefaults();
  key = await newKey("acme", "read");
});

describe("isolate memory", () => {
  it("keeps wasm memory within 80 MB for the worst requests, with 0, 10 and 100 adapters cached", async () => {
    const classifiers = catalog.adapters.filter((a) => a.task === "classify").map((a) => a.alias);
    const generator = catalog.adapters.find((a) => a.task === "generate")!.alias;
    // a fresh isolate: ORT initialised (or initialising) since the isolate started, no backbone yet
    figures["idle, no request yet"] = (await health()).wasm_memory_bytes;

    const small = await postJson("/v1/classify", key, { adapter: classifiers[0], text: "Are we still meeting for lunch tomorrow?" });
    expect(small.status).toBe(200);
    figures["after load + one short classify"] = (await health()).wasm_memory_bytes;

    const { items, results } = await worstClassify(classifiers);
    figures[`after ${MAX_ITEMS} x ${MAX_TOKENS}-token classify, 0 extra adapters`] = (await health()).wasm_memory_bytes;
    // several passes, each item as alone
    for (const i of [0, 1, 2, 17, MAX_ITEMS - 1]) {
      const one: any = await (await postJson("/v1/classify", key, items[i])).json();
      expect(results[i].label).toBe(one.label);
      for (const l of Object.keys(one.probabilities)) expect(Math.abs(results[i].probabilities[l] - one.probabilities[l])).toBeLessThanOrEqual(1e-4);
    }
    await worstGenerate(generator);
    figures[`after a ${MAX_NEW}-token generation from ${MAX_TOKENS} tokens`] = (await health()).wasm_memory_bytes;

    // 100 more adapters (the spam prefix under 100 names: each its own object and cache entry)
    const buf = await bytes(`adapters/${catalog.adapters.find((a) => a.alias === classifiers[0])!.file}`);
    const extra = Array.from({ length: 100 }, (_, i) => `acme/m${String(i).padStart(3, "0")}`);
    for (const a of extra) await plant(a, buf, { task: "classify", kind: "prefix", backbone: catalog.default_backbone });
    for (const [n, from] of [
      [10, 0],
      [100, 10],
    ] as const) {
      for (const a of extra.slice(from, n)) expect((await postJson("/v1/classify", key, { adapter: a, text: "hello" })).status).toBe(200);
      const h0 = await health();
      // all n cached, or as many as fit: the cache at its byte bound (head adapters with a bag take ~115 KB each)
      expect(h0.adapters_cached >= n || h0.adapter_cache_bytes > 0.9 * SETTINGS.ADAPTER_CACHE_BYTES[0], `${h0.adapters_cached} cached`).toBe(true);
      await worstClassify([...extra.slice(0, n), ...classifiers]);
      await worstGenerate(generator);
      const h = await health();
      figures[`worst classify + generation, ${n} extra adapters cached`] = h.wasm_memory_bytes;
      figures[`adapter cache, ${h.adapters_cached} adapters`] = h.adapter_cache_bytes;
      expect(h.adapter_cache_bytes).toBeLessThanOrEqual(SETTINGS.ADAPTER_CACHE_BYTES[0]);
    }
    console.log(
      "isolate memory (MB):\n" +
        Object.entries(figures)
          .map(([k, v]) => `  ${k}: ${(v / MB).toFixed(1)}`)
          .join("\n"),
    );
    for (const [k, v] of Object.entries(figures)) expect(v, k).toBeLessThanOrEqual(WASM_BUDGET);
  });
});
