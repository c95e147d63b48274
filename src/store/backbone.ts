// The shared backbone: bundle files from R2 (backbones/<id>/), loaded once per isolate. Concurrent cold requests
// share one load (the promise is cached, not the session); a failed R2 read is not cached, so a later request
// retries; ORT's own init failure is kept by loadOrt.
import { Tokenizer } from "@huggingface/tokenizers";
import type { InferenceSession } from "onnxruntime-web";
import type { BackboneConfig } from "../engine/backbone-config";
import { initOrt, type OrtModule } from "../engine/ort-workerd";
import { sha256Hex } from "../engine/hash";
import { DomainError } from "../errors";
import { getBytes, type Storage } from "./r2";

export interface Backbone {
  cfg: BackboneConfig;
  session: InferenceSession;
  tokenizer: Tokenizer;
  ort: OrtModule;
}

let loading: Promise<Backbone> | null = null;
export const stats = { loads: 0 };

async function load(io: Storage, id: string): Promise<Backbone> {
  const get = async (name: string) => {
    const bytes = await getBytes(io, `backbones/${id}/${name}`);
    if (!bytes) throw new DomainError("backbone_unavailable", `backbone ${id} is not in storage (${name} missing)`);
    return bytes;
  };
  const ortReady = initOrt(); // ORT's wasm init overlaps with the reads below
  ortReady.catch(() => {}); // awaited below; a read that fails first must not leave this rejection unhandled
  const [cfgBytes, tokBytes, model] = await Promise.all([get("config.json"), get("tokenizer.json"), get("model.onnx")]);
  const cfg = JSON.parse(new TextDecoder().decode(cfgBytes)) as BackboneConfig;
  if (cfg.id !== id) throw new DomainError("backbone_unavailable", `backbones/${id}/config.json names ${cfg.id}`);
  if ((await sha256Hex(model)) !== cfg.model_sha256) throw new DomainError("backbone_unavailable", `backbone ${id}: model.onnx checksum mismatch`);
  const ort = await ortReady;
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const tokenizer = new Tokenizer(JSON.parse(new TextDecoder().decode(tokBytes)), {});
  stats.loads++;
  return { cfg, session, tokenizer, ort };
}

export function getBackbone(io: Storage, id: string): Promise<Backbone> {
  loading ??= load(io, id).catch((e) => {
    loading = null;
    throw e;
  });
  return loading;
}
