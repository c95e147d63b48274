// Scores a backbone's ONNX graph on held-out windows written by `scripts/py fixtures backbone`, decoding one
// token at a time through the KV cache (the edge's generation path), and compares with PyTorch's fp32 answers.
// Also the synthetic inputs the benchmarks time a forward with (syntheticFeeds).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** The level the worker creates a bundle's session at (src/engine/backbone-config.ts sessionLevel, whose twin this
 *  is for the plain-JS scripts): "basic" for a graph pre-optimised when its bundle was built, "all" otherwise. */
export const levelOf = (cfg) => cfg?.ort_optimization?.at_load ?? "all";

/** levelOf the config.json beside a model file ("all" for a graph outside a bundle) */
export function bundleLevel(modelPath) {
  try {
    return levelOf(JSON.parse(readFileSync(join(dirname(modelPath), "config.json"), "utf8")));
  } catch {
    return "all";
  }
}

/** Open a session on onnxruntime-web (wasm, one thread, as in workerd) or onnxruntime-node. */
export async function openSession(path, backend = "web") {
  const ort = backend === "node" ? await import("onnxruntime-node") : await import("onnxruntime-web");
  if (backend === "web") {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
  }
  // native ORT's extended fusions would change the weight-only graph's math (see test/js/ort-backends.ts)
  const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(path)), {
    executionProviders: [backend === "node" ? "cpu" : "wasm"],
    graphOptimizationLevel: backend === "node" ? "basic" : bundleLevel(path),
  });
  return { ort, session };
}

/** Inputs for one forward of B rows x T new tokens behind S past positions (synthetic ids, a constant past): for
 *  timing and memory figures, where the values do not matter. */
export function syntheticFeeds(ort, cfg, B, T, S) {
  const f = {
    input_ids: new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt(5 + ((i * 37) % 7000))),
      [B, T],
    ),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(B * (S + T)).fill(1n), [B, S + T]),
    position_ids: new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, (_, i) => BigInt(S + (i % T))),
      [B, T],
    ),
  };
  for (let i = 0; i < cfg.num_layers; i++)
    for (const kv of ["key", "value"])
      f[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(B * cfg.num_kv_heads * S * cfg.head_dim).fill(0.01), [
        B,
        cfg.num_kv_heads,
        S,
        cfg.head_dim,
      ]);
  return f;
}

function emptyPast(ort, cfg, B) {
  const feeds = {};
  for (let i = 0; i < cfg.num_layers; i++)
    for (const kv of ["key", "value"])
      feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [B, cfg.num_kv_heads, 0, cfg.head_dim]);
  return feeds;
}

export function logSoftmaxAt(logits, row, V, target) {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[row * V + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[row * V + v] - max);
  return logits[row * V + target] - max - Math.log(sum);
}

export function argmax(logits, row, V) {
  let best = 0;
  for (let v = 1; v < V; v++) if (logits[row * V + v] > logits[row * V + best]) best = v;
  return best;
}

/**
 * Feed each window token by token (batch = all windows). Returns per-position log-prob of the target and top-1,
 * plus the last step's logits. `rows` selects windows (default all).
 */
export async function decodeWindows({ ort, session }, cfg, fixture, rows) {
  const ids = rows ? rows.map((r) => fixture.input_ids[r]) : fixture.input_ids;
  const targets = rows ? rows.map((r) => fixture.targets[r]) : fixture.targets;
  const B = ids.length,
    T = ids[0].length,
    V = cfg.vocab_size;
  let past = emptyPast(ort, cfg, B);
  const logprob = ids.map(() => []),
    top1 = ids.map(() => []);
  let last;
  for (let t = 0; t < T; t++) {
    const feeds = {
      input_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from(ids, (w) => BigInt(w[t])),
        [B, 1],
      ),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(B * (t + 1)).fill(1n), [B, t + 1]),
      position_ids: new ort.Tensor("int64", new BigInt64Array(B).fill(BigInt(t)), [B, 1]),
      ...past,
    };
    const out = await session.run(feeds);
    const logits = out.logits.data;
    for (let b = 0; b < B; b++) {
      logprob[b].push(logSoftmaxAt(logits, b, V, targets[b][t]));
      top1[b].push(argmax(logits, b, V));
    }
    past = {};
    for (let i = 0; i < cfg.num_layers; i++) for (const kv of ["key", "value"]) past[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
    last = logits;
  }
  return { logprob, top1, lastLogits: last, V };
}

/** Perplexity, top-1 agreement with fp32, and max |logit diff| against PyTorch simulating the int8 graph. */
export function compare(fixture, res, rows) {
  const sel = rows ?? fixture.input_ids.map((_, i) => i);
  let lpSum = 0,
    fpSum = 0,
    n = 0,
    agree = 0;
  sel.forEach((r, b) => {
    res.logprob[b].forEach((lp, t) => {
      lpSum += lp;
      fpSum += fixture.fp32_target_logprob[r][t];
      agree += Number(res.top1[b][t] === fixture.fp32_top1[r][t]);
      n++;
    });
  });
  const ref = fixture.int8_reference_last_logits;
  const V = ref.dims[1];
  let maxDiff = 0;
  sel.forEach((r, b) => {
    for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(res.lastLogits[b * V + v] - ref.data[r * V + v]));
  });
  return {
    positions: n,
    ppl: Math.exp(-lpSum / n),
    fp32_ppl: Math.exp(-fpSum / n),
    top1_agreement: agree / n,
    max_abs_diff_vs_int8_reference: maxDiff,
  };
}
