// Short generation with the KV cache: the prompt runs once, then each step feeds only the new token.
// Greedy by default; sampling with temperature, top-k, top-p and a seed (a small deterministic PRNG, so a seeded
// request repeats exactly). Stops at </s>, at max_new_tokens, or when the text ends with a stop string. With
// noRepeatNgram = n, a token that would repeat an n-gram of the generated text is never picked.
import type * as ORT from "onnxruntime-web";
import type { Adapter } from "./adapter";
import type { BackboneConfig } from "./backbone-config";
import { continueBatch, runBatch, type Ort } from "./batch";

export interface GenerateOptions {
  maxNewTokens: number;
  temperature?: number; // 0 or absent: greedy
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  noRepeatNgram?: number; // 0 or absent: off
}
export interface GenerateStep {
  token: number;
  text: string; // the decoded text so far
  stopped?: true; // this token completed a stop string: the last step
}

/** Why a generation ended, given its steps: a stop string or </s> ("stop"), or max_new_tokens ("length"). */
export function finishReason(steps: number, last: GenerateStep | undefined, maxNewTokens: number): "stop" | "length" {
  return last?.stopped || steps < maxNewTokens ? "stop" : "length";
}

/** The tokens that would complete an n-gram already in `out` (the generated tokens only: a definition may repeat
 * the word it defines). The twin of repeated_ngram_tokens in scripts/softedge/tuning/tasks.py. */
export function bannedTokens(out: number[], n: number): number[] {
  if (n <= 0 || out.length < n - 1) return [];
  const start = out.length - n + 1;
  const banned: number[] = [];
  for (let i = 0; i + n <= out.length; i++) {
    let k = 0;
    while (k < n - 1 && out[i + k] === out[start + k]) k++;
    if (k === n - 1) banned.push(out[i + n - 1]);
  }
  return banned;
}

/** mulberry32: tiny, fast, deterministic */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Greedy when temperature is 0 or absent; otherwise a draw from softmax(logits / temperature), cut to the top k
 * tokens and then to the nucleus of mass top_p, walking tokens from the most likely down (pickTokenSorted is the
 * definition). Sorting all 8000 logits for every token cost more than a decode step's forward pass, so the walk sorts
 * only the tokens above a weight level, 1e-2 of the most likely one's first, and lowers the level only when the top k,
 * the nucleus or the draw reach past them. */
export function pickToken(logits: Float32Array, o: GenerateOptions, rand: () => number): number {
  const V = logits.length;
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
  if (!o.temperature) return best;
  const T = o.temperature,
    m = logits[best];
  const w = new Float64Array(V);
  for (let v = 0; v < V; v++) w[v] = Math.exp((logits[v] - m) / T);
  const topK = o.topK && o.topK > 0 ? Math.min(o.topK, V) : V;
  const draw = rand();
  for (const level of [1e-2, 1e-4, 1e-7, 0]) {
    const above: number[] = [];
    const floor = level || Number.MIN_VALUE; // weight 0 (a banned token's -Infinity) is never a candidate
    for (let v = 0; v < V; v++) if (w[v] >= floor) above.push(v);
    if (above.length < topK && topK < V && level > 0) continue; // the top k reach below this level
    above.sort((a, b) => logits[b] - logits[a] || a - b); // as a stable sort of all the tokens orders them
    let idx = above.slice(0, topK);
    let complete = topK < V || level === 0; // idx holds every token the walk can reach
    let z = 0;
    if (topK < V) for (const i of idx) z += w[i];
    else for (let v = 0; v < V; v++) z += w[v];
    let p = idx.map((i) => w[i] / z);
    if (o.topP && o.topP < 1) {
      let c = 0,
        k = 0;
      while (k < p.length && c < o.topP) c += p[k++];
      if (c < o.topP && !complete) continue; // the nucleus reaches below this level
      idx = idx.slice(0, Math.max(1, k));
      p = p.slice(0, idx.length);
      const z2 = p.reduce((a, x) => a + x, 0);
      p = p.map((x) => x / z2);
      complete = true;
    }
    let r = draw;
    for (let i = 0; i < p.length; i++) {
      r -= p[i];
      if (r <= 0) return idx[i];
    }
    if (complete) return idx[idx.length - 1]; // float slack at the end of the walk
  }
  throw new Error("unreachable: the last level holds every token");
}

/** pickToken's definition: every token sorted by logit, then top-k, top-p and the inverse-CDF walk. */
export function pickTokenSorted(logits: Float32Array, o: GenerateOptions, rand: () => number): number {
  const V = logits.length;
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  if (o.topK && o.topK > 0) idx = idx.slice(0, o.topK);
  const m = logits[idx[0]];
  let p = idx.map((i) => Math.exp((logits[i] - m) / o.temperature!));
  const live = p.findIndex((x) => x === 0); // sorted, so the weight-0 tokens (banned: -Infinity) come last
  if (live > 0) [idx, p] = [idx.slice(0, live), p.slice(0, live)];
  const z = p.reduce((a, x) => a + x, 0);
  p = p.map((x) => x / z);
  if (o.topP && o.topP < 1) {
    let c = 0,
      k = 0;
    while (k < p.length && c < o.topP) c += p[k++];
    idx = idx.slice(0, Math.max(1, k));
    p = p.slice(0, idx.length);
    const z2 = p.reduce((a, x) => a + x, 0);
    p = p.map((x) => x / z2);
  }
  // inverse CDF: the first index where the running sum passes a uniform draw
  let r = rand(),
    i = 0;
  for (; i < p.length - 1; i++) {
    r -= p[i];
    if (r <= 0) break;
  }
  return idx[i];
}

export async function* generate(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  adapter: Adapter | null,
  ids: number[],
  decode: (ids: number[]) => string,
  o: GenerateOptions,
): AsyncGenerator<GenerateStep> {
  const rand = prng(o.seed ?? 0);
  const item = { ids, kv: adapter?.kv ?? null, virtualTokens: adapter?.virtualTokens ?? 0 };
  let state = await runBatch(ort, session, cfg, [item], undefined, { logits: true, presents: true, hidden: false });
  const out: number[] = [];
  for (let step = 0; step < o.maxNewTokens; step++) {
    let logits = state.logits.subarray(0, cfg.vocab_size);
    const banned = bannedTokens(out, o.noRepeatNgram ?? 0);
    if (banned.length) {
      logits = logits.slice(); // the state's logits stay as the model gave them
      for (const b of banned) logits[b] = Number.NEGATIVE_INFINITY;
    }
    const t = pickToken(logits, o, rand);
    if (t === cfg.eos_token_id) return;
    out.push(t);
    const text = decode(out);
    const hit = (o.stop ?? []).map((s) => text.indexOf(s)).filter((i) => i >= 0);
    if (hit.length) {
      yield { token: t, text: text.slice(0, Math.min(...hit)), stopped: true };
      return;
    }
    yield { token: t, text };
    if (step + 1 < o.maxNewTokens) state = await continueBatch(ort, session, cfg, state, [0], [[t]]);
  }
}
