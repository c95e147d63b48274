// API keys: "se_<id>_<secret>". KV (binding TENANTS) holds key/<id> -> {tenant, scope, hash}; the hash is the
// SHA-256 of the whole key, compared in constant time. The key CLI (scripts/keys.mjs, scripts/lib/keys.mjs) writes
// the same format.

export const SCOPES = ["read", "publish", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export interface KeyRecord {
  tenant: string;
  scope: Scope;
  hash: string; // hex sha256 of the whole key
  created?: string;
  label?: string;
}
export interface Principal {
  tenant: string;
  scope: Scope;
  keyId: string;
}

const KEY = /^se_([0-9a-f]{12})_([A-Za-z0-9_-]{16,128})$/;

/** scopes are ordered: admin can do what publish can, publish what read can */
export const allows = (have: Scope, need: Scope) => SCOPES.indexOf(have) >= SCOPES.indexOf(need);

export function keyId(key: string): string | null {
  return KEY.exec(key)?.[1] ?? null;
}

const digest = async (s: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
const fromHex = (h: string) => new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));

/** Does `key` match the record? Both sides are 32-byte digests, compared with workerd's timingSafeEqual. */
export async function verify(key: string, record: KeyRecord | null): Promise<boolean> {
  const got = await digest(key);
  // an unknown id is hashed and compared too, so a miss costs what a hit costs
  const want = record && /^[0-9a-f]{64}$/.test(record.hash) ? fromHex(record.hash) : new Uint8Array(32);
  const same = crypto.subtle.timingSafeEqual(got, want);
  return same && record !== null && (SCOPES as readonly string[]).includes(record.scope);
}
