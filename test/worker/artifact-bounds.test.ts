// Publish-time bounds on what an adapter artifact may hold (src/engine/adapter.ts ARTIFACT_BOUNDS, and the prompt
// limits in src/store/publish.ts fitsServing): each artifact over a bound is a 422 adapter_invalid naming it, the
// same artifact planted in the bucket is refused at load (502 adapter_corrupt), and the worst accepted adapters
// serve the worst request within the stated budget.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ARTIFACT_BOUNDS as B, parseAdapter } from "../../src/engine/adapter";
import type { BackboneConfig } from "../../src/engine/backbone-config";
import { SETTINGS } from "../../src/config";
import { call, hex, join, newKey, plant, postJson, putAdapter, seedDefaults, type Catalog } from "./helpers";

type Tensor = { dtype: string; shape: number[]; data: Uint8Array };
let catalog: Catalog;
let cfg: BackboneConfig;
let key: string;

/** an artifact as adapter.py packs one: tensors in name order, checksum = sha256 over their bytes in that order */
async function pack(tensors: Record<string, Tensor>, meta: Record<string, string>): Promise<Uint8Array> {
  const header: Record<string, unknown> = {};
  const names = Object.keys(tensors).sort();
  let off = 0;
  for (const n of names) {
    header[n] = { dtype: tensors[n].dtype, shape: tensors[n].shape, data_offsets: [off, off + tensors[n].data.length] };
    off += tensors[n].data.length;
  }
  const data = new Uint8Array(off);
  for (const n of names) data.set(tensors[n].data, (header[n] as { data_offsets: number[] }).data_offsets[0]);
  header.__metadata__ = { ...meta, checksum: await hex(data) };
  return join(header, data);
}

const SIZE: Record<string, number> = { F32: 4, F16: 2, I8: 1, I16: 2, I32: 4 };
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** zeros, or an F32 tensor of `fill` (scales must be > 0) */
const tensor = (dtype: string, shape: number[], fill = 0): Tensor => ({
  dtype,
  shape,
  data: fill ? new Uint8Array(new Float32Array(count(shape)).fill(fill).buffer) : new Uint8Array(count(shape) * SIZE[dtype]),
});
const kvShape = (P: number) => [cfg.num_layers, 2, cfg.num_kv_heads, P, cfg.head_dim];

interface Spec {
  P?: number;
  dtype?: "int8" | "float16" | "float32";
  task?: "classify" | "generate";
  template?: string;
  labels?: unknown;
  head?: { n: number; K: number; weight?: string; bagIds?: number[] };
  meta?: Record<string, string>;
  tensors?: Record<string, Tensor | undefined>;
}
/** a verbalizer classifier over the default backbone (int8, P 16), or what the spec changes */
async function artifact(s: Spec = {}): Promise<Uint8Array> {
  const P = s.P ?? 16,
    dtype = s.dtype ?? "int8",
    task = s.task ?? "classify";
  const kvDtype = { int8: "I8", float16: "F16", float32: "F32" }[dtype];
  const tensors: Record<string, Tensor | undefined> = { kv_prefix: tensor(kvDtype, kvShape(P)) };
  if (dtype === "int8") tensors.kv_prefix_scale = tensor("F32", [cfg.num_layers, 2, cfg.num_kv_heads], 1);
  let labels = s.labels ?? [
    { name: "ham", words: ["ham"], token_ids: [[5716]] },
    { name: "spam", words: ["spam"], token_ids: [[7641]] },
  ];
  let readout: unknown = { type: "verbalizer" };
  if (s.head) {
    const { n, K } = s.head;
    labels = s.labels ?? Array.from({ length: n }, (_, i) => ({ name: `l${i}`, words: [], token_ids: [] }));
    readout = { type: "head", pooling: "mean", bag_tokens: K };
    tensors.head_weight = tensor(s.head.weight ?? "F32", [n, cfg.hidden_size]);
    tensors.head_bias = tensor("F32", [n]);
    if (K) {
      const ids = Int32Array.from(s.head.bagIds ?? Array.from({ length: K }, (_, k) => k));
      tensors.bag_ids = { dtype: "I32", shape: [K], data: new Uint8Array(ids.buffer) }; // little-endian, as safetensors
      tensors.bag_weight = tensor("F32", [n, K]);
    }
  }
  if (task === "generate") labels = s.labels ?? [];
  Object.assign(tensors, s.tensors);
  const kept = Object.fromEntries(Object.entries(tensors).filter(([, t]) => t)) as Record<string, Tensor>;
  return pack(kept, {
    format: "softedge-adapter",
    format_version: "1",
    kind: "prefix",
    task,
    backbone: cfg.id,
    num_virtual_tokens: String(P),
    dtype,
    template: s.template ?? (task === "classify" ? "{text}\nCategory:" : "{input}\nMeaning:"),
    labels: JSON.stringify(labels),
    generation: "{}",
    training: JSON.stringify({ max_tokens: 128 }),
    readout: JSON.stringify(readout),
    ...s.meta,
  });
}

/** refused at publish (422 naming the bound, nothing written) and, planted in the bucket anyway, at load (502) */
async function refused(alias: string, buf: Uint8Array, reason: RegExp, e: object = env) {
  const r = await putAdapter(`acme/${alias}`, key, buf, e);
  const j: any = await r.json();
  expect([r.status, j.error?.code], JSON.stringify(j)).toEqual([422, "adapter_invalid"]);
  expect(j.error.message).toMatch(reason);
  expect((await env.BUCKET.list({ prefix: `adapters/acme/${alias}/` })).objects.length).toBe(0);
}
async function plantedRefused(alias: string, buf: Uint8Array, task = "classify") {
  await plant(`acme/${alias}`, buf, { task, kind: "prefix", backbone: cfg.id });
  const r =
    task === "classify"
      ? await postJson("/v1/classify", key, { adapter: `acme/${alias}`, text: "hello" })
      : await postJson("/v1/generate", key, { adapter: `acme/${alias}`, input: "cat", max_new_tokens: 2 });
  expect([r.status, ((await r.json()) as any).error?.code]).toEqual([502, "adapter_corrupt"]);
}
const accepted = async (alias: string, buf: Uint8Array, e: object = env) => {
  const r = await putAdapter(`acme/${alias}`, key, buf, e);
  expect(r.status, JSON.stringify(await r.clone().json())).toBe(201);
};
const longText = (i: number) => Array.from({ length: 150 }, (_, j) => `word${(i * 31 + j * 7) % 997} offer`).join(" ");

beforeAll(async () => {
  catalog = await seedDefaults();
  cfg = JSON.parse(new TextDecoder().decode(await (await env.BUCKET.get(`backbones/${catalog.default_backbone}/config.json`))!.arrayBuffer()));
  key = await newKey("acme", "publish");
});

describe("virtual tokens and the memory of a parsed adapter", () => {
  it(`refuses P over ${B.virtualTokens} (the file size alone allowed about 1000 at int8); P ${B.virtualTokens} publishes`, async () => {
    const over = await artifact({ P: B.virtualTokens + 1 });
    expect(over.byteLength).toBeLessThan(SETTINGS.MAX_ADAPTER_BYTES[0]);
    await refused("p-over", over, /num_virtual_tokens "65" must be a whole number from 0 to 64/);
    await plantedRefused("p-over-planted", over);
    await accepted("p-max", await artifact({ P: B.virtualTokens, dtype: "float32" }));
  });

  it("refuses a head whose parsed size is over the per-adapter bound, before decoding it", async () => {
    // P 64 in fp32 is 256 KiB; 64 labels x 256 hidden in fp32 is 64 KiB more, so the whole is over 320 KiB
    await refused("mem-over", await artifact({ P: B.virtualTokens, dtype: "float32", head: { n: 64, K: 0 } }), /over the 327680/);
    await refused("bag-over", await artifact({ head: { n: 2, K: 8000 }, P: 64, dtype: "float32" }), /over the 327680 one adapter may/);
  });

  it("serves the worst request: MAX_ITEMS items, each on a different worst-case adapter, within the stated bound", async () => {
    const items = SETTINGS.MAX_ITEMS[0];
    // P 64 in fp32 (the largest prefix) and the most verbalizer work: 16 labels of one two-token word (32 tokens)
    const labels = Array.from({ length: B.labelTokens / 2 }, (_, i) => ({ name: `l${i}`, words: [`w${i}`], token_ids: [[100 + i, 200 + i]] }));
    // the largest the bounds allow: one virtual token or one label token more is refused
    await refused("worst-p", await artifact({ P: B.virtualTokens + 1, dtype: "float32", labels }), /num_virtual_tokens/);
    const more = [...labels, { name: "one-more", words: ["w"], token_ids: [[7]] }];
    await refused("worst-labels", await artifact({ P: B.virtualTokens, dtype: "float32", labels: more }), /33 label tokens in all, over 32/);
    let held = 0;
    for (let i = 0; i < items; i++) {
      const buf = await artifact({ P: B.virtualTokens, dtype: "float32", labels, meta: { training: JSON.stringify({ max_tokens: 128, n: i }) } });
      const a = await parseAdapter(buf, cfg);
      expect(a.memoryBytes).toBeLessThanOrEqual(B.memoryBytes);
      held += a.memoryBytes;
      await accepted(`worst-${i}`, buf);
    }
    // all of them at once are no more than the adapter cache's default bound, which bench:memory measures full
    expect(held).toBeLessThanOrEqual(SETTINGS.ADAPTER_CACHE_BYTES[0]);
    const r = await postJson("/v1/classify", key, {
      items: Array.from({ length: items }, (_, i) => ({ adapter: `acme/worst-${i}`, text: longText(i) })),
    });
    const j: any = await r.json();
    expect(r.status, JSON.stringify(j)).toBe(200);
    expect(j.results).toHaveLength(items);
    expect(j.results.every((x: any) => x.truncated && Object.keys(x.probabilities).length === labels.length)).toBe(true);
    const h = (await (await call("GET", "/healthz")).json<any>()).isolate;
    expect(h.adapter_cache_bytes).toBeLessThanOrEqual(SETTINGS.ADAPTER_CACHE_BYTES[0]);
    expect(h.wasm_memory_bytes).toBeLessThanOrEqual(80 << 20); // memory.test.ts's wasm budget
    // the same request on the default verbalizer (P 16, two one-token labels), for the report's comparison
    const base = await postJson("/v1/classify", key, {
      items: Array.from({ length: items }, (_, i) => ({ adapter: "demo/spam-verbalizer", text: longText(i) })),
    });
    expect(base.status).toBe(200);
    console.log(
      `worst adapters: ${items} x ${held / items} bytes parsed; wasm ${(h.wasm_memory_bytes / 2 ** 20).toFixed(1)} MiB; ` +
        `server-timing worst: ${r.headers.get("server-timing")}; default verbalizer: ${base.headers.get("server-timing")}`,
    );
  });
});

describe("the template against the prompt budget", () => {
  it("refuses a tail that alone takes the whole budget (it would escape MAX_TOKENS); one token less publishes and stays within it", async () => {
    // "x" x n is n tokens in the default tokenizer
    await refused("tail-over", await artifact({ task: "generate", template: `{input}${"x".repeat(128)}` }), /template takes 128 tokens of the 128/);
    await plantedRefused("tail-planted", await artifact({ task: "generate", template: `{input}${"x".repeat(B.templateChars + 1)}` }), "generate");
    const fits = await artifact({ task: "generate", template: `{input}${"x".repeat(127)}` });
    await accepted("tail-max", fits);
    const r = await postJson("/v1/generate", key, { adapter: "acme/tail-max", input: longText(1), max_new_tokens: 1 });
    const j: any = await r.json();
    expect(r.status).toBe(200);
    expect(j.truncated).toBe(true);
    expect(j.usage.prompt_tokens).toBeLessThanOrEqual(SETTINGS.MAX_TOKENS[0]);
  });

  it("counts against the adapter's own budget (training.max_tokens) and refuses a template without its field", async () => {
    const trained16 = { training: JSON.stringify({ max_tokens: 16 }) };
    await refused("tail-trained", await artifact({ template: `{text}${"x".repeat(20)}`, meta: trained16 }), /template takes 20 tokens of the 16/);
    await refused("no-field", await artifact({ template: "Category:" }), /holds \{text\} exactly once/);
    await refused(
      "bad-budget",
      await artifact({ meta: { training: JSON.stringify({ max_tokens: 0.5 }) } }),
      /training.max_tokens must be a whole number/,
    );
  });
});

describe("positions", () => {
  it("refuses a prefix whose prompt and generation would run past the backbone's max_positions", async () => {
    // MAX_TOKENS 1000: 16 virtual + 1000 prompt + 64 new = 1080 positions of 1024
    const wide = { ...env, MAX_TOKENS: "1000" };
    const gen = await artifact({ task: "generate", meta: { training: "{}" } });
    await refused("pos-gen", gen, /16 virtual tokens \+ 1000 prompt tokens \+ 64 after them take 1080 positions, over the backbone's 1024/, wide);
    // the same adapter fits under the default limits; a classifier needs no room for new tokens: 16 + 1000 fits
    await accepted("pos-gen-ok", gen);
    await accepted("pos-cls", await artifact({ meta: { training: "{}" } }), wide);
    await refused("pos-cls-over", await artifact({ P: 64, meta: { training: "{}" } }), /take 1064 positions/, { ...env, MAX_TOKENS: "1000" });
  });
});

describe("token ids against the vocabulary", () => {
  it.each([
    ["past the vocabulary", [[8000]]],
    ["negative", [[-1]]],
    ["not whole", [[1.5]]],
  ])("refuses a verbalizer label token id %s", async (what, ids) => {
    const buf = await artifact({
      labels: [
        { name: "ham", words: ["ham"], token_ids: [[5716]] },
        { name: "spam", words: ["spam"], token_ids: ids },
      ],
    });
    await refused(`label-ids-${what.replace(/ /g, "-")}`, buf, /token ids must be whole numbers from 0 to 7999/);
  });

  it("refuses head bag_ids outside the vocabulary", async () => {
    const buf = await artifact({ head: { n: 2, K: 3, bagIds: [5, 6, 8000] } });
    await refused("bag-ids", buf, /bag_ids must lie in the vocabulary \(0 to 7999\)/);
    await plantedRefused("bag-ids-planted", buf);
    await accepted("bag-ids-ok", await artifact({ head: { n: 2, K: 3, bagIds: [5, 6, 7999] } }));
  });
});

describe("dtypes the readers do not take", () => {
  it("answers 422 for an I16 kv_prefix and an I32 head_weight (500 internal before)", async () => {
    await refused("i16-kv", await artifact({ dtype: "float16", tensors: { kv_prefix: tensor("I16", kvShape(16)) } }), /kv_prefix is I16/);
    await refused("i32-head", await artifact({ head: { n: 2, K: 0, weight: "I32" } }), /head_weight is I32/);
    await plantedRefused("i32-head-planted", await artifact({ head: { n: 2, K: 0, weight: "I32" } }));
  });
});

describe("other fields the worker trusted", () => {
  const words = (n: number, len = 1) => Array.from({ length: n }, (_, i) => Array.from({ length: len }, (_, k) => 10 + i + k));
  const cases: [string, () => Promise<Uint8Array>, RegExp][] = [
    [
      "65 labels",
      () => artifact({ labels: Array.from({ length: 65 }, (_, i) => ({ name: `l${i}`, words: ["w"], token_ids: [[i]] })) }),
      /65 labels, over 64/,
    ],
    [
      "a label name of 65 characters",
      () =>
        artifact({
          labels: [
            { name: "x".repeat(65), words: ["a"], token_ids: [[1]] },
            { name: "b", words: ["b"], token_ids: [[2]] },
          ],
        }),
      /a name must be 1 to 64/,
    ],
    [
      "two labels of one name",
      () =>
        artifact({
          labels: [
            { name: "a", words: ["a"], token_ids: [[1]] },
            { name: "a", words: ["b"], token_ids: [[2]] },
          ],
        }),
      /"a" twice/,
    ],
    [
      "a label of 9 words",
      () =>
        artifact({
          labels: [
            { name: "a", words: [], token_ids: words(9) },
            { name: "b", words: ["b"], token_ids: [[2]] },
          ],
        }),
      /more than 8 words/,
    ],
    [
      "a word of 9 tokens",
      () =>
        artifact({
          labels: [
            { name: "a", words: ["a"], token_ids: words(1, 9) },
            { name: "b", words: ["b"], token_ids: [[2]] },
          ],
        }),
      /at most 8/,
    ],
    [
      "33 label tokens in all",
      () =>
        artifact({
          labels: [
            { name: "a", words: [], token_ids: words(4, 8) },
            { name: "b", words: ["b"], token_ids: [[2]] },
          ],
        }),
      /33 label tokens in all, over 32/,
    ],
    [
      "token ids on a head's labels (a multi-token one took the verbalizer's path and failed at serve)",
      () =>
        artifact({
          head: { n: 2, K: 0 },
          labels: [
            { name: "a", words: ["a"], token_ids: [[1, 2]] },
            { name: "b", words: [], token_ids: [] },
          ],
        }),
      /a head adapter's labels carry no words or token_ids/,
    ],
    [
      "9 stop strings",
      () => artifact({ task: "generate", meta: { generation: JSON.stringify({ stop: Array(9).fill("\n") }) } }),
      /generation.stop must be at most 8 strings of 1 to 64/,
    ],
    [
      "a stop string of 65 characters",
      () => artifact({ task: "generate", meta: { generation: JSON.stringify({ stop: ["x".repeat(65)] }) } }),
      /generation.stop/,
    ],
    [
      "max_new_tokens not a whole number",
      () => artifact({ task: "generate", meta: { generation: JSON.stringify({ max_new_tokens: "many" }) } }),
      /max_new_tokens/,
    ],
    [
      "training metadata of 16 KiB and one",
      () => artifact({ meta: { training: JSON.stringify({ note: "x".repeat(B.trainingChars) }) } }),
      /training longer than 16384/,
    ],
    ["a template of 4097 characters", () => artifact({ template: `{text}${"x".repeat(B.templateChars - 5)}` }), /template longer than 4096/],
    ["readout null (500 internal before)", () => artifact({ meta: { readout: "null" } }), /readout is not a JSON object/],
    ["a tensor no readout reads", () => artifact({ tensors: { junk: tensor("F32", [1000]) } }), /unexpected tensor "junk"/],
    ["head tensors in a verbalizer", () => artifact({ tensors: { head_bias: tensor("F32", [2]) } }), /head_bias is not read/],
    [
      "kv_prefix_scale of the wrong shape",
      () => artifact({ tensors: { kv_prefix_scale: tensor("F32", [4, 2, 8], 1) } }),
      /kv_prefix_scale must be \[4,2,4\] F32/,
    ],
    [
      "prompt_embeddings that do not fit P",
      () => artifact({ tensors: { prompt_embeddings: tensor("F16", [17, 256]) } }),
      /prompt_embeddings must be \[16, 256\]/,
    ],
  ];
  it.each(cases)("refuses %s", async (name, make, reason) => {
    await refused(`other-${cases.findIndex((c) => c[0] === name)}`, await make(), reason);
  });

  it("still takes every adapter of the default catalog", async () => {
    for (const a of catalog.adapters) {
      const r = await putAdapter(
        `acme/${a.alias.split("/")[1]}`,
        key,
        new Uint8Array(await (await env.FIXTURES.fetch(`http://fixtures/adapters/${a.file}`)).arrayBuffer()),
      );
      expect(r.status, a.alias).toBe(201);
    }
  });
});
