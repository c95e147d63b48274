// One backbone run for a batch whose items may each carry a different adapter.
// Each item's KV prefix is right-aligned in a common prefix length (unused slots masked), its tokens are
// left-padded to a common length (pads masked), and position ids count only attended slots, so every item
// answers exactly as it would alone: the backbone's math is per row, and masked slots get no attention.
import type * as ORT from "onnxruntime-web";
import type { BackboneConfig } from "./backbone-config";

export type Ort = typeof ORT;
export interface BatchItem {
  ids: number[];
  /** [L, 2, kvH, P, D] float32, or null for no prefix */
  kv: Float32Array | null;
  virtualTokens: number;
}
export interface RunResult {
  /** [B, V] logits at each item's last position (empty for a hidden-only run) */
  logits: Float32Array;
  /** per layer present key/value [B, kvH, S, D] (empty for a hidden-only run) */
  presents: ORT.Tensor[];
  /** attention mask [B, S] used, to continue from the presents */
  mask: BigInt64Array;
  /** next position id per item */
  nextPos: number[];
  S: number;
  /** [B, T, hidden] final hidden states at the input positions (left-padded rows), when the graph outputs them */
  hidden: Float32Array | null;
  /** input positions per row in `hidden` */
  T: number;
}

/**
 * Splits a batch into backbone passes of at most `budget` slots (rows x the longest row's slots, virtual tokens
 * included): activations grow with that product, and ONNX Runtime's wasm memory keeps its peak for the life of
 * the isolate, so one pass of 32 x 128 tokens alone would take it past Workers' 128 MB. Rows are grouped by
 * length (less padding); a row longer than the budget gets a pass of its own. Returns indices into `slots`.
 */
export function planPasses(slots: number[], budget: number): number[][] {
  const order = slots.map((_, i) => i).sort((a, b) => slots[b] - slots[a] || a - b);
  const passes: number[][] = [];
  let cur: number[] = [];
  for (const i of order) {
    // sorted longest first: the pass's width is its first row's
    if (cur.length && (cur.length + 1) * slots[cur[0]] > budget) {
      passes.push(cur);
      cur = [];
    }
    cur.push(i);
  }
  if (cur.length) passes.push(cur);
  return passes;
}

export function buildFeeds(ort: Ort, cfg: BackboneConfig, items: BatchItem[]) {
  const B = items.length,
    L = cfg.num_layers,
    H = cfg.num_kv_heads,
    D = cfg.head_dim;
  const Pmax = Math.max(0, ...items.map((x) => x.virtualTokens));
  const T = Math.max(...items.map((x) => x.ids.length));
  if (T === 0) throw new Error("empty input");
  const S = Pmax + T;
  const ids = new BigInt64Array(B * T).fill(BigInt(cfg.pad_token_id));
  const mask = new BigInt64Array(B * S);
  const pos = new BigInt64Array(B * T);
  const past: Float32Array[] = Array.from({ length: 2 * L }, () => new Float32Array(B * H * Pmax * D));
  const nextPos: number[] = [];
  items.forEach((it, b) => {
    const P = it.virtualTokens,
      n = it.ids.length;
    for (let p = Pmax - P; p < Pmax; p++) mask[b * S + p] = 1n;
    for (let t = T - n; t < T; t++) {
      mask[b * S + Pmax + t] = 1n;
      ids[b * T + t] = BigInt(it.ids[t - (T - n)]);
      pos[b * T + t] = BigInt(P + t - (T - n));
    }
    nextPos.push(P + n);
    if (it.kv && P) {
      for (let l = 0; l < L; l++)
        for (let j = 0; j < 2; j++)
          for (let h = 0; h < H; h++)
            for (let p = 0; p < P; p++) {
              const src = (((l * 2 + j) * H + h) * P + p) * D;
              const dst = ((b * H + h) * Pmax + (Pmax - P + p)) * D;
              past[2 * l + j].set(it.kv.subarray(src, src + D), dst);
            }
    }
  });
  const feeds: Record<string, ORT.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [B, T]),
    attention_mask: new ort.Tensor("int64", mask, [B, S]),
    position_ids: new ort.Tensor("int64", pos, [B, T]),
  };
  for (let l = 0; l < L; l++) {
    feeds[`past_key_values.${l}.key`] = new ort.Tensor("float32", past[2 * l], [B, H, Pmax, D]);
    feeds[`past_key_values.${l}.value`] = new ort.Tensor("float32", past[2 * l + 1], [B, H, Pmax, D]);
  }
  return { feeds, mask, nextPos, S };
}

function lastRows(logits: ORT.Tensor, B: number, V: number): Float32Array {
  const data = logits.data as Float32Array;
  const T = logits.dims[1];
  if (T === 1) return data;
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(data.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
  return out;
}

const presentNames = (cfg: BackboneConfig) => Array.from({ length: cfg.num_layers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat();

function presentsOf(cfg: BackboneConfig, out: Record<string, ORT.Tensor>): ORT.Tensor[] {
  return presentNames(cfg).map((n) => out[n]);
}

/** which outputs a run's caller reads (the others stay inside ORT's wasm memory) */
export interface Needs {
  logits: boolean;
  presents: boolean;
  hidden: boolean;
}

/** milliseconds spent per step, summed over passes (Server-Timing locally: performance.now() advances only there) */
export type Phases = Partial<Record<"assemble" | "ort", number>>;
const add = (phases: Phases | undefined, k: keyof Phases, ms: number) => {
  if (phases) phases[k] = (phases[k] ?? 0) + ms;
};

/** A macrotask turn: lets the runtime poll its sockets between passes (a pass's promise chain never waits on I/O).
 *  setTimeout(0) costs ~4 us in workerd, which has no setImmediate; Node clamps it to 1 ms, so Node (the benchmark's
 *  native column, the engine tests) takes setImmediate, its turn of the loop without a delay. */
const macrotask: (f: () => void) => unknown =
  (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate ?? ((f: () => void) => setTimeout(f, 0));
const yieldToEventLoop = () => new Promise<void>((resolve) => macrotask(resolve));

export async function runBatch(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  items: BatchItem[],
  phases?: Phases,
  need: Needs = { logits: true, presents: true, hidden: true },
): Promise<RunResult> {
  const t0 = performance.now();
  const { feeds, mask, nextPos, S } = buildFeeds(ort, cfg, items);
  await yieldToEventLoop();
  const t1 = performance.now();
  // ORT runs the whole graph either way, but copies out of its wasm memory only the outputs asked for: a
  // 32 x 128 pass's presents are 17 MB of JS garbage when nothing reads them
  const names = [
    ...(need.logits ? ["logits"] : []),
    ...(need.presents ? presentNames(cfg) : []),
    ...(need.hidden && cfg.outputs.includes("hidden_states") ? ["hidden_states"] : []),
  ];
  const out = await session.run(feeds, names);
  add(phases, "assemble", t1 - t0);
  add(phases, "ort", performance.now() - t1);
  const hidden = out.hidden_states ? (out.hidden_states.data as Float32Array) : null;
  return {
    logits: out.logits ? lastRows(out.logits, items.length, cfg.vocab_size) : new Float32Array(0),
    presents: need.presents ? presentsOf(cfg, out) : [],
    mask,
    nextPos,
    S,
    hidden,
    T: S - Math.max(0, ...items.map((x) => x.virtualTokens)),
  };
}

/**
 * Continue from a previous run's cache: row r of the new batch extends row `rows[r]` of `prev` with `tokens[r]`
 * (left-padded to a common length; pads masked). Returns the last-position logits and the new cache.
 */
export async function continueBatch(
  ort: Ort,
  session: ORT.InferenceSession,
  cfg: BackboneConfig,
  prev: RunResult,
  rows: number[],
  tokens: number[][],
): Promise<RunResult> {
  const R = rows.length,
    L = cfg.num_layers,
    H = cfg.num_kv_heads,
    D = cfg.head_dim,
    S = prev.S;
  const T = Math.max(...tokens.map((t) => t.length));
  const ids = new BigInt64Array(R * T).fill(BigInt(cfg.pad_token_id));
  const pos = new BigInt64Array(R * T);
  const mask = new BigInt64Array(R * (S + T));
  const nextPos: number[] = [];
  rows.forEach((src, r) => {
    mask.set(prev.mask.subarray(src * S, (src + 1) * S), r * (S + T));
    const n = tokens[r].length;
    for (let t = T - n; t < T; t++) {
      mask[r * (S + T) + S + t] = 1n;
      ids[r * T + t] = BigInt(tokens[r][t - (T - n)]);
      pos[r * T + t] = BigInt(prev.nextPos[src] + t - (T - n));
    }
    nextPos.push(prev.nextPos[src] + n);
  });
  const feeds: Record<string, ORT.Tensor> = {
    input_ids: new ort.Tensor("int64", ids, [R, T]),
    attention_mask: new ort.Tensor("int64", mask, [R, S + T]),
    position_ids: new ort.Tensor("int64", pos, [R, T]),
  };
  const identity = rows.length === prev.nextPos.length && rows.every((x, i) => x === i);
  for (let l = 0; l < L; l++)
    for (let j = 0; j < 2; j++) {
      const t = prev.presents[2 * l + j];
      let data = t.data as Float32Array;
      if (!identity) {
        const per = H * S * D;
        const sel = new Float32Array(R * per);
        rows.forEach((src, r) => {
          sel.set(data.subarray(src * per, (src + 1) * per), r * per);
        });
        data = sel;
      }
      feeds[`past_key_values.${l}.${j ? "value" : "key"}`] = new ort.Tensor("float32", data, [R, H, S, D]);
    }
  await yieldToEventLoop();
  const out = await session.run(feeds, ["logits", ...presentNames(cfg)]); // a continuation reads no hidden states
  return { logits: lastRows(out.logits, R, cfg.vocab_size), presents: presentsOf(cfg, out), mask, nextPos, S: S + T, hidden: null, T };
}
