// Names and adapter references, defined once (the offline side writes aliases through this code too:
// scripts/lib/local-store.mjs; scripts/lib/keys.mjs, plain JS run by Node, mirrors NAME, and test/js/cli.test.ts
// checks that the two agree). A reference is "tenant/name" (the alias) or "tenant/name@version"
// (an immutable version: 16 hex digits of the artifact's sha256).
import { DomainError } from "../errors";

export const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const VERSION = /^[a-f0-9]{16}$/;
const part = NAME.source.slice(1, -1),
  ver = VERSION.source.slice(1, -1);
const REF = new RegExp(`^(${part})\\/(${part})(?:@(${ver}))?$`);
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
