// The backbone's tokenizer, made once per isolate: @huggingface/tokenizers' Tokenizer with its BPE word cache
// replaced by one bounded in bytes (the backbone has no pre-tokenizer, so a whole prompt is one BPE "word" and the
// library's own cache, 10,000 words of up to 256 characters, can hold ~50 MB of distinct prompts), and the facts
// the prompt encoder needs to cut a long text before tokenizing it (CutPlan).
import { Tokenizer } from "@huggingface/tokenizers";

/**
 * The BPE cache's bound. The isolate runs within ~10 MB of Workers' 128 MB at its worst (BENCHMARKS.md, memory);
 * the cache only saves work on a repeated prompt under 256 characters, so 1 MiB (~180 distinct 200-character CJK
 * prompts, ~2,000 short English ones) keeps that saving for a hot set without taking the headroom.
 */
export const TOKENIZER_CACHE_BYTES = 1 << 20;

// V8's cost of an entry, estimated high: strings as two bytes a character plus a header, an array slot per piece
const ENTRY_BYTES = 96;
const STRING_BYTES = 16;
const SLOT_BYTES = 8;
export const entryBytes = (key: string, pieces: string[]) =>
  ENTRY_BYTES + STRING_BYTES + 2 * key.length + pieces.reduce((a, p) => a + SLOT_BYTES + STRING_BYTES + 2 * p.length, 0);

/** A least-recently-used map of BPE words to their pieces, evicting by accounted bytes (the library's LRU shape). */
export class ByteLru {
  readonly cache = new Map<string, string[]>();
  bytes = 0;
  constructor(readonly capBytes: number) {}
  get(key: string): string[] | undefined {
    const v = this.cache.get(key);
    if (v === undefined) return undefined;
    this.cache.delete(key);
    this.cache.set(key, v);
    return v;
  }
  put(key: string, value: string[]) {
    const old = this.cache.get(key);
    if (old !== undefined) {
      this.bytes -= entryBytes(key, old);
      this.cache.delete(key);
    }
    const n = entryBytes(key, value);
    if (n > this.capBytes) return;
    this.cache.set(key, value);
    this.bytes += n;
    for (const [k, v] of this.cache) {
      if (this.bytes <= this.capBytes) break;
      this.cache.delete(k);
      this.bytes -= entryBytes(k, v);
    }
  }
  clear() {
    this.cache.clear();
    this.bytes = 0;
  }
}

/**
 * What lets a text be cut before it is tokenized with the same ids as cutting after. The normalizer maps each UTF-16
 * unit to one unit (plus a fixed prefix), so a prefix of the text normalizes to a prefix of the normalized text.
 * Tokens have a floor: a vocabulary piece covers at most maxTokenChars units, and a character that occurs in no
 * piece (vocabChars) always becomes its UTF-8 bytes, one token each. And BPE only joins a piece ending in x with one
 * starting in y where some merge (a, b) has a ending in x and b starting in y (crossMerges, keyed by x + y): where
 * no such merge matches the text around a position, BPE never merges across it, so the tokens before it are those
 * of the text cut there.
 */
export interface CutPlan {
  prepend: string;
  replace: Map<string, string>;
  maxTokenChars: number;
  vocabChars: Set<string>;
  crossMerges: Map<string, [string, string][]>;
}

interface TokenizerJson {
  normalizer: unknown;
  pre_tokenizer: unknown;
  added_tokens?: unknown[];
  model: {
    type?: string;
    vocab: Record<string, number>;
    merges: (string | [string, string])[];
    byte_fallback?: boolean;
    dropout?: number | null;
    ignore_merges?: boolean;
    end_of_word_suffix?: string | null;
    continuing_subword_prefix?: string | null;
    continuing_subword_suffix?: string | null;
  };
}

const lastPoint = (s: string) => Array.from(s).at(-1) ?? "";
const firstPoint = (s: string) => (s.length ? String.fromCodePoint(s.codePointAt(0)!) : "");

/** the normalizer as a fixed prefix and unit-for-unit replacements, or null where it is anything else */
function unitNormalizer(n: unknown, into: { prepend: string; replace: Map<string, string> }): boolean {
  if (n === null || n === undefined) return true;
  const c = n as { type?: string; normalizers?: unknown[]; prepend?: string; pattern?: { String?: string }; content?: string };
  if (c.type === "Sequence") return (c.normalizers ?? []).every((x) => unitNormalizer(x, into));
  if (c.type === "Prepend" && typeof c.prepend === "string") {
    into.prepend = c.prepend + into.prepend;
    return true;
  }
  const from = c.pattern?.String;
  if (c.type === "Replace" && typeof from === "string" && typeof c.content === "string" && from.length === 1 && c.content.length === 1) {
    if (into.prepend.includes(from)) return false;
    for (const [k, v] of into.replace) if (v === from) into.replace.set(k, c.content);
    if (!into.replace.has(from)) into.replace.set(from, c.content);
    return true;
  }
  return false;
}

/** the cut plan for a tokenizer.json, or null where its parts are not ones the cut is exact for */
export function cutPlan(json: TokenizerJson): CutPlan | null {
  const m = json.model;
  if (m.type !== "BPE" || json.pre_tokenizer || (json.added_tokens ?? []).length) return null;
  if (m.dropout || m.ignore_merges || m.end_of_word_suffix || m.continuing_subword_prefix || m.continuing_subword_suffix) return null;
  // every character has its bytes as tokens, so no unknown token (fused across runs) ever covers many characters
  const hex = (i: number) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`;
  if (!m.byte_fallback || !Array.from({ length: 256 }, (_, i) => hex(i)).every((t) => t in m.vocab)) return null;
  const norm = { prepend: "", replace: new Map<string, string>() };
  if (!unitNormalizer(json.normalizer, norm)) return null;
  let maxTokenChars = 1;
  const vocabChars = new Set<string>();
  for (const t of Object.keys(m.vocab)) {
    maxTokenChars = Math.max(maxTokenChars, t.length);
    for (const ch of t) vocabChars.add(ch);
  }
  const crossMerges = new Map<string, [string, string][]>();
  for (const x of m.merges) {
    const [a, b] = typeof x === "string" ? (x.split(" ", 2) as [string, string]) : x;
    maxTokenChars = Math.max(maxTokenChars, a.length + b.length);
    for (const ch of a + b) vocabChars.add(ch);
    const key = lastPoint(a) + firstPoint(b);
    const list = crossMerges.get(key);
    if (list) list.push([a, b]);
    else crossMerges.set(key, [[a, b]]);
  }
  return { ...norm, maxTokenChars, vocabChars, crossMerges };
}

const plans = new WeakMap<Tokenizer, CutPlan | null>();

/** the plan loadTokenizer found for this tokenizer (null: cutting before tokenizing is not exact for it) */
export const planOf = (tok: Tokenizer): CutPlan | null => plans.get(tok) ?? null;

/** The BPE model inside the library's Tokenizer, as far as the bounded cache relies on it. */
interface BpeModel {
  cache: { get(k: string): unknown; put(k: string, v: string[]): void };
  max_length_to_cache: number;
  bpe(word: string): string[];
}

export function bpeModel(tok: Tokenizer): BpeModel {
  const model = (tok as unknown as { model?: Partial<BpeModel> }).model;
  if (!model || typeof model.bpe !== "function" || typeof model.max_length_to_cache !== "number" || typeof model.cache?.put !== "function")
    throw new Error("@huggingface/tokenizers' BPE model no longer has bpe(), cache and max_length_to_cache: the tokenizer cache cannot be bounded");
  return model as BpeModel;
}

/** The tokenizer for a parsed tokenizer.json, its BPE cache bounded to capBytes, its cut plan recorded. */
export function loadTokenizer(json: unknown, capBytes = TOKENIZER_CACHE_BYTES): Tokenizer {
  const tok = new Tokenizer(json as object, {});
  if ((json as TokenizerJson).model?.type === "BPE") bpeModel(tok).cache = new ByteLru(capBytes);
  plans.set(tok, cutPlan(json as TokenizerJson));
  return tok;
}

/** the bounded cache loadTokenizer installed (undefined for a tokenizer made otherwise) */
export function cacheOf(tok: Tokenizer): ByteLru | undefined {
  const c = (tok as unknown as { model?: { cache?: unknown } }).model?.cache;
  return c instanceof ByteLru ? c : undefined;
}
