// The adapter artifact on the edge (scripts/softedge/artifacts/adapter.py writes it): validation, checksum, KV prefix.
import { parseSafetensors, SafetensorsError, toFloat32, toInt32, type RawTensor } from "./safetensors";
import type { BackboneConfig } from "./backbone-config";
import { sha256Hex } from "./hash";

export interface Label {
  name: string;
  words: string[];
  token_ids: number[][];
}
/**
 * A classification head over the final hidden states (readout "head"; scripts/softedge/tuning/readout.py):
 * score[l] = weight[l] . pool(h) + bias[l] + sum of bagWeight[l, k] over the bag tokens k present in the prompt.
 */
export interface Head {
  pooling: "mean" | "last";
  /** [n_labels, hidden] */
  weight: Float32Array;
  bias: Float32Array;
  /** the bag-of-tokens vocabulary, strictly increasing token ids (column k of bagWeight is bagIds[k]) */
  bagIds: Int32Array;
  /** [n_labels, K] */
  bagWeight: Float32Array;
}
export interface Adapter {
  kind: "prompt" | "prefix";
  task: "classify" | "generate";
  backbone: string;
  virtualTokens: number; // P
  dtype: string;
  template: string;
  labels: Label[];
  generation: { max_new_tokens?: number; stop?: string[]; no_repeat_ngram_size?: number; num_beams?: number };
  training: Record<string, unknown>;
  checksum: string;
  /** [L, 2, kvH, P, D] float32 */
  kv: Float32Array;
  /** the classification head, or null when labels are read through the verbalizer's words */
  head: Head | null;
  bytes: number; // the artifact's size
  /** what the parsed adapter holds in the isolate's memory: the fp32 KV prefix plus its metadata strings */
  memoryBytes: number;
}

/** code: "adapter_corrupt" (damaged or not an adapter) or "backbone_mismatch" (packed for another backbone) */
export class AdapterError extends Error {
  constructor(
    public code: "adapter_corrupt" | "backbone_mismatch",
    message: string,
  ) {
    super(message);
  }
}

function json<T>(s: string | undefined, what: string, fallback: T): T {
  if (s === undefined) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    throw new AdapterError("adapter_corrupt", `metadata ${what} is not valid JSON`);
  }
}

export async function parseAdapter(buf: ArrayBuffer | Uint8Array, backbone: BackboneConfig): Promise<Adapter> {
  let parsed: ReturnType<typeof parseSafetensors>;
  try {
    parsed = parseSafetensors(buf);
  } catch (e) {
    throw new AdapterError("adapter_corrupt", e instanceof SafetensorsError ? e.message : "unreadable artifact");
  }
  const { tensors, metadata: m } = parsed;
  if (m.format !== "softedge-adapter" || m.format_version !== "1")
    throw new AdapterError("adapter_corrupt", "not a softedge adapter (format/version)");
  for (const k of ["kind", "task", "backbone", "num_virtual_tokens", "dtype", "template", "labels", "checksum"])
    if (typeof m[k] !== "string") throw new AdapterError("adapter_corrupt", `metadata lacks ${k}`);
  if ((m.kind !== "prompt" && m.kind !== "prefix") || (m.task !== "classify" && m.task !== "generate"))
    throw new AdapterError("adapter_corrupt", "bad kind or task");
  const names = Object.keys(tensors).sort();
  if ((await sha256Hex(names.map((n) => tensors[n].bytes))) !== m.checksum)
    throw new AdapterError("adapter_corrupt", "checksum mismatch (the tensors were altered or damaged)");
  if (m.backbone !== backbone.id)
    throw new AdapterError("backbone_mismatch", `adapter was packed for backbone ${m.backbone}, this worker serves ${backbone.id}`);
  const t = tensors.kv_prefix;
  const P = Number(m.num_virtual_tokens);
  const want = [backbone.num_layers, 2, backbone.num_kv_heads, P, backbone.head_dim];
  if (!t || JSON.stringify(t.shape) !== JSON.stringify(want))
    throw new AdapterError("adapter_corrupt", `kv_prefix shape ${JSON.stringify(t?.shape)} does not fit the backbone ${JSON.stringify(want)}`);
  let kv = toFloat32(t);
  if (t.dtype === "I8") {
    const s = tensors.kv_prefix_scale;
    if (!s || m.dtype !== "int8") throw new AdapterError("adapter_corrupt", "int8 prefix without its scales");
    const scale = toFloat32(s),
      per = P * backbone.head_dim;
    kv = kv.map((x, i) => x * scale[Math.floor(i / per)]);
  } else if ((t.dtype === "F16" && m.dtype !== "float16") || (t.dtype === "F32" && m.dtype !== "float32")) {
    throw new AdapterError("adapter_corrupt", `dtype ${m.dtype} does not match the stored tensor`);
  }
  if (!kv.every(Number.isFinite)) throw new AdapterError("adapter_corrupt", "kv_prefix holds NaN or inf");
  const generation = json<Adapter["generation"]>(m.generation, "generation", {});
  if (typeof generation !== "object" || generation === null || Array.isArray(generation))
    throw new AdapterError("adapter_corrupt", "metadata generation is not a JSON object");
  const n = generation.no_repeat_ngram_size;
  if (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 8))
    throw new AdapterError("adapter_corrupt", "generation.no_repeat_ngram_size must be an integer in [0, 8]");
  const k = generation.num_beams;
  if (k !== undefined && !(Number.isInteger(k) && k >= 1 && k <= 8))
    throw new AdapterError("adapter_corrupt", "generation.num_beams must be an integer in [1, 8]");
  const labels = json<Label[]>(m.labels, "labels", []);
  const readout = json<{ type?: string; pooling?: string; bag_tokens?: number }>(m.readout, "readout", { type: "verbalizer" });
  if (m.task === "classify" && (!Array.isArray(labels) || labels.length < 2 || typeof labels[0]?.name !== "string"))
    throw new AdapterError("adapter_corrupt", "classification adapter without usable labels");
  let head: Head | null = null;
  if (readout.type === "head") {
    if (m.task !== "classify") throw new AdapterError("adapter_corrupt", "a head readout needs task classify");
    if (!backbone.outputs?.includes("hidden_states"))
      throw new AdapterError("backbone_mismatch", `backbone ${backbone.id} has no hidden_states output for a head adapter`);
    head = parseHead(tensors, readout, labels.length, backbone.hidden_size);
  } else if (readout.type !== "verbalizer") {
    throw new AdapterError("adapter_corrupt", `unknown readout ${JSON.stringify(readout.type)}`);
  } else if (m.task === "classify" && !labels.every((l) => l.token_ids?.length && l.token_ids.every((w) => w.length))) {
    throw new AdapterError("adapter_corrupt", "verbalizer adapter without label tokens");
  }
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  const headBytes = head ? head.weight.byteLength + head.bias.byteLength + head.bagWeight.byteLength + head.bagIds.byteLength : 0;
  return {
    kind: m.kind,
    task: m.task,
    backbone: m.backbone,
    virtualTokens: P,
    dtype: m.dtype,
    template: m.template,
    labels,
    generation,
    training: json(m.training, "training", {}),
    checksum: m.checksum,
    kv,
    head,
    bytes: u8.byteLength,
    memoryBytes: kv.byteLength + headBytes + 2 * (m.labels.length + m.template.length + (m.training?.length ?? 0)),
  };
}

function parseHead(tensors: Record<string, RawTensor>, readout: { pooling?: string; bag_tokens?: number }, n: number, hidden: number): Head {
  const bad = (why: string) => new AdapterError("adapter_corrupt", `head: ${why}`);
  if (readout.pooling !== "mean" && readout.pooling !== "last") throw bad(`unknown pooling ${JSON.stringify(readout.pooling)}`);
  const W = tensors.head_weight,
    b = tensors.head_bias;
  if (!W || !b || JSON.stringify(W.shape) !== JSON.stringify([n, hidden]) || JSON.stringify(b.shape) !== JSON.stringify([n]))
    throw bad(`head_weight/head_bias do not fit ${n} labels x ${hidden} hidden units`);
  const K = readout.bag_tokens ?? 0,
    ids = tensors.bag_ids,
    bw = tensors.bag_weight;
  // an int8 weight carries one float32 scale per label row (<name>_scale); a float one carries none
  const rows = (name: string, cols: number): Float32Array => {
    const x = tensors[name],
      scale = tensors[`${name}_scale`];
    if (x.dtype !== "I8") {
      if (scale) throw bad(`${name}_scale beside a ${x.dtype} ${name}`);
      return toFloat32(x);
    }
    if (scale?.dtype !== "F32" || JSON.stringify(scale.shape) !== JSON.stringify([n])) throw bad(`int8 ${name} needs ${name}_scale [${n}] F32`);
    const s = toFloat32(scale);
    if (!s.every((v) => v > 0 && Number.isFinite(v))) throw bad(`${name}_scale must be finite and > 0`);
    return toFloat32(x).map((v, i) => v * s[Math.floor(i / cols)]);
  };
  let bagIds: Int32Array = new Int32Array(0),
    bagWeight: Float32Array = new Float32Array(0);
  if (K || ids || bw) {
    if (
      !ids ||
      !bw ||
      (ids.dtype !== "I32" && ids.dtype !== "I16") ||
      JSON.stringify(ids.shape) !== JSON.stringify([K]) ||
      JSON.stringify(bw.shape) !== JSON.stringify([n, K])
    )
      throw bad(`bag_ids/bag_weight do not fit bag_tokens=${K} and ${n} labels`);
    bagIds = toInt32(ids);
    if (!bagIds.every((id, k) => k === 0 || id > bagIds[k - 1])) throw bad("bag_ids are not strictly increasing");
    bagWeight = rows("bag_weight", K);
  }
  const head = { pooling: readout.pooling, weight: rows("head_weight", hidden), bias: toFloat32(b), bagIds, bagWeight } as Head;
  if (![head.weight, head.bias, head.bagWeight].every((a) => a.every(Number.isFinite))) throw bad("weights hold NaN or inf");
  return head;
}
