// The prompt encoder cuts a long text before tokenizing it: its ids must be those of tokenizing the whole text and
// cutting the tokens (tasks.py encode_prompts' algorithm, written out below), for every kind of text, while the
// tokenizer is handed only a bounded prefix. The tokenizer's BPE cache stays within its byte bound.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { parseAdapter } from "../../src/engine/adapter";
import type { BackboneConfig } from "../../src/engine/backbone-config";
import { encodePromptChecked, encodeStats } from "../../src/engine/prompt";
import { ByteLru, bpeModel, cacheOf, entryBytes, loadTokenizer, planOf, TOKENIZER_CACHE_BYTES } from "../../src/engine/tokenizer";

const ROOT = new URL("../../", import.meta.url).pathname;
const catalog = JSON.parse(readFileSync(ROOT + "adapters/catalog.json", "utf8"));
const BUNDLE = `${ROOT}adapters/backbones/${catalog.default_backbone}/`;
const json = JSON.parse(readFileSync(BUNDLE + "tokenizer.json", "utf8"));
const cfg: BackboneConfig = JSON.parse(readFileSync(BUNDLE + "config.json", "utf8"));
const tok = loadTokenizer(json);
const plain = new Tokenizer(json, {}); // the library as it comes, for the reference ids

/** tokenize the whole prompt, then cut the field's tokens so the tail fits (tasks.py encode_prompts) */
function wholeText(template: string, field: "text" | "input", value: string, maxTokens: number) {
  const [pre, post] = template.split(`{${field}}`);
  const enc = (s: string) => plain.encode(s, { add_special_tokens: false }).ids as number[];
  const ids = enc(pre + value + post);
  if (ids.length <= maxTokens) return { ids, truncated: false };
  const tail = post ? enc(post) : [];
  return { ids: [...enc(pre + value).slice(0, maxTokens - tail.length), ...tail], truncated: true };
}

// a seeded generator, so a failure names a case that can be rerun
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const rand = prng(7);
const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
const WORDS = "the meeting offer free prize click now lunch tomorrow report budget quarterly implementation representation ─── win".split(" ");
const english = (n: number) => {
  let s = "";
  while (s.length < n) s += pick(WORDS) + pick([" ", " ", " ", ", ", ". ", "\n", "  "]);
  return s.slice(0, n);
};
const letters = (n: number) => Array.from({ length: n }, () => pick("abcdefghijklmnopqrstuvwxyz".split(""))).join("");
const cjk = (n: number) => Array.from({ length: n }, () => String.fromCodePoint(0x4e00 + Math.floor(rand() * 0x5000))).join("");
const EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "é", "e\u0301", "\ud800", "\udc00", "▁", "\u0000", "\u001b", "\t", "\r\n", "\u00a0", "\u2028", "\ufeff"];
const mixed = (n: number) => {
  let s = "";
  while (s.length < n) s += pick([pick(EMOJI), pick(WORDS), " ", cjk(1), pick(EMOJI) + pick(EMOJI)]);
  return s;
};
const spaces = (n: number) => Array.from({ length: n }, () => pick([" ", " ", "\t", "\n", "▁", "a"])).join("");
// code points from every plane in use, lone surrogates included
const unicode = (n: number) =>
  Array.from({ length: n }, () =>
    String.fromCodePoint(Math.floor(pick([0x7f, 0x800, 0xe000, 0x10000, 0x20000, 0xe0080]) * rand()) + pick([0, 32])),
  ).join("");

const TEMPLATES: [string, "text" | "input"][] = [
  ["{text}", "text"],
  ["Message: {text}\nCategory:", "text"],
  ["{text} ", "text"],
  ["{input}:", "input"],
];

describe("prompt encoder", () => {
  const plan = planOf(tok)!;

  it("has a cut plan for the default backbone's tokenizer (its normalizer, no pre-tokenizer, byte fallback)", () => {
    expect(plan).not.toBeNull();
    expect(plan.prepend).toBe("▁");
    expect([...plan.replace]).toEqual([[" ", "▁"]]);
    expect(plan.maxTokenChars).toBe(16); // the longest vocabulary piece
    // a byte-fallback-free, pre-tokenized or NFKC tokenizer gets none (cut after tokenizing, the exact way)
    expect(planOf(new Tokenizer(json, {}))).toBeNull();
    expect(planOf(loadTokenizer({ ...json, model: { ...json.model, byte_fallback: false } }))).toBeNull();
    expect(planOf(loadTokenizer({ ...json, normalizer: { type: "NFKC" } }))).toBeNull();
    expect(
      planOf(loadTokenizer({ ...json, pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true } })),
    ).toBeNull();
  });

  it("gives the ids of tokenizing the whole text, for every kind of text and budget", async () => {
    const adapters = await Promise.all(
      catalog.adapters.map(async (a: { file: string; task: string }) => {
        const ad = await parseAdapter(new Uint8Array(readFileSync(`${ROOT}adapters/${a.file}`)), cfg);
        return [ad.template, a.task === "classify" ? "text" : "input"] as [string, "text" | "input"];
      }),
    );
    const templates = [...TEMPLATES, ...adapters];
    const texts: string[] = ["", " ", "a", "▁", "😀", "\ud83d"];
    for (const n of [300, 2100, 3000]) texts.push(english(n), letters(n), cjk(n / 2), mixed(n), spaces(n), unicode(n));
    texts.push("a".repeat(3000), "─".repeat(3000), " ".repeat(3000), "😀".repeat(1500), "ab".repeat(1500), english(8000), cjk(2000));
    // around the cut: the prefix length the plan starts from for budgets 128 and 16, give or take a few units
    for (const keep of [120, 127, 14, 15]) {
      const at = keep * plan.maxTokenChars - plan.prepend.length;
      for (const d of [-2, -1, 0, 1, 2, 3]) texts.push(english(at + d), cjk(at + d), mixed(at + d), english(at + d - 1) + "😀" + english(40));
    }
    // CJK characters count as 3 tokens each: cuts after a few dozen, alone and after English
    for (let n = 1; n < 60; n += 2) texts.push(cjk(n), english(7 * n) + cjk(n), mixed(3 * n));
    let cases = 0;
    for (const [template, field] of templates)
      for (const maxTokens of [128, 16])
        for (const text of texts) {
          const got = encodePromptChecked(tok, template, field, text, maxTokens);
          const want = wholeText(template, field, text, maxTokens);
          expect(got, `${JSON.stringify(template)} ${maxTokens}: ${JSON.stringify(text.slice(0, 60))}… (${text.length})`).toEqual(want);
          expect(got.ids.length).toBeLessThanOrEqual(maxTokens);
          cases++;
        }
    expect(cases).toBeGreaterThan(1500);
  });

  it("cuts where BPE cannot merge across, not where the floor on tokens is reached", () => {
    // "▁implementations" is one 16-unit token, exactly at the floor; each word below is cut one token later
    // with other pieces than when whole ("▁expressions" in place of "▁expression", "sl…")
    const edges = [
      "expressionslinessishedonic",
      "surroundinguropeortused",
      "characteristicenedishes",
      "administrationsionuedon",
      "multiprocessingssizeeth",
    ];
    let differs = 0;
    for (const maxTokens of [1, 2, 17, 64, 127, 128])
      for (const word of edges) {
        const text = "implementations ".repeat(maxTokens - 1) + word + " and more";
        const want = wholeText("{text}", "text", text, maxTokens);
        expect(encodePromptChecked(tok, "{text}", "text", text, maxTokens), `${maxTokens} ${word}`).toEqual(want);
        const atFloor = plain.encode(text.slice(0, maxTokens * plan.maxTokenChars - 1), { add_special_tokens: false }).ids.slice(0, maxTokens);
        if (JSON.stringify(atFloor) !== JSON.stringify(want.ids)) differs++;
      }
    expect(differs).toBe(30); // cutting at the floor alone goes wrong on every one
  });

  it("hands the tokenizer a bounded prefix of a long text, tokenized once", () => {
    // a CJK character is in no vocabulary piece: 3 byte tokens each, so 128 tokens need 43 of them
    for (const [text, bound] of [
      [english(8000), 128 * plan.maxTokenChars + 32],
      [cjk(2000), 64],
      [mixed(8000), 128 * plan.maxTokenChars + 32],
      [unicode(8000), 128 * plan.maxTokenChars + 32],
    ] as const) {
      encodePromptChecked(tok, "Message: {text}\nCategory:", "text", "warm the template", 128);
      const before = { ...encodeStats };
      const r = encodePromptChecked(tok, "Message: {text}\nCategory:", "text", text, 128);
      expect(r.truncated).toBe(true);
      expect(encodeStats.calls - before.calls).toBe(1);
      expect(encodeStats.chars - before.chars).toBeLessThanOrEqual(bound);
    }
    // a text of one repeated mergeable character has no position BPE never merges across: tokenized whole, once
    const before = { ...encodeStats };
    encodePromptChecked(tok, "{text}", "text", "a".repeat(8000), 128);
    expect(encodeStats.calls - before.calls).toBe(1);
  });

  it("keeps the template's tail within the budget, and refuses a template that leaves no room for the text", () => {
    const template = "{text}\nAnswer with one word, the category, from the list given above:";
    const tail = wholeText(template, "text", "", 1000).ids.length;
    const r = encodePromptChecked(tok, template, "text", english(2000), tail + 2);
    expect(r.truncated).toBe(true);
    expect(r.ids.length).toBe(tail + 2);
    for (const maxTokens of [tail - 3, tail - 1]) {
      let err: unknown;
      try {
        encodePromptChecked(tok, template, "text", english(2000), maxTokens);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: "template_too_long" });
    }
  });
});

describe("tokenizer cache", () => {
  it("replaces the BPE model's cache with one bounded in bytes, which the library reads and fills", () => {
    const t = loadTokenizer(json, 64 << 10);
    const cache = cacheOf(t)!;
    expect(cache).toBeInstanceOf(ByteLru);
    expect(bpeModel(t).cache).toBe(cache);
    const text = "Are we still meeting for lunch tomorrow?";
    const ids = t.encode(text).ids;
    expect(cache.cache.has("▁" + text.replaceAll(" ", "▁"))).toBe(true);
    expect(t.encode(text).ids).toEqual(ids);
    expect(cache.bytes).toBe(entryBytes("▁" + text.replaceAll(" ", "▁"), cache.cache.values().next().value!));
  });

  it("stays within its byte bound over thousands of distinct long CJK prompts, with the same ids", () => {
    const t = loadTokenizer(json);
    const cache = cacheOf(t)!;
    let most = 0;
    for (let i = 0; i < 2000; i++) {
      const text = cjk(200);
      const ids = t.encode(text).ids;
      if (i % 97 === 0) expect(ids).toEqual(plain.encode(text).ids);
      most = Math.max(most, cache.bytes);
    }
    expect(most).toBeLessThanOrEqual(TOKENIZER_CACHE_BYTES);
    expect(most).toBeGreaterThan(TOKENIZER_CACHE_BYTES * 0.9); // it fills, then evicts
    let sum = 0;
    for (const [k, v] of cache.cache) sum += entryBytes(k, v);
    expect(cache.bytes).toBe(sum);
  });

  it("fails loudly when the library's BPE model no longer has the parts the bounded cache replaces", () => {
    expect(() => bpeModel({ model: { bpe() {}, cache: new Map() } } as unknown as Tokenizer)).toThrow(/cannot be bounded/);
  });
});
