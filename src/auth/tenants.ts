// Who may read what. A tenant reads its own adapters, those of the public namespaces (PUBLIC_TENANTS, "demo" by
// default), and those of tenants that granted it access (KV grant/<reader>/<owner>). A tenant's settings (KV
// tenant/<name>: default adapter per task) route requests that name no adapter.
//
// KV reads are cached in the isolate for `ttlMs` (AUTH_CACHE_MS, 10 s): a revoked key, a removed grant or a new
// default takes effect within that time on other isolates (plus KV's own propagation in production), at once on
// the isolate that made the change. After the TTL a cached answer keeps serving while one refresh runs, but only
// for `staleMs` more (AUTH_STALE_MS): when KV cannot be read past that, requests fail (503 auth_unavailable)
// instead of trusting an answer that may have been revoked. "No such key/grant/settings" answers live in a
// separate, smaller cache with a short TTL, so a flood of made-up key ids never pushes out the keys in use.
import type { KeyRecord } from "./keys";
import { DomainError } from "../errors";
import { SingleFlight } from "../store/single-flight";
import { Lru } from "./lru";

export interface TenantSettings {
  defaults: Partial<Record<"classify" | "generate", string>>;
}

/** records, settings and grants that exist (least recently used dropped first) */
export const MAX_ENTRIES = 10_000;
/** answers that something does not exist: the target of random-id floods, so kept apart and small */
export const MAX_MISSING = 2_000;
/** how long "does not exist" is believed: short, so a key or grant created elsewhere works soon after a miss */
export const MISSING_TTL_MS = 2_000;

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

type Entry = { value: unknown; at: number };

export class Directory {
  private found = new Lru<Entry>(MAX_ENTRIES);
  private missing = new Lru<Entry>(MAX_MISSING); // null answers: never evict what `found` holds
  private reads = new SingleFlight<unknown>(); // one KV read per key at a time, however many requests wait
  private epoch = 0; // bumped by every forget: a read begun before a change must not cache the old value
  constructor(
    private ttlMs: number,
    private staleMs: number,
  ) {}

  /** entries in each cache (bounded by MAX_ENTRIES and MAX_MISSING) */
  get sizes() {
    return { found: this.found.size, missing: this.missing.size };
  }

  /** A value younger than the TTL is returned as is. An older one is returned too while one refresh runs
   *  (stale-while-revalidate), for at most `staleMs` past the TTL; a failed refresh leaves its age as it was. A
   *  cached miss is not served stale while KV answers (a new key must not wait), only when the read fails. */
  private read<T>(src: KvSource, key: string): Promise<T | null> {
    const now = Date.now();
    const hit = this.found.get(key);
    if (hit) {
      const age = now - hit.at;
      if (age < this.ttlMs) return Promise.resolve(hit.value as T);
      const refresh = this.refresh(src, key);
      return age < this.ttlMs + this.staleMs ? Promise.resolve(hit.value as T) : (refresh as Promise<T | null>);
    }
    const miss = this.missing.get(key);
    const missTtl = Math.min(MISSING_TTL_MS, this.ttlMs);
    if (miss && now - miss.at < missTtl) return Promise.resolve(null);
    return this.refresh(src, key).catch((e) => {
      if (miss && now - miss.at < missTtl + this.staleMs) return null;
      throw e;
    }) as Promise<T | null>;
  }

  private refresh(src: KvSource, key: string): Promise<unknown> {
    const epoch = this.epoch;
    return this.reads.run(
      key,
      async () => {
        let value: unknown;
        try {
          value = await src.kv.get(key, "json");
        } catch (e) {
          console.warn(`KV ${key}: read failed: ${e instanceof Error ? e.message : e}`);
          throw new DomainError("auth_unavailable", "the key store could not be read; retry later", { "retry-after": "1" });
        }
        if (epoch === this.epoch) {
          const entry = { value, at: Date.now() };
          if (value === null) {
            this.found.delete(key);
            this.missing.set(key, entry);
          } else {
            this.missing.delete(key);
            this.found.set(key, entry);
          }
        }
        return value;
      },
      src.waitUntil,
    );
  }

  forget(key: string) {
    this.found.delete(key);
    this.missing.delete(key);
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
