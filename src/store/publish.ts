// Publishing through the API: an artifact is validated (safetensors header and shapes, metadata, checksum,
// backbone id) before anything is written; the immutable version object (key = first 16 hex of its sha256) is
// written first, and only then does the alias move. Alias moves are compare-and-swap on the alias object's etag,
// so concurrent publishes and rollbacks never lose one another's history.
import type { Tokenizer } from "@huggingface/tokenizers";
import { parseAdapter, AdapterError, tokenBudget, type Adapter } from "../engine/adapter";
import type { BackboneConfig } from "../engine/backbone-config";
import type { Limits } from "../config";
import { sha256Hex } from "../engine/hash";
import { templateParts } from "../engine/prompt";
import { DomainError } from "../errors";
import { aliasKey, load, versionKey, type AliasDoc } from "./adapters";
import { getBytes, getJson, listPages, reliably, type Storage } from "./r2";

const HISTORY = 50; // earlier versions kept in alias.json (the objects themselves are never deleted)
const CAS_ATTEMPTS = 8;

const now = () => new Date().toISOString();
const equal = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

/** Read-modify-write of alias.json guarded by its etag (or, for a new alias, by its absence). `change` returns the new document, or null for "leave it". */
async function moveAlias(io: Storage, tenant: string, name: string, change: (cur: AliasDoc | null) => Promise<AliasDoc | null>) {
  const key = aliasKey(tenant, name);
  for (let i = 0; i < CAS_ATTEMPTS; i++) {
    const cur = await getJson<AliasDoc>(io, key);
    const next = await change(cur?.value ?? null);
    if (!next) return { doc: cur!.value, previous: cur!.value.version, moved: false };
    const body = JSON.stringify(next);
    const put = await reliably(io, `put ${key}`, () =>
      io.bucket.put(key, body, {
        httpMetadata: { contentType: "application/json" },
        onlyIf: cur ? { etagMatches: cur.etag } : { etagDoesNotMatch: "*" },
      }),
    );
    if (put) return { doc: next, previous: cur?.value.version ?? null, moved: true };
    // someone else moved the alias between our read and write: read again
  }
  throw new DomainError("alias_conflict", "the alias kept changing under concurrent updates; retry");
}

export interface Published {
  alias: string;
  version: string;
  previous: string | null;
  moved: boolean;
  bytes: number;
  kind: string;
  task: string;
}

/** What a publish checks an adapter against besides its backbone's config: the worker's prompt limits and the
 *  backbone's tokenizer (read before the model, and only once the artifact itself is valid). */
export interface ServingLimits {
  limits: Pick<Limits, "maxTokens" | "maxNewTokens">;
  tokenizer: () => Promise<Tokenizer>;
}

/** check an uploaded artifact against the backbone: 422 adapter_invalid with the reason, or 409 backbone_mismatch */
export async function validateUpload(bytes: Uint8Array, backbone: BackboneConfig, serving: ServingLimits): Promise<Adapter> {
  if (!bytes.byteLength) throw new DomainError("adapter_invalid", "the request body is empty; send the .safetensors artifact");
  let adapter: Adapter;
  try {
    adapter = await parseAdapter(bytes, backbone);
  } catch (e) {
    if (!(e instanceof AdapterError)) throw e;
    if (e.code === "backbone_mismatch") throw new DomainError("backbone_mismatch", e.message);
    throw new DomainError("adapter_invalid", `not a valid adapter artifact: ${e.message}`);
  }
  const why = fitsServing(adapter, backbone, serving.limits, await serving.tokenizer());
  if (why) throw new DomainError("adapter_invalid", `the adapter does not fit this worker's limits: ${why}`);
  return adapter;
}

/**
 * Why the prompts this adapter builds would not fit, or null. The template's own tokens (its field left empty, and
 * its tail alone: the tail is kept whole when a text is cut) must leave room for at least one token of the text
 * within the adapter's budget (training.max_tokens, at most MAX_TOKENS); and the prefix, that budget and what runs
 * after it (MAX_NEW_TOKENS for generation, a verbalizer's longest label word) must fit the backbone's positions.
 * Counted with the tokenizer rather than bounded by characters: one character may take several tokens (byte
 * fallback) and one token many characters, so a character bound is either unsafe or refuses real templates.
 */
export function fitsServing(a: Adapter, backbone: BackboneConfig, limits: ServingLimits["limits"], tok: Tokenizer): string | null {
  const field = a.task === "classify" ? "text" : "input";
  const budget = tokenBudget(a, limits.maxTokens);
  const t = templateParts(tok, a.template, field);
  const own = Math.max(t.empty, t.tail.length);
  if (own >= budget) return `the template takes ${own} tokens of the ${budget} a prompt may have, leaving none for {${field}}`;
  const after = a.task === "generate" ? limits.maxNewTokens : Math.max(0, ...a.labels.flatMap((l) => l.token_ids.map((w) => w.length - 1)));
  const positions = a.virtualTokens + budget + after;
  if (positions > backbone.max_positions)
    return `${a.virtualTokens} virtual tokens + ${budget} prompt tokens + ${after} after them take ${positions} positions, over the backbone's ${backbone.max_positions}`;
  return null;
}

export async function publish(
  io: Storage,
  tenant: string,
  name: string,
  bytes: Uint8Array,
  backbone: BackboneConfig,
  serving: ServingLimits,
): Promise<Published> {
  const adapter = await validateUpload(bytes, backbone, serving);
  const sha = await sha256Hex(bytes);
  const version = sha.slice(0, 16),
    vkey = versionKey(tenant, name, version);
  // content-addressed: write unless the same bytes are there already (a damaged object under this key is replaced)
  const stored = await getBytes(io, vkey);
  if (!stored || !equal(stored, bytes))
    await reliably(io, `put ${vkey}`, () =>
      io.bucket.put(vkey, bytes, {
        sha256: sha,
        httpMetadata: { contentType: "application/octet-stream" },
        customMetadata: { kind: adapter.kind, task: adapter.task, backbone: adapter.backbone },
      }),
    );
  const r = await moveAlias(io, tenant, name, async (cur) =>
    cur?.version === version
      ? null
      : {
          alias: `${tenant}/${name}`,
          version,
          key: vkey,
          backbone: adapter.backbone,
          kind: adapter.kind,
          task: adapter.task,
          updated: now(),
          history: cur ? [cur.version, ...cur.history.filter((v) => v !== version)].slice(0, HISTORY) : [],
        },
  );
  return {
    alias: `${tenant}/${name}`,
    version,
    previous: r.previous,
    moved: r.moved,
    bytes: bytes.byteLength,
    kind: adapter.kind,
    task: adapter.task,
  };
}

/** Point the alias at `to` (default: the version before the current one). The target must load for this backbone. */
export async function rollback(io: Storage, tenant: string, name: string, to: string | undefined, backbone: BackboneConfig) {
  const r = await moveAlias(io, tenant, name, async (cur) => {
    if (!cur) throw new DomainError("adapter_not_found", `no adapter ${tenant}/${name}`);
    const target = to ?? cur.history[0];
    if (!target) throw new DomainError("no_previous_version", `${tenant}/${name} has no earlier version to roll back to`);
    if (target === cur.version) return null;
    if (!cur.history.includes(target)) throw new DomainError("version_not_found", `version ${target} was never published as ${tenant}/${name}`);
    const a = await load(io, tenant, name, target, backbone); // refuses a damaged or foreign version before the alias moves
    return {
      ...cur,
      version: target,
      key: versionKey(tenant, name, target),
      kind: a.kind,
      task: a.task,
      backbone: a.backbone,
      updated: now(),
      history: [cur.version, ...cur.history].filter((v) => v !== target).slice(0, HISTORY),
    };
  });
  return { alias: `${tenant}/${name}`, version: r.doc.version, previous: r.previous, moved: r.moved };
}

/** the alias document and every stored version object (newest upload first) */
export async function versions(io: Storage, tenant: string, name: string) {
  const doc = await getJson<AliasDoc>(io, aliasKey(tenant, name));
  if (!doc) throw new DomainError("adapter_not_found", `no adapter ${tenant}/${name}`);
  const prefix = `adapters/${tenant}/${name}/versions/`;
  const out: { version: string; bytes: number; uploaded: string; current: boolean }[] = [];
  for await (const page of listPages(io, { prefix }))
    for (const o of page.objects) {
      const version = o.key.slice(prefix.length).replace(/\.safetensors$/, "");
      out.push({ version, bytes: o.size, uploaded: o.uploaded.toISOString(), current: version === doc.value.version });
    }
  out.sort((a, b) => b.uploaded.localeCompare(a.uploaded));
  return { alias: `${tenant}/${name}`, current: doc.value.version, history: doc.value.history, updated: doc.value.updated, versions: out };
}
