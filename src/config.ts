// The worker's settings: the one place their defaults live. Parsed once per isolate from wrangler.toml [vars]
// (or `--var`); a value that is not a whole number in its range is an error at the first request, not a silent
// default.
import type { Bindings } from "./app-env";

export interface Limits {
  maxItems: number;
  maxTextChars: number;
  maxTokens: number;
  maxNewTokens: number;
  maxBodyBytes: number;
  maxAdapterBytes: number;
  /** the most slots (rows x the longest row, virtual tokens included) one backbone pass takes; larger batches run
   *  as several passes, which bounds ONNX Runtime's wasm memory (see BENCHMARKS.md, memory) */
  maxBatchTokens: number;
}
export interface Config {
  limits: Limits;
  adapterCacheBytes: number;
  aliasTtlMs: number;
  authCacheMs: number;
  authStaleMs: number;
  r2Attempts: number;
  r2TimeoutMs: number;
  publicTenants: string[];
  backboneId?: string;
}

type NumericVar =
  | "MAX_ITEMS"
  | "MAX_TEXT_CHARS"
  | "MAX_TOKENS"
  | "MAX_NEW_TOKENS"
  | "MAX_BODY_BYTES"
  | "MAX_ADAPTER_BYTES"
  | "MAX_BATCH_TOKENS"
  | "ADAPTER_CACHE_BYTES"
  | "ALIAS_TTL_MS"
  | "AUTH_CACHE_MS"
  | "AUTH_STALE_MS"
  | "R2_ATTEMPTS"
  | "R2_TIMEOUT_MS";

/** name -> [default, min, max] */
export const SETTINGS: Record<NumericVar, [number, number, number]> = {
  MAX_ITEMS: [32, 1, 256],
  MAX_TEXT_CHARS: [8000, 1, 1 << 20],
  MAX_TOKENS: [128, 1, 1024],
  MAX_NEW_TOKENS: [64, 1, 1024],
  MAX_BODY_BYTES: [1 << 20, 1, 100 << 20],
  MAX_ADAPTER_BYTES: [1 << 20, 1, 100 << 20],
  MAX_BATCH_TOKENS: [1024, 64, 1 << 16],
  ADAPTER_CACHE_BYTES: [10 << 20, 0, 1 << 30], // npm run bench:memory: the whole isolate stays under 110 MB with it full
  ALIAS_TTL_MS: [10_000, 0, 86_400_000],
  AUTH_CACHE_MS: [10_000, 0, 86_400_000],
  // how long past AUTH_CACHE_MS a cached key or grant answers while KV cannot be read: 10 + 50 s keeps a revoked
  // key's life during a KV outage within KV's own propagation delay (up to 60 s)
  AUTH_STALE_MS: [50_000, 0, 86_400_000],
  R2_ATTEMPTS: [3, 1, 10],
  R2_TIMEOUT_MS: [2000, 1, 60_000],
};

export class ConfigError extends Error {}

export function parseConfig(env: Bindings): Config {
  const n = (name: NumericVar) => {
    const [def, min, max] = SETTINGS[name];
    const raw = env[name];
    if (raw === undefined || raw === "") return def;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min || v > max)
      throw new ConfigError(`setting ${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}`);
    return v;
  };
  const publicTenants = (env.PUBLIC_TENANTS ?? "demo")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    limits: {
      maxItems: n("MAX_ITEMS"),
      maxTextChars: n("MAX_TEXT_CHARS"),
      maxTokens: n("MAX_TOKENS"),
      maxNewTokens: n("MAX_NEW_TOKENS"),
      maxBodyBytes: n("MAX_BODY_BYTES"),
      maxAdapterBytes: n("MAX_ADAPTER_BYTES"),
      maxBatchTokens: n("MAX_BATCH_TOKENS"),
    },
    adapterCacheBytes: n("ADAPTER_CACHE_BYTES"),
    aliasTtlMs: n("ALIAS_TTL_MS"),
    authCacheMs: n("AUTH_CACHE_MS"),
    authStaleMs: n("AUTH_STALE_MS"),
    r2Attempts: n("R2_ATTEMPTS"),
    r2TimeoutMs: n("R2_TIMEOUT_MS"),
    publicTenants,
    backboneId: env.BACKBONE_ID || undefined,
  };
}

/** One parse per distinct env object (an isolate sees one; tests pass others). */
const parsed = new WeakMap<object, Config>();
export function configOf(env: Bindings): Config {
  let c = parsed.get(env);
  if (!c) {
    c = parseConfig(env);
    parsed.set(env, c);
  }
  return c;
}
