// Who may read what. A tenant reads its own adapters, those of the public namespaces (PUBLIC_TENANTS, "demo" by
// default), and those of tenants that granted it access (KV grant/<reader>/<owner>). A tenant's settings (KV
// tenant/<name>: default adapter per task) route requests that name no adapter.
//
// KV reads are cached in the isolate for `ttlMs` (AUTH_CACHE_MS, 10 s): a revoked key, a removed grant or a new
// default takes effect within that time on other isolates (plus KV's own propagation in production), at once on
// the isolate that made the change.
import type { KeyRecord } from "./keys";
import { SingleFlight } from "../store/single-flight";

export interface TenantSettings {
  defaults: Partial<Record<"classify" | "generate", string>>;
}

const MAX_ENTRIES = 10_000;

/** the KV namespace, and the request's waitUntil: a background refresh must outlive the response that started it
 *  (workerd cancels a request's pending I/O when the request ends) */
export interface KvSource {
  kv: KVNamespace;
  waitUntil: (p: Promise<unknown>) => void;
}

/** every key name under `prefix`, the prefix cut off, across KV's pages */
export async function kvNames(kv: KVNamespace, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await kv.list({ prefix, cursor });
    out.push(...page.keys.map((k) => k.name.slice(prefix.length)));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return out;
}

export class Directory {
  private cache = new Map<string, { value: unknown; at: number }>();
  private reads = new SingleFlight<unknown>(); // one KV read per key at a time, however many requests wait
  private epoch = 0; // bumped by every forget: a read begun before a change must not cache the old value
  constructor(private ttlMs: number) {}

  /** A cached value younger than the TTL is returned as is; an older one is returned too while one refresh runs
   *  (stale-while-revalidate), so a slow KV read delays no request that has an answer already. */
  private read<T>(src: KvSource, key: string): Promise<T | null> {
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs) return Promise.resolve(hit.value as T | null);
    const epoch = this.epoch;
    const p = this.reads.run(
      key,
      async () => {
        let value: unknown;
        try {
          value = await src.kv.get(key, "json");
        } catch (e) {
          console.warn(`KV ${key}: read failed: ${e instanceof Error ? e.message : e}`);
          throw e;
        }
        if (this.cache.size >= MAX_ENTRIES) this.cache.clear(); // bounded: bad keys with random ids must not grow it
        if (epoch === this.epoch) this.cache.set(key, { value, at: Date.now() });
        return value;
      },
      src.waitUntil,
    ) as Promise<T | null>;
    return hit ? Promise.resolve(hit.value as T | null) : p;
  }

  forget(key: string) {
    this.cache.delete(key);
    this.reads.forget(key);
    this.epoch++;
  }

  keyRecord(src: KvSource, id: string) {
    return this.read<KeyRecord>(src, `key/${id}`);
  }
  async settings(src: KvSource, tenant: string): Promise<TenantSettings> {
    return (await this.read<TenantSettings>(src, `tenant/${tenant}`)) ?? { defaults: {} };
  }
  async canRead(src: KvSource, reader: string, owner: string, publicTenants: string[]): Promise<boolean> {
    return reader === owner || publicTenants.includes(owner) || (await this.read(src, `grant/${reader}/${owner}`)) !== null;
  }
  /** every tenant whose adapters `reader` may list: itself, the public namespaces, its grants */
  async readable({ kv }: KvSource, reader: string, publicTenants: string[]): Promise<string[]> {
    return [...new Set([reader, ...publicTenants, ...(await kvNames(kv, `grant/${reader}/`))])].sort();
  }
}
