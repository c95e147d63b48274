// config.json of a backbone bundle (scripts/softedge/export/bundle.py writes it): the parts the edge needs.
export interface BackboneConfig {
  id: string;
  num_layers: number;
  num_heads: number;
  num_kv_heads: number;
  head_dim: number;
  hidden_size: number;
  vocab_size: number;
  max_positions: number;
  pad_token_id: number;
  eos_token_id: number;
  bos_token_id: number;
  quantization: string;
  logits: "last" | "all";
  /** the graph's outputs; "hidden_states" (final norm, every input position) is what head adapters read */
  outputs: string[];
  model_sha256: string;
  /** present when the graph was optimised when its bundle was built (scripts/softedge/export/preoptimize.py) */
  ort_optimization?: { offline: string; at_load: OptimizationLevel; by: string };
}

export type OptimizationLevel = "disabled" | "basic" | "extended" | "all";
const LEVELS: readonly string[] = ["disabled", "basic", "extended", "all"];

/** ONNX Runtime's optimisation level to create the backbone's session at: "all" for a graph as exported; a graph
 *  pre-optimised offline names its own (bundles write "basic": folding its int8 weights is all that is left, and
 *  skipping the rest takes a cold isolate's session creation down by about a quarter). */
export function sessionLevel(cfg: Pick<BackboneConfig, "id" | "ort_optimization">): OptimizationLevel {
  const level = cfg.ort_optimization?.at_load ?? "all";
  if (!LEVELS.includes(level)) throw new Error(`backbone ${cfg.id}: config.json ort_optimization.at_load "${level}" is not an ONNX Runtime level`);
  return level;
}
