// Fill an adapter's template and tokenize, as scripts/softedge/tuning/tasks.py encode_prompts does: an over-long field
// is cut from its end so the template's tail (the cue right before the answer) always survives. The ids are those
// of tokenizing the whole text and cutting the tokens; a long text is cut before it is tokenized (CutPlan in
// ./tokenizer), so its cost follows the token budget, not the text's length.
import type { Tokenizer } from "@huggingface/tokenizers";
import { DomainError } from "../errors";
import { type CutPlan, planOf } from "./tokenizer";

/** what the encoder handed the tokenizer: calls and characters (read by tests; cheap to keep) */
export const encodeStats = { calls: 0, chars: 0 };

interface TemplateParts {
  pre: string;
  post: string;
  /** the tail's ids, as tasks.py encodes it on its own */
  tail: number[];
  /** the prompt's length with an empty field */
  empty: number;
}

// templates per tokenizer, a few dozen at most: adapters in use share a handful of templates
const TEMPLATES_KEPT = 64;
const templates = new WeakMap<Tokenizer, Map<string, TemplateParts>>();

function encode(tok: Tokenizer, s: string): number[] {
  encodeStats.calls++;
  encodeStats.chars += s.length;
  return tok.encode(s, { add_special_tokens: false }).ids as number[];
}

/** a template split at its field, with the tokens of its tail and of the prompt with an empty field (kept per
 *  tokenizer: the encoder reads them for every item, a publish checks them against the budget) */
export function templateParts(tok: Tokenizer, template: string, field: "text" | "input"): TemplateParts {
  let kept = templates.get(tok);
  if (!kept) {
    kept = new Map();
    templates.set(tok, kept);
  }
  const key = `${field}\u0000${template}`;
  let t = kept.get(key);
  if (!t) {
    const [pre, post = ""] = template.split(`{${field}}`);
    t = { pre, post, tail: post ? encode(tok, post) : [], empty: encode(tok, pre + post).length };
    if (kept.size >= TEMPLATES_KEPT) kept.delete(kept.keys().next().value!);
    kept.set(key, t);
  }
  return t;
}

const isHigh = (c: number) => c >= 0xd800 && c < 0xdc00;
const isLow = (c: number) => c >= 0xdc00 && c < 0xe000;

/** whether some merge (a, b) matches the normalized text with a ending at q and b starting there */
function mergeAcross(plan: CutPlan, norm: string, q: number): boolean {
  const x = isLow(norm.charCodeAt(q - 1)) && isHigh(norm.charCodeAt(q - 2)) ? norm.slice(q - 2, q) : norm[q - 1];
  const list = plan.crossMerges.get(x + String.fromCodePoint(norm.codePointAt(q)!));
  return !!list?.some(([a, b]) => q >= a.length && norm.startsWith(a, q - a.length) && norm.startsWith(b, q));
}

/**
 * Where a floor on the tokens of text's first units reaches `need` tokens, as a length in UTF-16 units (-1 where
 * the whole text stays under it): a unit of a character some vocabulary piece holds counts 1/maxTokenChars of a
 * token, a character no piece holds one token per UTF-8 byte. The count is kept in 1/maxTokenChars steps.
 */
function floorReaches(plan: CutPlan, text: string, need: number): number {
  const M = plan.maxTokenChars;
  const target = need * M;
  let w = 0;
  for (const ch of plan.prepend) w += plan.vocabChars.has(ch) ? ch.length : M * new TextEncoder().encode(ch).length;
  if (w >= target) return 0;
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i)!;
    const units = code > 0xffff ? 2 : 1;
    const ch = units === 1 ? (plan.replace.get(text[i]) ?? text[i]) : text.slice(i, i + 2);
    w += plan.vocabChars.has(ch) ? units : M * (code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4);
    i += units;
    if (w >= target) return i;
  }
  return -1;
}

/**
 * The shortest prefix of text (its length in UTF-16 units) whose tokens start the text's own, at least `keep` of
 * them: where the floor on its tokens reaches keep, extended to the first position BPE never merges across (never
 * inside a surrogate pair); the whole text where there is none.
 */
export function cutLength(plan: CutPlan, text: string, keep: number): number {
  const reach = floorReaches(plan, text, keep);
  if (reach < 0) return text.length;
  const from = Math.max(1, reach);
  // each unit mapped once (the plan's map is already the normalizers' composition)
  const norm = plan.prepend + (plan.replace.size ? text.replace(/[\s\S]/g, (c) => plan.replace.get(c) ?? c) : text);
  const off = plan.prepend.length;
  for (let i = from; i < text.length; i++) {
    if (isLow(text.charCodeAt(i)) && isHigh(text.charCodeAt(i - 1))) continue;
    if (!mergeAcross(plan, norm, i + off)) return i;
  }
  return text.length;
}

/** The prompt's token ids, and whether the field had to be cut to fit maxTokens. */
export function encodePromptChecked(
  tok: Tokenizer,
  template: string,
  field: "text" | "input",
  value: string,
  maxTokens: number,
): { ids: number[]; truncated: boolean } {
  const t = templateParts(tok, template, field);
  if (t.tail.length >= maxTokens || t.empty > maxTokens)
    throw new DomainError(
      "template_too_long",
      `the adapter's template takes ${Math.max(t.empty, t.tail.length)} tokens, leaving none of its ${maxTokens}-token budget for the ${field}`,
    );
  const plan = planOf(tok);
  const head = t.pre + value;
  // a text whose floor on tokens is over the budget is truncated without tokenizing it whole
  if (!plan || floorReaches(plan, head + t.post, maxTokens + 1) < 0) {
    const ids = encode(tok, head + t.post);
    if (ids.length <= maxTokens) return { ids, truncated: false };
  }
  const keep = maxTokens - t.tail.length;
  const body = encode(tok, plan ? head.slice(0, cutLength(plan, head, keep)) : head).slice(0, keep);
  return { ids: [...body, ...t.tail], truncated: true };
}

export function encodePrompt(tok: Tokenizer, template: string, field: "text" | "input", value: string, maxTokens: number): number[] {
  return encodePromptChecked(tok, template, field, value, maxTokens).ids;
}
