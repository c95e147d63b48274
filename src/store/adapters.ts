// Adapters by reference: "tenant/name" (the alias, re-read from R2 at most every aliasTtlMs) or
// "tenant/name@version" (immutable: cached without expiry). Parsed adapters sit in an in-isolate LRU bounded in
// bytes; an adapter packed for another backbone is refused (409).
import { parseAdapter, AdapterError, type Adapter } from "../engine/adapter";
import type { BackboneConfig } from "../engine/backbone-config";
import { ApiError } from "../api/errors";

const REF = /^([a-z0-9][a-z0-9_-]{0,62})\/([a-z0-9][a-z0-9_-]{0,62})(?:@([a-f0-9]{16}))?$/;

export interface Resolved {
  ref: string; // tenant/name
  version: string;
  adapter: Adapter;
}

export function parseRef(ref: string): { tenant: string; name: string; version?: string } {
  const m = REF.exec(ref);
  if (!m) throw new ApiError(400, "invalid_adapter_ref", "adapter must be 'tenant/name' or 'tenant/name@<16 hex version>'");
  return { tenant: m[1], name: m[2], version: m[3] };
}

/** LRU over parsed adapters, bounded by the artifacts' byte sizes. */
export class AdapterCache {
  private map = new Map<string, Adapter>();
  bytes = 0;
  constructor(public maxBytes: number) {}
  get(key: string): Adapter | undefined {
    const a = this.map.get(key);
    if (a) { this.map.delete(key); this.map.set(key, a); }
    return a;
  }
  set(key: string, a: Adapter): void {
    if (this.map.has(key)) return;
    this.map.set(key, a);
    this.bytes += a.bytes;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.map.delete(k);
      this.bytes -= v.bytes;
    }
  }
  keys(): string[] { return [...this.map.keys()]; }
}

export class AdapterStore {
  private aliases = new Map<string, { version: string; at: number }>();
  private inflight = new Map<string, Promise<Adapter>>();
  constructor(private bucket: R2Bucket, public cache: AdapterCache, private aliasTtlMs: number) {}

  async version(tenant: string, name: string): Promise<string> {
    const key = `${tenant}/${name}`, hit = this.aliases.get(key), now = Date.now();
    if (hit && now - hit.at < this.aliasTtlMs) return hit.version;
    const o = await this.bucket.get(`adapters/${tenant}/${name}/alias.json`);
    if (!o) throw new ApiError(404, "adapter_not_found", `no adapter ${key}`);
    const doc = await o.json<{ version: string }>();
    this.aliases.set(key, { version: doc.version, at: now });
    return doc.version;
  }

  async resolve(ref: string, backbone: BackboneConfig): Promise<Resolved> {
    const { tenant, name, version: pinned } = parseRef(ref);
    const version = pinned ?? (await this.version(tenant, name));
    const key = `${tenant}/${name}@${version}`;
    let adapter = this.cache.get(key);
    if (!adapter) {
      let p = this.inflight.get(key);
      if (!p) {
        p = this.fetch(tenant, name, version, backbone).finally(() => this.inflight.delete(key));
        this.inflight.set(key, p);
      }
      adapter = await p;
      this.cache.set(key, adapter);
    }
    return { ref: `${tenant}/${name}`, version, adapter };
  }

  private async fetch(tenant: string, name: string, version: string, backbone: BackboneConfig): Promise<Adapter> {
    const o = await this.bucket.get(`adapters/${tenant}/${name}/versions/${version}.safetensors`);
    if (!o) throw new ApiError(404, "adapter_not_found", `no version ${version} of ${tenant}/${name}`);
    try {
      return await parseAdapter(await o.arrayBuffer(), backbone);
    } catch (e) {
      if (e instanceof AdapterError)
        throw e.code === "backbone_mismatch"
          ? new ApiError(409, "backbone_mismatch", `${tenant}/${name}: ${e.message}`)
          : new ApiError(502, "adapter_corrupt", `${tenant}/${name}@${version} is damaged in storage: ${e.message}`);
      throw e;
    }
  }
}
