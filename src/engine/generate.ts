// Short generation with the KV cache: the prompt runs once, then each step feeds only the new token.
// Greedy by default; sampling with temperature, top-k, top-p and a seed (a small deterministic PRNG, so a seeded
// request repeats exactly). Stops at </s>, at max_new_tokens, or when the text ends with a stop string. With
// noRepeatNgram = n, a token that would repeat an n-gram of the generated text is never picked. With numBeams = K > 1
// (and no temperature): beam search, whose tokens come out as soon as every beam agrees on them.
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
  numBeams?: number; // 1 or absent: one sequence (greedy or sampled); K > 1: beam search (greedy only)
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

/** Where the first stop string in `text` starts (the text is cut there), or -1 when none is in it. */
export function stopAt(text: string, stops: string[] = []): number {
  const hits = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0);
  return hits.length ? Math.min(...hits) : -1;
}

/** `text` less its longest end that could begin a stop string (a proper prefix of one): what a stream may send
 * before the next token settles whether a stop string starts there. Grows with the text, never shrinks. */
export function withoutStopStart(text: string, stops: string[]): string {
  let keep = text.length;
  for (const s of stops)
    for (let n = Math.min(s.length - 1, text.length); n > 0; n--)
      if (text.endsWith(s.slice(0, n))) {
        keep = Math.min(keep, text.length - n);
        break;
      }
  return text.slice(0, keep);
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

/** The prompt's pass (behind the adapter's KV prefix): the first logits and the cache the steps continue from. */
function promptPass(ort: Ort, session: ORT.InferenceSession, cfg: BackboneConfig, adapter: Adapter | null, ids: number[]) {
  const item = { ids, kv: adapter?.kv ?? null, virtualTokens: adapter?.virtualTokens ?? 0 };
  return runBatch(ort, session, cfg, [item], undefined, { logits: true, presents: true, hidden: false });
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
  if ((o.numBeams ?? 1) > 1) {
    if (o.temperature) throw new Error("beam search is greedy: numBeams > 1 takes no temperature");
    yield* beamSearch(ort, session, cfg, adapter, ids, decode, o);
    return;
  }
  const rand = prng(o.seed ?? 0);
  let state = await promptPass(ort, session, cfg, adapter, ids);
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
    const cut = stopAt(text, o.stop);
    if (cut >= 0) {
      yield { token: t, text: text.slice(0, cut), stopped: true };
      return;
    }
    yield { token: t, text };
    if (step + 1 < o.maxNewTokens) state = await continueBatch(ort, session, cfg, state, [0], [[t]]);
  }
}

interface Hypothesis {
  tokens: number[];
  score: number; // sum of the tokens' log-probabilities
  cut?: number; // the text ends at this index: a stop string starts there
}

/** The `k` best tokens of a log-probability row, best first (ties: the lower token id); -Infinity is never one. */
export function topTokens(lp: Float64Array, k: number): number[] {
  const best: number[] = [];
  for (let v = 0; v < lp.length; v++) {
    const x = lp[v];
    if (x === Number.NEGATIVE_INFINITY || (best.length === k && x <= lp[best[k - 1]])) continue;
    let i = best.length;
    while (i > 0 && lp[best[i - 1]] < x) i--; // strictly: an equal value stays behind the lower token id
    best.splice(i, 0, v);
    if (best.length > k) best.pop();
  }
  return best;
}

function logSoftmax(logits: Float32Array): Float64Array {
  // (x - max) - log(sum(exp(x - max))), in float64 as beam_search does in PyTorch; the sums' order differs, so the
  // last bits may too: only exact or near ties between candidates could go another way
  let m = Number.NEGATIVE_INFINITY;
  for (const x of logits) if (x > m) m = x;
  let z = 0;
  for (const x of logits) z += Math.exp(x - m);
  const lz = Math.log(z);
  const out = new Float64Array(logits.length);
  for (let v = 0; v < logits.length; v++) out[v] = logits[v] - m - lz;
  return out;
}

/**
 * Beam search over K = numBeams hypotheses, scored by the sum of log-probabilities (no length penalty), batched as
 * K rows of one backbone run per step. The twin of beam_search in scripts/softedge/tuning/tasks.py, step for step:
 * each live hypothesis offers its 2K best tokens; candidates rank by score, then hypothesis, then token; </s> or a
 * stop string among the first K ranks ends a hypothesis, the first K others live on. The search ends when K
 * hypotheses have ended and none scores below the best live one (scores only fall), or at maxNewTokens, where the
 * live ones join the ended. The answer is one of the ended hypotheses or grows from a live one, so the tokens that
 * all of them share are settled: they are yielded as soon as they are, and a stream gets the text in pieces.
 */
async function* beamSearch(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  adapter: Adapter | null,
  ids: number[],
  decode: (ids: number[]) => string,
  o: GenerateOptions,
): AsyncGenerator<GenerateStep> {
  const K = o.numBeams!,
    V = cfg.vocab_size;
  let state = await promptPass(ort, session, cfg, adapter, ids);
  let live: Hypothesis[] = [{ tokens: [], score: 0 }];
  let ended: Hypothesis[] = [];
  let sent = 0; // tokens yielded: settled ones
  const step = (tokens: number[], i: number): GenerateStep => ({ token: tokens[i], text: decode(tokens.slice(0, i + 1)) });
  for (let pos = 0; pos < o.maxNewTokens; pos++) {
    const cands: { score: number; from: number; token: number }[] = [];
    live.forEach((h, b) => {
      const lp = logSoftmax(state.logits.subarray(b * V, (b + 1) * V));
      for (const t of bannedTokens(h.tokens, o.noRepeatNgram ?? 0)) lp[t] = Number.NEGATIVE_INFINITY;
      for (const t of topTokens(lp, 2 * K)) cands.push({ score: h.score + lp[t], from: b, token: t });
    });
    cands.sort((x, y) => y.score - x.score || x.from - y.from || x.token - y.token);
    const next: (Hypothesis & { from: number })[] = [];
    for (const [rank, c] of cands.entries()) {
      const tokens = [...live[c.from].tokens, c.token];
      const cut = c.token !== cfg.eos_token_id && o.stop?.length ? stopAt(decode(tokens), o.stop) : -1;
      if (c.token === cfg.eos_token_id || cut >= 0) {
        if (rank < K) ended.push(c.token === cfg.eos_token_id ? { tokens: live[c.from].tokens, score: c.score } : { tokens, score: c.score, cut });
      } else if (next.push({ tokens, score: c.score, from: c.from }) === K) break;
    }
    ended = ended.sort((x, y) => y.score - x.score).slice(0, K); // a stable sort: earlier-ended first on ties
    if (!next.length || (ended.length >= K && ended[K - 1].score >= next[0].score)) {
      live = [];
      break;
    }
    live = next;
    if (pos + 1 === o.maxNewTokens) break;
    const all = [...live, ...ended];
    let settled = sent;
    while (settled < live[0].tokens.length && all.every((h) => h.tokens.length > settled && h.tokens[settled] === live[0].tokens[settled])) settled++;
    for (; sent < settled; sent++) yield step(live[0].tokens, sent); // live tokens hold no stop string
    state = await continueBatch(
      ort,
      session,
      cfg,
      state,
      next.map((h) => h.from),
      next.map((h) => [h.tokens[h.tokens.length - 1]]),
    );
  }
  let best: Hypothesis | undefined = ended[0];
  for (const h of live) if (!best || h.score > best.score) best = h; // ties: the ended one, as max() in Python
  if (!best) return; // every token banned: nothing to say
  for (let i = sent; i < best.tokens.length; i++) {
    const s = step(best.tokens, i);
    yield i === best.tokens.length - 1 && best.cut !== undefined ? { ...s, text: s.text.slice(0, best.cut), stopped: true } : s;
  }
}
