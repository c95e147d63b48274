// The shared backbone: bundle files from R2 (backbones/<id>/), loaded once per isolate. Concurrent cold requests
// share one load (the promise is cached, not the session); a failed R2 read is not cached, so a later request
// retries; ORT's own init failure is kept by loadOrt. The config is available on its own before the session, so a
// request's adapters are read and checked while model.onnx is still downloading.
import type { Tokenizer } from "@huggingface/tokenizers";
import type { InferenceSession } from "onnxruntime-web";
import { sessionLevel, type BackboneConfig } from "../engine/backbone-config";
import { initOrt, type OrtModule } from "../engine/ort-workerd";
import { sha256Hex } from "../engine/hash";
import { loadTokenizer } from "../engine/tokenizer";
import { DomainError } from "../errors";
import { getBytes, type Storage } from "./r2";

export interface Backbone {
  cfg: BackboneConfig;
  session: InferenceSession;
  tokenizer: Tokenizer;
  ort: OrtModule;
}

interface Loading {
  cfg: Promise<BackboneConfig>;
  tokenizer: Promise<Tokenizer>;
  backbone: Promise<Backbone>;
}
let loading: Loading | null = null;
export const stats = { loads: 0 };

/**
 * Starts the load. The small files come first where it helps: the config as soon as it is read (adapters can be
 * fetched and checked against it while model.onnx is still arriving) and the tokenizer parsed during that download;
 * the session last.
 */
function load(io: Storage, id: string): Loading {
  const get = async (name: string) => {
    const bytes = await getBytes(io, `backbones/${id}/${name}`);
    if (!bytes) throw new DomainError("backbone_unavailable", `backbone ${id} is not in storage (${name} missing)`);
    return bytes;
  };
  const ortReady = initOrt(); // ORT's wasm init overlaps with the reads below
  const [cfgBytes, tokBytes, model] = [get("config.json"), get("tokenizer.json"), get("model.onnx")];
  const cfg = cfgBytes.then((b) => {
    const c = JSON.parse(new TextDecoder().decode(b)) as BackboneConfig;
    if (c.id !== id) throw new DomainError("backbone_unavailable", `backbones/${id}/config.json names ${c.id}`);
    try {
      sessionLevel(c); // checked with the config, before any adapter is read against it
    } catch (e) {
      throw new DomainError("backbone_unavailable", (e as Error).message);
    }
    return c;
  });
  const tokenizer = (async () => {
    await cfg;
    return loadTokenizer(JSON.parse(new TextDecoder().decode(await tokBytes)));
  })();
  // each is awaited below; one that fails while another is awaited must not count as an unhandled rejection
  for (const p of [ortReady, tokBytes, model, cfg, tokenizer]) p.catch(() => {});
  const backbone = (async () => {
    const c = await cfg;
    const tok = await tokenizer;
    const bytes = await model;
    if ((await sha256Hex(bytes)) !== c.model_sha256) throw new DomainError("backbone_unavailable", `backbone ${id}: model.onnx checksum mismatch`);
    const ort = await ortReady;
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: sessionLevel(c) });
    stats.loads++;
    return { cfg: c, session, tokenizer: tok, ort };
  })();
  return { cfg, tokenizer, backbone };
}

function started(io: Storage, id: string) {
  if (!loading) {
    const l = load(io, id);
    loading = l;
    const settled = l.backbone.catch(() => {
      if (loading === l) loading = null; // a failed load is not cached: a later request retries
    });
    // the request that started the load may end first (a publish needs only the config; a client may go away):
    // waitUntil keeps its reads alive, since workerd cancels a finished request's pending I/O
    io.waitUntil?.(settled);
  }
  return loading;
}

export function getBackbone(io: Storage, id: string): Promise<Backbone> {
  return started(io, id).backbone;
}

/** The backbone's config alone: known before the model is read and its session made (adapters check against it). */
export function getBackboneConfig(io: Storage, id: string): Promise<BackboneConfig> {
  return started(io, id).cfg;
}

/** The backbone's tokenizer, before the model is read: a publish counts a template's tokens with it. */
export function getBackboneTokenizer(io: Storage, id: string): Promise<Tokenizer> {
  return started(io, id).tokenizer;
}
