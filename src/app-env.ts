// The Hono environment: bindings, vars, and what the middleware puts on the context.
import type { BackboneConfig } from "./engine/backbone-config";
import type { Tokenizer } from "@huggingface/tokenizers";
import type { Backbone } from "./store/backbone";
import type { AdapterStore } from "./store/adapters";
import type { Storage } from "./store/r2";
import type { Directory, KvSource } from "./auth/tenants";
import type { Principal } from "./auth/keys";
import type { Limits } from "./config";
import type { RequestRecord } from "./api/request-log";

export interface Bindings {
  BUCKET: R2Bucket;
  TENANTS: KVNamespace; // API keys, tenant settings, grants (src/auth)
  RATE_LIMITER?: RateLimit; // optional: requests per tenant (wrangler.toml [[ratelimits]])
  USAGE?: AnalyticsEngineDataset; // per-tenant usage data points (src/usage.ts)
  USAGE_ACCOUNT_ID?: string; // with USAGE_API_TOKEN: GET /v1/tenant/usage reads Analytics Engine's SQL API
  USAGE_API_TOKEN?: string;
  USAGE_DATASET?: string;
  BACKBONE_ID?: string; // default: catalog.json's default_backbone in the bucket
  PUBLIC_TENANTS?: string; // comma-separated namespaces every tenant may read ("demo")
  MAX_ITEMS?: string;
  MAX_TEXT_CHARS?: string;
  MAX_TOKENS?: string;
  MAX_NEW_TOKENS?: string;
  MAX_BODY_BYTES?: string;
  MAX_ADAPTER_BYTES?: string;
  MAX_BATCH_TOKENS?: string;
  ADAPTER_CACHE_BYTES?: string;
  ALIAS_TTL_MS?: string;
  AUTH_CACHE_MS?: string;
  AUTH_STALE_MS?: string;
  R2_ATTEMPTS?: string;
  R2_TIMEOUT_MS?: string;
}
export type { Limits } from "./config";
export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    backbone: () => Promise<Backbone>;
    /** the backbone's config, before its model is loaded: what adapters are checked against */
    backboneConfig: () => Promise<BackboneConfig>;
    /** the backbone's tokenizer, before its model is loaded: what a publish counts template tokens with */
    backboneTokenizer: () => Promise<Tokenizer>;
    adapters: AdapterStore;
    directory: Directory;
    kv: KvSource;
    storage: Storage;
    limits: Limits;
    publicTenants: string[];
    principal: Principal;
    requestId: string;
    record: RequestRecord; // what the request's log line reports (src/api/request-log.ts)
  };
}
