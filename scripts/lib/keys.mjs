// API keys, as the key CLI writes them and the worker reads them (src/auth/keys.ts mirrors the format):
//   key  = "se_<id>_<secret>"   id: 12 hex digits (public, names the key), secret: 32 random bytes, base64url
//   KV   = key/<id> -> {"tenant", "scope", "hash": sha256 hex of the whole key, "created", "label"}
// Only the hash is stored; the key itself is shown once, when it is created. Web Crypto only, so this module runs
// in Node and in workerd (the worker tests create their keys with it). NAME mirrors src/store/refs.ts (test/js/cli.test.ts).
export const SCOPES = ["read", "publish", "admin"];
export const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** well-known keys that `npm start` seeds into the LOCAL state only (README examples, bench, load): [key, tenant, scope] */
export const DEV_KEYS = [
  ["se_0000000000a1_local-dev-acme-admin", "acme", "admin"],
  ["se_0000000000a2_local-dev-acme-read", "acme", "read"],
  ["se_0000000000b1_local-dev-globex-admin", "globex", "admin"],
  ["se_0000000000c1_local-dev-initech-read", "initech", "read"],
];

const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const b64url = (b) =>
  btoa(String.fromCharCode(...b))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** a new random key and the KV entry that authorises it */
export async function createKey({ tenant, scope, label = "" }) {
  if (!NAME.test(tenant ?? "")) throw new Error("tenant must be lowercase letters, digits, '-' or '_' (at most 63)");
  if (!SCOPES.includes(scope)) throw new Error(`scope must be one of ${SCOPES.join(", ")}`);
  const id = hex(crypto.getRandomValues(new Uint8Array(6)));
  const key = `se_${id}_${b64url(crypto.getRandomValues(new Uint8Array(32)))}`;
  return { id, key, kvKey: `key/${id}`, record: await keyRecord(key, { tenant, scope, label }) };
}

/** the KV value that authorises `key` (only its hash is kept) */
export async function keyRecord(key, { tenant, scope, label = "" }) {
  return { tenant, scope, hash: await sha256Hex(key), created: new Date().toISOString(), label };
}
