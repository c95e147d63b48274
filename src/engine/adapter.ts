// The adapter artifact on the edge (scripts/softedge/adapter.py writes it): validation, checksum, KV prefix.
import { parseSafetensors, SafetensorsError, toFloat32 } from "./safetensors";
import type { BackboneConfig } from "./backbone-config";
import { sha256Hex } from "./hash";

export interface Label {
  name: string;
  words: string[];
  token_ids: number[][];
}
export interface Adapter {
  kind: "prompt" | "prefix";
  task: "classify" | "generate";
  backbone: string;
  virtualTokens: number; // P
  dtype: string;
  template: string;
  labels: Label[];
  generation: { max_new_tokens?: number; stop?: string[] };
  training: Record<string, unknown>;
  checksum: string;
  /** [L, 2, kvH, P, D] float32 */
  kv: Float32Array;
  bytes: number; // the artifact's size
  /** what the parsed adapter holds in the isolate's memory: the fp32 KV prefix plus its metadata strings */
  memoryBytes: number;
}

/** code: "adapter_corrupt" (damaged or not an adapter) or "backbone_mismatch" (packed for another backbone) */
export class AdapterError extends Error {
  constructor(public code: "adapter_corrupt" | "backbone_mismatch", message: string) {
    super(message);
  }
}

function json<T>(s: string | undefined, what: string, fallback: T): T {
  if (s === undefined) return fallback;
  try { return JSON.parse(s) as T; } catch { throw new AdapterError("adapter_corrupt", `metadata ${what} is not valid JSON`); }
}

export async function parseAdapter(buf: ArrayBuffer | Uint8Array, backbone: BackboneConfig): Promise<Adapter> {
  let parsed;
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
    const scale = toFloat32(s), per = P * backbone.head_dim;
    kv = kv.map((x, i) => x * scale[Math.floor(i / per)]);
  } else if ((t.dtype === "F16" && m.dtype !== "float16") || (t.dtype === "F32" && m.dtype !== "float32")) {
    throw new AdapterError("adapter_corrupt", `dtype ${m.dtype} does not match the stored tensor`);
  }
  if (!kv.every(Number.isFinite)) throw new AdapterError("adapter_corrupt", "kv_prefix holds NaN or inf");
  const labels = json<Label[]>(m.labels, "labels", []);
  if (m.task === "classify" && (!Array.isArray(labels) || labels.length < 2 || !labels.every((l) => l.token_ids?.length && l.token_ids.every((w) => w.length))))
    throw new AdapterError("adapter_corrupt", "classification adapter without usable labels");
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  return {
    kind: m.kind, task: m.task, backbone: m.backbone, virtualTokens: P, dtype: m.dtype, template: m.template, labels,
    generation: json(m.generation, "generation", {}), training: json(m.training, "training", {}), checksum: m.checksum,
    kv, bytes: u8.byteLength, memoryBytes: kv.byteLength + 2 * (m.labels.length + m.template.length + (m.training?.length ?? 0)),
  };
}
