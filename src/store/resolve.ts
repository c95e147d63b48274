// One function from (who is asking, which adapter, for which task) to a loaded adapter: the reference is already
// parsed (by the request schema), readability is the caller's tenant rule, the backbone config is fetched once per
// request by whoever builds the Resolver.
import type { BackboneConfig } from "../engine/backbone-config";
import { DomainError } from "../errors";
import type { AdapterStore, Resolved } from "./adapters";
import type { Storage } from "./r2";
import type { AdapterRef } from "./refs";

export interface Resolver {
  storage: Storage;
  adapters: AdapterStore;
  backbone: BackboneConfig;
  /** may the caller read this tenant's adapters? (own, public or granted) */
  canRead(owner: string): Promise<boolean>;
}

export async function resolveAdapter(r: Resolver, ref: AdapterRef, task?: "classify" | "generate"): Promise<Resolved> {
  // another tenant's adapters are invisible unless public or granted: the same 404 whether or not they exist
  if (!(await r.canRead(ref.tenant))) throw new DomainError("adapter_not_found", "no such adapter is visible to this key");
  const out = await r.adapters.resolve(r.storage, ref, r.backbone);
  if (task && out.adapter.task !== task) throw new DomainError("wrong_task", `${out.ref} is a ${out.adapter.task} adapter, not a ${task} one`);
  return out;
}
