// Adapters by reference: "tenant/name" (the alias, re-read from R2 at most every aliasTtlMs; at once on the
// isolate that moved it) or "tenant/name@version" (immutable: cached without expiry). Parsed adapters sit in an
// in-isolate LRU bounded in bytes; an adapter packed for another backbone is refused (409), a damaged one (502).
import { parseAdapter, AdapterError, type Adapter } from "../engine/adapter";
import type { BackboneConfig } from "../engine/backbone-config";
import { DomainError } from "../errors";
import { getBytes, getJson, type Storage } from "./r2";
import { SingleFlight } from "./single-flight";
import { aliasOf, type AdapterRef } from "./refs";

export interface Resolved {
  ref: string; // tenant/name
  version: string;
  adapter: Adapter;
  cached: boolean; // found parsed in this isolate's cache (no R2 read)
}

/** adapters/<tenant>/<name>/alias.json: the current version and the earlier ones, newest first */
export interface AliasDoc {
  alias: string;
  version: string;
  key: string;
  backbone: string;
  kind: string;
  task: string;
  updated: string;
  history: string[];
}

export const aliasKey = (tenant: string, name: string) => `adapters/${tenant}/${name}/alias.json`;
export const versionKey = (tenant: string, name: string, version: string) => `adapters/${tenant}/${name}/versions/${version}.safetensors`;

/** LRU over parsed adapters, bounded by the artifacts' byte sizes. */
export class AdapterCache {
  private map = new Map<string, Adapter>();
  bytes = 0;
  constructor(public maxBytes: number) {}
  get(key: string): Adapter | undefined {
    const a = this.map.get(key);
    if (a) {
      this.map.delete(key);
      this.map.set(key, a);
    }
    return a;
  }
  set(key: string, a: Adapter): void {
    if (this.map.has(key)) return;
    this.map.set(key, a);
    this.bytes += a.memoryBytes;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.map.delete(k);
      this.bytes -= v.memoryBytes;
    }
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
}

/** Per-isolate state (alias cache, parsed adapters, reads in flight); each call names the storage it reads. */
export class AdapterStore {
  private aliases = new Map<string, { version: string; at: number }>();
  private loads = new SingleFlight<Adapter>();
  private aliasReads = new SingleFlight<string>();
  private epoch = 0; // bumped by every alias move on this isolate
  constructor(
    public cache: AdapterCache,
    private aliasTtlMs: number,
  ) {}

  /** after a publish or rollback on this isolate: the next request re-reads the alias */
  forgetAlias(tenant: string, name: string) {
    this.aliases.delete(`${tenant}/${name}`);
    this.aliasReads.forget(`${tenant}/${name}`); // a read begun before the move may carry the old version
    this.epoch++;
  }

  /** The alias's current version. Concurrent refreshes of one alias share one R2 read; when R2 fails during a
   *  refresh, the version this isolate already knows keeps serving (for another TTL) instead of failing requests. */
  async version(io: Storage, tenant: string, name: string): Promise<string> {
    const key = `${tenant}/${name}`,
      hit = this.aliases.get(key);
    if (hit && Date.now() - hit.at < this.aliasTtlMs) return hit.version;
    const epoch = this.epoch;
    return this.aliasReads.run(
      key,
      async () => {
        let version: string;
        try {
          const doc = await getJson<AliasDoc>(io, aliasKey(tenant, name));
          if (!doc) throw new DomainError("adapter_not_found", `no adapter ${key}`);
          version = doc.value.version;
        } catch (e) {
          const stale = this.aliases.get(key);
          if (!(stale && e instanceof DomainError && e.code === "storage_unavailable")) throw e;
          version = stale.version;
        }
        // a read that began before this isolate moved an alias must not cache what it read
        if (epoch === this.epoch) this.aliases.set(key, { version, at: Date.now() });
        return version;
      },
      io.waitUntil,
    );
  }

  async resolve(io: Storage, ref: AdapterRef, backbone: BackboneConfig): Promise<Resolved> {
    const { tenant, name, version: pinned } = ref;
    const version = pinned ?? (await this.version(io, tenant, name));
    const key = `${tenant}/${name}@${version}`;
    let adapter = this.cache.get(key);
    const cached = adapter !== undefined;
    if (!adapter) {
      adapter = await this.loads.run(key, () => load(io, tenant, name, version, backbone), io.waitUntil);
      this.cache.set(key, adapter);
    }
    return { ref: aliasOf(ref), version, adapter, cached };
  }
}

/** one stored version, parsed and checked against the backbone */
export async function load(io: Storage, tenant: string, name: string, version: string, backbone: BackboneConfig): Promise<Adapter> {
  const bytes = await getBytes(io, versionKey(tenant, name, version));
  if (!bytes) throw new DomainError("adapter_not_found", `no version ${version} of ${tenant}/${name}`);
  try {
    return await parseAdapter(bytes, backbone);
  } catch (e) {
    if (e instanceof AdapterError)
      throw e.code === "backbone_mismatch"
        ? new DomainError("backbone_mismatch", `${tenant}/${name}: ${e.message}`)
        : new DomainError("adapter_corrupt", `${tenant}/${name}@${version} is damaged in storage: ${e.message}`);
    throw e;
  }
}
