// Names and adapter references, defined once for the worker (scripts/lib/keys.mjs and scripts/softedge/publish.py
// mirror the name rule for the offline side). A reference is "tenant/name" (the alias) or "tenant/name@version"
// (an immutable version: 16 hex digits of the artifact's sha256).
import { DomainError } from "../errors";

export const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const VERSION = /^[a-f0-9]{16}$/;
const REF = /^([a-z0-9][a-z0-9_-]{0,62})\/([a-z0-9][a-z0-9_-]{0,62})(?:@([a-f0-9]{16}))?$/;
export const REF_RULE = "adapter must be 'tenant/name' or 'tenant/name@<16 hex version>'";

export interface AdapterRef {
  tenant: string;
  name: string;
  version?: string;
}

/** null when `s` is not a reference */
export function tryParseRef(s: string): AdapterRef | null {
  const m = REF.exec(s);
  return m ? { tenant: m[1], name: m[2], version: m[3] } : null;
}

export function parseRef(s: string): AdapterRef {
  const r = tryParseRef(s);
  if (!r) throw new DomainError("invalid_adapter_ref", REF_RULE);
  return r;
}

export const aliasOf = (r: AdapterRef) => `${r.tenant}/${r.name}`;
export const refString = (r: AdapterRef) => aliasOf(r) + (r.version ? `@${r.version}` : "");
