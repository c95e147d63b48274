// Classification for a batch of items that may use different adapters and different readouts.
// Verbalizer: a label's score is the log-probability of its word's tokens after the prompt (multi-token words: the
// first token from the prompt's last position, the rest by continuing from the prompt's KV cache); a label with
// several words scores the log of the mean of their probabilities (scripts/softedge/tuning/tasks.py label_logprobs).
// Head: a linear head over the final hidden states pooled over the prompt's tokens, plus the bag-of-tokens term
// (scripts/softedge/tuning/readout.py Head). Either way the probabilities are the softmax over labels, so Python's golden
// outputs apply.
import type * as ORT from "onnxruntime-web";
import type { Adapter, Head } from "./adapter";
import type { BackboneConfig } from "./backbone-config";
import { continueBatch, planPasses, runBatch, type Ort, type Phases, type RunResult } from "./batch";

export interface ClassifyItem {
  ids: number[]; // the prompt's tokens (template filled)
  adapter: Adapter;
}
export interface ClassifyResult {
  label: string;
  probabilities: Record<string, number>;
}

function logSoftmaxRow(x: Float32Array, row: number, V: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[row * V + v]);
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(x[row * V + v] - m);
  const lz = m + Math.log(z);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = x[row * V + v] - lz;
  return out;
}

const logMeanExp = (xs: number[]) => {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0) / xs.length);
};

/** Classifies a batch in passes of at most `maxBatchTokens` slots (planPasses); every item answers as it would alone. */
export async function classifyBatch(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  items: ClassifyItem[],
  maxBatchTokens: number,
  phases?: Phases,
): Promise<ClassifyResult[]> {
  const out: ClassifyResult[] = new Array(items.length);
  for (const pass of planPasses(
    items.map((it) => it.adapter.virtualTokens + it.ids.length),
    maxBatchTokens,
  )) {
    const res = await classifyPass(
      ort,
      session,
      cfg,
      pass.map((i) => items[i]),
      maxBatchTokens,
      phases,
    );
    pass.forEach((i, k) => {
      out[i] = res[k];
    });
  }
  return out;
}

async function classifyPass(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  items: ClassifyItem[],
  maxBatchTokens: number,
  phases?: Phases,
): Promise<ClassifyResult[]> {
  const V = cfg.vocab_size;
  // heads read the hidden states; verbalizers the logits, and the cache too when a label word has several tokens
  const verbalizers = items.filter((it) => !it.adapter.head);
  const need = {
    logits: verbalizers.length > 0,
    presents: verbalizers.some((it) => it.adapter.labels.some((l) => l.token_ids.some((w) => w.length > 1))),
    hidden: verbalizers.length < items.length,
  };
  const first = await runBatch(
    ort,
    session,
    cfg,
    items.map((it) => ({ ids: it.ids, kv: it.adapter.kv, virtualTokens: it.adapter.virtualTokens })),
    phases,
    need,
  );
  // verbalizer word scores start with the first token; multi-token words continue from the prompt's cache in one batch
  const scores = items.map((it, b) => {
    if (it.adapter.head) return [];
    const lp = logSoftmaxRow(first.logits, b, V);
    return it.adapter.labels.map((l) => l.token_ids.map((w) => lp[w[0]]));
  });
  const rows: number[] = [],
    toks: number[][] = [],
    where: [number, number, number][] = [];
  items.forEach((it, b) => {
    it.adapter.labels.forEach((l, li) => {
      l.token_ids.forEach((w, wi) => {
        if (w.length > 1) {
          rows.push(b);
          toks.push(w.slice(0, -1));
          where.push([b, li, wi]);
        }
      });
    });
  });
  // each continuation row carries a copy of its prompt's cache: bound the rows per pass by the same budget
  const perPass = Math.max(1, Math.floor(maxBatchTokens / (first.S + Math.max(0, ...toks.map((t) => t.length)))));
  for (let r0 = 0; r0 < rows.length; r0 += perPass) {
    const cont = await continueBatchAll(ort, session, cfg, first, rows.slice(r0, r0 + perPass), toks.slice(r0, r0 + perPass));
    where.slice(r0, r0 + perPass).forEach(([b, li, wi], r) => {
      const w = items[b].adapter.labels[li].token_ids[wi];
      for (let j = 1; j < w.length; j++) scores[b][li][wi] += cont[r][j - 1][w[j]];
    });
  }
  return items.map((it, b) => {
    const head = it.adapter.head;
    const s = head ? headScores(head, first, b, it.ids, cfg.hidden_size) : scores[b].map(logMeanExp);
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, x) => a + x, 0);
    const probabilities: Record<string, number> = {};
    it.adapter.labels.forEach((l, i) => {
      probabilities[l.name] = e[i] / z;
    });
    const best = s.indexOf(m);
    return { label: it.adapter.labels[best].name, probabilities };
  });
}

/** The head's label scores for row b: its final hidden states pooled over the row's own (right-aligned) tokens. */
function headScores(head: Head, run: RunResult, b: number, ids: number[], d: number): number[] {
  if (!run.hidden) throw new Error("the backbone graph has no hidden_states output");
  const T = run.T,
    n = ids.length,
    pooled = new Float64Array(d);
  const rows = head.pooling === "last" ? [T - 1] : Array.from({ length: n }, (_, j) => T - n + j);
  for (const t of rows) {
    const off = (b * T + t) * d;
    for (let k = 0; k < d; k++) pooled[k] += run.hidden[off + k];
  }
  for (let k = 0; k < d; k++) pooled[k] /= rows.length;
  const present = [...new Set(ids)].map((id) => bagColumn(head.bagIds, id)).filter((k) => k >= 0);
  const K = head.bagIds.length;
  return Array.from(head.bias, (bias, l) => {
    let s = bias;
    for (let k = 0; k < d; k++) s += head.weight[l * d + k] * pooled[k];
    for (const k of present) s += head.bagWeight[l * K + k];
    return s;
  });
}

/** Binary search in the sorted bag vocabulary: the token's column, or -1. */
function bagColumn(ids: Int32Array, id: number): number {
  let lo = 0,
    hi = ids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] === id) return mid;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * log-softmax at every continuation position: the graph returns last-position logits only, so feed the
 * continuation one token at a time through the cache (labels are a few tokens long).
 */
async function continueBatchAll(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  first: RunResult,
  rows: number[],
  toks: number[][],
): Promise<Float64Array[][]> {
  const V = cfg.vocab_size,
    maxLen = Math.max(...toks.map((t) => t.length));
  const out: Float64Array[][] = toks.map(() => []);
  // step k feeds token k of every row that has one; rows that are done feed their last token again (ignored)
  let state = first,
    src = rows;
  for (let k = 0; k < maxLen; k++) {
    const step = toks.map((t) => [t[Math.min(k, t.length - 1)]]);
    state = await continueBatch(ort, session, cfg, state, src, step);
    src = rows.map((_, r) => r);
    toks.forEach((t, r) => {
      if (k < t.length) out[r].push(logSoftmaxRow(state.logits, r, V));
    });
  }
  return out;
}
