// What a request's text costs inside workerd: a long text is cut to what the token budget can use before it is
// tokenized (the tokenizer is handed a bounded prefix, once), and distinct prompts cannot grow the tokenizer's
// cache past its byte bound. Deterministic quantities only: characters handed to the tokenizer, accounted bytes.
import { env } from "cloudflare:test";
import type { Tokenizer } from "@huggingface/tokenizers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SETTINGS } from "../../src/config";
import { getBackbone } from "../../src/store/backbone";
import { entryBytes, TOKENIZER_CACHE_BYTES } from "../../src/engine/tokenizer";
import { bytes, newKey, plant, postJson, seedDefaults, split, join, type Catalog } from "./helpers";

const [MAX_ITEMS, MAX_TOKENS] = [SETTINGS.MAX_ITEMS[0], SETTINGS.MAX_TOKENS[0]];
const ADAPTER = "demo/spam-prefix";
let catalog: Catalog;
let key: string;
let tok: Tokenizer;

function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const rand = prng(11);
const WORDS = "free prize click now meeting lunch tomorrow report budget offer winner claim call".split(" ");
const english = (n: number) => {
  let s = "";
  while (s.length < n) s += WORDS[Math.floor(rand() * WORDS.length)] + " ";
  return s.slice(0, n);
};
const cjk = (n: number) => Array.from({ length: n }, () => String.fromCodePoint(0x4e00 + Math.floor(rand() * 0x5000))).join("");

/** the lengths of the strings the backbone's tokenizer is handed while fn runs */
async function handed(fn: () => Promise<void>): Promise<number[]> {
  const spy = vi.spyOn(tok, "encode");
  try {
    await fn();
    return spy.mock.calls.map((c) => (c[0] as string).length);
  } finally {
    spy.mockRestore();
  }
}

async function classify(texts: string[]) {
  const r = await postJson("/v1/classify", key, { items: texts.map((text) => ({ adapter: ADAPTER, text })) });
  expect(r.status).toBe(200);
  return ((await r.json()) as any).results as { label: string; probabilities: Record<string, number>; truncated: boolean }[];
}

beforeAll(async () => {
  catalog = await seedDefaults();
  key = await newKey("acme", "read");
  expect((await postJson("/v1/classify", key, { adapter: ADAPTER, text: "hello" })).status).toBe(200);
  tok = (await getBackbone({ bucket: env.BUCKET, retry: { attempts: 1, timeoutMs: 10_000, backoffMs: 0 } }, catalog.default_backbone)).tokenizer;
});
afterEach(() => vi.restoreAllMocks());

describe("input cost", () => {
  it("tokenizes a bounded prefix of each of 32 items of 8,000 characters, once, and answers as for its first 1,000", async () => {
    const texts = Array.from({ length: MAX_ITEMS }, () => english(SETTINGS.MAX_TEXT_CHARS[0]));
    let results: Awaited<ReturnType<typeof classify>> = [];
    const lengths = await handed(async () => {
      results = await classify(texts);
    });
    // one call per item, each at most what 128 tokens of 16-character pieces can cover (and a few to a cut)
    expect(lengths.length).toBe(MAX_ITEMS);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(MAX_TOKENS * 16 + 64);
    expect(results.every((r) => r.truncated)).toBe(true);
    const prefixes = await classify(texts.map((t) => t.slice(0, 1000)));
    for (const [i, r] of results.entries()) {
      expect(prefixes[i].truncated).toBe(true);
      expect(r.label).toBe(prefixes[i].label);
      expect(r.probabilities).toEqual(prefixes[i].probabilities);
    }
  });

  it("tokenizes a few dozen characters of each of 32 items of 2,000 CJK characters", async () => {
    const texts = Array.from({ length: MAX_ITEMS }, () => cjk(2000));
    let results: Awaited<ReturnType<typeof classify>> = [];
    const lengths = await handed(async () => {
      results = await classify(texts);
    });
    // a CJK character is in no vocabulary piece: three byte tokens, so 128 tokens need 43 of them
    expect(lengths.length).toBe(MAX_ITEMS);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(64);
    expect(results.every((r) => r.truncated)).toBe(true);
  });

  it("keeps the tokenizer's cache within its byte bound over 320 distinct 200-character CJK prompts", async () => {
    for (let r = 0; r < 10; r++) {
      const results = await classify(Array.from({ length: MAX_ITEMS }, () => cjk(200)));
      expect(results.every((x) => x.truncated)).toBe(true);
    }
    // the BPE model's word cache, measured the same way whatever holds it: key and pieces, V8's costs estimated
    const cache = (tok as unknown as { model: { cache: { cache: Map<string, string[]> } } }).model.cache.cache;
    let sum = 0;
    for (const [k, v] of cache) sum += entryBytes(k, v);
    expect(sum).toBeLessThanOrEqual(TOKENIZER_CACHE_BYTES);
  });

  it("refuses an adapter whose template leaves no room for the text in its token budget (422 template_too_long)", async () => {
    const a = catalog.adapters.find((x) => x.alias === ADAPTER)!;
    const { header, data } = split(await bytes(`adapters/${a.file}`));
    header.__metadata__.training = JSON.stringify({ ...JSON.parse(header.__metadata__.training), max_tokens: 2 });
    await plant("acme/tight", join(header, data), { task: "classify", kind: "prefix", backbone: catalog.default_backbone });
    const r = await postJson("/v1/classify", key, { adapter: "acme/tight", text: english(500) });
    expect(r.status).toBe(422);
    expect(((await r.json()) as any).error.code).toBe("template_too_long");
  });
});
