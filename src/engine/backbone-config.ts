// config.json of a backbone bundle (scripts/softedge/bundle.py writes it): the parts the edge needs.
export interface BackboneConfig {
  id: string;
  num_layers: number;
  num_heads: number;
  num_kv_heads: number;
  head_dim: number;
  vocab_size: number;
  max_positions: number;
  pad_token_id: number;
  eos_token_id: number;
  bos_token_id: number;
  quantization: string;
  logits: "last" | "all";
  model_sha256: string;
}
