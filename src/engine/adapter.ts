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

/**
 * What one artifact may hold, so that every adapter the worker accepts is servable within the isolate's budget:
 * the worst request names a different adapter in each of its MAX_ITEMS items and holds them all at once (README.md,
 * "Adapter bounds", has the arithmetic for the default backbone). parseAdapter checks them on publish and on load,
 * so a stored artifact over them is refused, never served.
 */
export const ARTIFACT_BOUNDS = {
  /** P: the fp32 KV prefix is L*2*kvH*P*D*4 bytes (256 KiB at 64 on the default backbone), and every pass of the
   *  backbone runs P more slots per item */
  virtualTokens: 64,
  /** the parsed adapter (memoryBytes): MAX_ITEMS 32 x 320 KiB = 10 MiB, the adapter cache's default bound, which
   *  `npm run bench:memory` measures full */
  memoryBytes: 320 << 10,
  labels: 64,
  labelChars: 64,
  /** a verbalizer label's words, and one word's tokens (each token past the first is one more pass per word) */
  labelWords: 8,
  wordTokens: 8,
  /** every label word's tokens together: the continuation rows a verbalizer adds to each item it classifies */
  labelTokens: 32,
  /** tokenized with every request's text; its tokens must also leave room in the prompt (publish.ts) */
  templateChars: 4096,
  /** what a request's own stop may be (schemas.ts): the text is scanned for each on every generated token */
  stopStrings: 8,
  stopChars: 64,
  /** metadata kept with the parsed adapter and returned by GET /v1/adapters/{tenant}/{name} */
  trainingChars: 16384,
} as const;

/** the tensors an artifact may hold (adapter.py's contract); anything else would be bytes read for nothing */
const TENSORS = new Set([
  "kv_prefix",
  "kv_prefix_scale",
  "prompt_embeddings",
  "head_weight",
  "head_weight_scale",
  "head_bias",
  "bag_ids",
  "bag_weight",
  "bag_weight_scale",
]);

/** the prompt tokens an adapter reads: the length it was trained with (training.max_tokens), never past `limit` */
export function tokenBudget(adapter: Pick<Adapter, "training">, limit: number): number {
  const trained = adapter.training.max_tokens;
  return typeof trained === "number" && trained > 0 ? Math.min(trained, limit) : limit;
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
  try {
    return await parseChecked(buf, backbone);
  } catch (e) {
    // a tensor of a dtype its reader does not take (toFloat32 / toInt32) is a bad artifact, not a server fault
    if (e instanceof SafetensorsError) throw new AdapterError("adapter_corrupt", e.message);
    throw e;
  }
}

const isInt = (x: unknown, min: number, max: number): x is number => Number.isInteger(x) && (x as number) >= min && (x as number) <= max;
const dtypeIs = (t: RawTensor | undefined, ...dtypes: string[]) => t !== undefined && dtypes.includes(t.dtype);

async function parseChecked(buf: ArrayBuffer | Uint8Array, backbone: BackboneConfig): Promise<Adapter> {
  const B = ARTIFACT_BOUNDS;
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
  if (!isInt(P, 0, B.virtualTokens))
    throw new AdapterError(
      "adapter_corrupt",
      `num_virtual_tokens ${JSON.stringify(m.num_virtual_tokens)} must be a whole number from 0 to ${B.virtualTokens}`,
    );
  const want = [backbone.num_layers, 2, backbone.num_kv_heads, P, backbone.head_dim];
  if (!t || JSON.stringify(t.shape) !== JSON.stringify(want))
    throw new AdapterError("adapter_corrupt", `kv_prefix shape ${JSON.stringify(t?.shape)} does not fit the backbone ${JSON.stringify(want)}`);
  if (!dtypeIs(t, "F32", "F16", "I8")) throw new AdapterError("adapter_corrupt", `kv_prefix is ${t.dtype}, not F32, F16 or I8`);
  const pe = tensors.prompt_embeddings;
  if (pe && (!dtypeIs(pe, "F32", "F16") || JSON.stringify(pe.shape) !== JSON.stringify([P, backbone.hidden_size])))
    throw new AdapterError("adapter_corrupt", `prompt_embeddings must be [${P}, ${backbone.hidden_size}] F32 or F16`);
  let kv = toFloat32(t);
  if (t.dtype === "I8") {
    const s = tensors.kv_prefix_scale;
    if (!s || m.dtype !== "int8") throw new AdapterError("adapter_corrupt", "int8 prefix without its scales");
    const wantScale = [backbone.num_layers, 2, backbone.num_kv_heads];
    if (s.dtype !== "F32" || JSON.stringify(s.shape) !== JSON.stringify(wantScale))
      throw new AdapterError("adapter_corrupt", `kv_prefix_scale must be ${JSON.stringify(wantScale)} F32`);
    const scale = toFloat32(s),
      per = P * backbone.head_dim;
    kv = kv.map((x, i) => x * scale[Math.floor(i / per)]);
  } else if ((t.dtype === "F16" && m.dtype !== "float16") || (t.dtype === "F32" && m.dtype !== "float32")) {
    throw new AdapterError("adapter_corrupt", `dtype ${m.dtype} does not match the stored tensor`);
  } else if (tensors.kv_prefix_scale) {
    throw new AdapterError("adapter_corrupt", `kv_prefix_scale beside a ${t.dtype} kv_prefix`);
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
  const mn = generation.max_new_tokens;
  if (mn !== undefined && !isInt(mn, 1, 1 << 16)) throw new AdapterError("adapter_corrupt", "generation.max_new_tokens must be a whole number >= 1");
  const stop = generation.stop;
  if (
    stop !== undefined &&
    !(Array.isArray(stop) && stop.length <= B.stopStrings && stop.every((x) => typeof x === "string" && x.length >= 1 && x.length <= B.stopChars))
  )
    throw new AdapterError("adapter_corrupt", `generation.stop must be at most ${B.stopStrings} strings of 1 to ${B.stopChars} characters`);
  const field = m.task === "classify" ? "{text}" : "{input}";
  if (m.template.length > B.templateChars) throw new AdapterError("adapter_corrupt", `template longer than ${B.templateChars} characters`);
  if (m.template.split(field).length !== 2) throw new AdapterError("adapter_corrupt", `a ${m.task} template holds ${field} exactly once`);
  if ((m.training?.length ?? 0) > B.trainingChars)
    throw new AdapterError("adapter_corrupt", `metadata training longer than ${B.trainingChars} characters`);
  const training = json<Record<string, unknown>>(m.training, "training", {});
  if (typeof training !== "object" || training === null || Array.isArray(training))
    throw new AdapterError("adapter_corrupt", "metadata training is not a JSON object");
  if (training.max_tokens !== undefined && !isInt(training.max_tokens, 1, 1 << 16))
    throw new AdapterError("adapter_corrupt", "training.max_tokens must be a whole number >= 1");
  const labels = json<Label[]>(m.labels, "labels", []);
  const readout = json<{ type?: string; pooling?: string; bag_tokens?: number }>(m.readout, "readout", { type: "verbalizer" });
  if (typeof readout !== "object" || readout === null || Array.isArray(readout))
    throw new AdapterError("adapter_corrupt", "metadata readout is not a JSON object");
  if (m.task === "classify" && (!Array.isArray(labels) || labels.length < 2 || typeof labels[0]?.name !== "string"))
    throw new AdapterError("adapter_corrupt", "classification adapter without usable labels");
  checkLabels(labels, readout.type === "head", backbone.vocab_size);
  // the parsed size, from the shapes the head must have: checked before the head is decoded to float32 (4x an int8 one)
  const strings = m.labels.length + m.template.length + (m.training?.length ?? 0) + (m.generation?.length ?? 0);
  const K = readout.type === "head" && isInt(readout.bag_tokens, 1, backbone.vocab_size) ? readout.bag_tokens : 0;
  const headBytes = readout.type === "head" ? 4 * (labels.length * (backbone.hidden_size + 1) + K * (labels.length + 1)) : 0;
  const memoryBytes = kv.byteLength + headBytes + 2 * strings;
  if (memoryBytes > B.memoryBytes)
    throw new AdapterError("adapter_corrupt", `the parsed adapter would take ${memoryBytes} bytes, over the ${B.memoryBytes} one adapter may`);
  let head: Head | null = null;
  if (readout.type === "head") {
    if (m.task !== "classify") throw new AdapterError("adapter_corrupt", "a head readout needs task classify");
    if (!backbone.outputs?.includes("hidden_states"))
      throw new AdapterError("backbone_mismatch", `backbone ${backbone.id} has no hidden_states output for a head adapter`);
    head = parseHead(tensors, readout, labels.length, backbone.hidden_size, backbone.vocab_size);
  } else if (readout.type !== "verbalizer") {
    throw new AdapterError("adapter_corrupt", `unknown readout ${JSON.stringify(readout.type)}`);
  } else if (m.task === "classify" && !labels.every((l) => l.token_ids?.length && l.token_ids.every((w) => w.length))) {
    throw new AdapterError("adapter_corrupt", "verbalizer adapter without label tokens");
  }
  // every tensor is read: a verbalizer has no head tensors, a bag's scales come with its weights
  for (const name of names) if (!TENSORS.has(name)) throw new AdapterError("adapter_corrupt", `unexpected tensor ${JSON.stringify(name)}`);
  const unread = names.find((x) => (head ? x === "bag_weight_scale" && !tensors.bag_weight : /^(head|bag)_/.test(x)));
  if (unread) throw new AdapterError("adapter_corrupt", `tensor ${unread} is not read by this adapter's readout`);
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  return {
    kind: m.kind,
    task: m.task,
    backbone: m.backbone,
    virtualTokens: P,
    dtype: m.dtype,
    template: m.template,
    labels,
    generation,
    training,
    checksum: m.checksum,
    kv,
    head,
    bytes: u8.byteLength,
    memoryBytes,
  };
}

/** names unique and short; a verbalizer's words and token ids bounded and in the vocabulary; a head's labels carry
 *  no token ids (the readout never reads them) */
function checkLabels(labels: unknown, head: boolean, vocab: number) {
  const B = ARTIFACT_BOUNDS;
  const bad = (why: string) => new AdapterError("adapter_corrupt", `labels: ${why}`);
  if (!Array.isArray(labels)) throw bad("not a JSON array");
  if (labels.length > B.labels) throw bad(`${labels.length} labels, over ${B.labels}`);
  const names = new Set<string>();
  let tokens = 0;
  for (const l of labels as Partial<Label>[]) {
    const name = l?.name;
    if (typeof name !== "string" || !name.length || name.length > B.labelChars) throw bad(`a name must be 1 to ${B.labelChars} characters`);
    if (names.has(name)) throw bad(`${JSON.stringify(name)} twice`);
    names.add(name);
    const words = l.words ?? [],
      ids = l.token_ids ?? [];
    if (!Array.isArray(words) || !Array.isArray(ids)) throw bad(`${name}: words and token_ids must be arrays`);
    if (head && (words.length || ids.length)) throw bad(`${name}: a head adapter's labels carry no words or token_ids`);
    if (words.length > B.labelWords || ids.length > B.labelWords) throw bad(`${name}: more than ${B.labelWords} words`);
    if (!words.every((w) => typeof w === "string" && w.length <= B.labelChars))
      throw bad(`${name}: a word must be a string of at most ${B.labelChars} characters`);
    for (const w of ids) {
      if (!Array.isArray(w) || w.length > B.wordTokens) throw bad(`${name}: a word's token_ids must be an array of at most ${B.wordTokens}`);
      if (!w.every((id) => isInt(id, 0, vocab - 1))) throw bad(`${name}: token ids must be whole numbers from 0 to ${vocab - 1} (the vocabulary)`);
      tokens += w.length;
    }
  }
  if (tokens > B.labelTokens) throw bad(`${tokens} label tokens in all, over ${B.labelTokens}`);
}

function parseHead(
  tensors: Record<string, RawTensor>,
  readout: { pooling?: string; bag_tokens?: number },
  n: number,
  hidden: number,
  vocab: number,
): Head {
  const bad = (why: string) => new AdapterError("adapter_corrupt", `head: ${why}`);
  if (readout.pooling !== "mean" && readout.pooling !== "last") throw bad(`unknown pooling ${JSON.stringify(readout.pooling)}`);
  const W = tensors.head_weight,
    b = tensors.head_bias;
  if (!W || !b || JSON.stringify(W.shape) !== JSON.stringify([n, hidden]) || JSON.stringify(b.shape) !== JSON.stringify([n]))
    throw bad(`head_weight/head_bias do not fit ${n} labels x ${hidden} hidden units`);
  if (!dtypeIs(b, "F32", "F16")) throw bad(`head_bias is ${b.dtype}, not F32 or F16`);
  const K = readout.bag_tokens ?? 0,
    ids = tensors.bag_ids,
    bw = tensors.bag_weight;
  // an int8 weight carries one float32 scale per label row (<name>_scale); a float one carries none
  const rows = (name: string, cols: number): Float32Array => {
    const x = tensors[name],
      scale = tensors[`${name}_scale`];
    if (!dtypeIs(x, "F32", "F16", "I8")) throw bad(`${name} is ${x.dtype}, not F32, F16 or I8`);
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
    if (K && (bagIds[0] < 0 || bagIds[K - 1] >= vocab)) throw bad(`bag_ids must lie in the vocabulary (0 to ${vocab - 1})`);
    bagWeight = rows("bag_weight", K);
  }
  const head = { pooling: readout.pooling, weight: rows("head_weight", hidden), bias: toFloat32(b), bagIds, bagWeight } as Head;
  if (![head.weight, head.bias, head.bagWeight].every((a) => a.every(Number.isFinite))) throw bad("weights hold NaN or inf");
  return head;
}
