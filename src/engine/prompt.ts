// Fill an adapter's template and tokenize, as scripts/softedge/tuning/tasks.py encode_prompts does: an over-long field
// is cut from its end so the template's tail (the cue right before the answer) always survives.
import type { Tokenizer } from "@huggingface/tokenizers";

/** The prompt's token ids, and whether the field had to be cut to fit maxTokens. */
export function encodePromptChecked(
  tok: Tokenizer,
  template: string,
  field: "text" | "input",
  value: string,
  maxTokens: number,
): { ids: number[]; truncated: boolean } {
  const [pre, post] = template.split(`{${field}}`);
  const enc = (s: string) => tok.encode(s, { add_special_tokens: false }).ids as number[];
  const ids = enc(pre + value + post);
  if (ids.length <= maxTokens) return { ids, truncated: false };
  const tail = post ? enc(post) : [];
  return { ids: [...enc(pre + value).slice(0, maxTokens - tail.length), ...tail], truncated: true };
}

export function encodePrompt(tok: Tokenizer, template: string, field: "text" | "input", value: string, maxTokens: number): number[] {
  return encodePromptChecked(tok, template, field, value, maxTokens).ids;
}
