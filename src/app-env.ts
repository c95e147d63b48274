// The Hono environment: bindings, vars, and what the middleware puts on the context.
import type { Backbone } from "./store/backbone";
import type { AdapterStore } from "./store/adapters";

export interface Bindings {
  BUCKET: R2Bucket;
  BACKBONE_ID?: string; // default: catalog.json's default_backbone in the bucket
  MAX_ITEMS?: string;
  MAX_TEXT_CHARS?: string;
  MAX_TOKENS?: string;
  MAX_NEW_TOKENS?: string;
  ADAPTER_CACHE_BYTES?: string;
  ALIAS_TTL_MS?: string;
}
export interface Limits {
  maxItems: number;
  maxTextChars: number;
  maxTokens: number;
  maxNewTokens: number;
}
export interface AppEnv {
  Bindings: Bindings;
  Variables: { backbone: () => Promise<Backbone>; adapters: AdapterStore; limits: Limits };
}
