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
}
