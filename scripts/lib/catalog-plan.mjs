// What the default catalog puts in R2, in the layout src/store reads: the backbone bundle (backbones/<id>/...),
// catalog.json (the default backbone), one immutable content-addressed version per adapter
// (adapters/<tenant>/<name>/versions/<sha256[:16]>.safetensors) and its alias document. The local seed
// (seed-local-r2.mjs) and the Cloudflare deploy (deploy.mjs) both write exactly this plan, with the same alias rule.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

/** Reads and checks adapters/catalog.json and the files it names; throws an Error with a one-line reason. */
export function catalogPlan(root = ".") {
  const catPath = join(root, "adapters", "catalog.json");
  if (!existsSync(catPath)) throw new Error("no adapters/catalog.json");
  const catalog = JSON.parse(readFileSync(catPath, "utf8"));
  const id = catalog.default_backbone;
  if (typeof id !== "string" || !id) throw new Error("adapters/catalog.json names no default_backbone");
  const objects = [];
  const add = (key, bytes, file) => objects.push({ key, bytes, file, size: bytes.length, sha256: sha256(bytes) });
  for (const f of ["config.json", "tokenizer.json", "model.onnx"]) {
    const file = join(root, "adapters", "backbones", id, f);
    if (!existsSync(file)) throw new Error(`backbone ${id}: missing ${f}`);
    add(`backbones/${id}/${f}`, readFileSync(file), file);
  }
  add("catalog.json", Buffer.from(JSON.stringify({ default_backbone: id })), null);
  const aliases = [];
  for (const entry of catalog.adapters ?? []) {
    const file = join(root, "adapters", entry.file);
    if (!existsSync(file)) throw new Error(`${entry.alias}: missing ${entry.file}`);
    const buf = readFileSync(file);
    const backbone = adapterBackbone(buf);
    if (backbone !== id) throw new Error(`${entry.alias}: packed for backbone ${backbone}, the catalog serves ${id}`);
    const version = sha256(buf).slice(0, 16);
    const base = `adapters/${entry.alias}`;
    add(`${base}/versions/${version}.safetensors`, buf, file);
    aliases.push({
      alias: entry.alias,
      key: `${base}/alias.json`,
      doc: {
        alias: entry.alias,
        version,
        key: `${base}/versions/${version}.safetensors`,
        backbone: id,
        kind: entry.kind,
        task: entry.task,
        updated: new Date(0).toISOString(),
        history: [],
      },
    });
  }
  return { backbone: id, objects, aliases };
}

/** The alias rule: write it when absent, or when it points at an adapter for another backbone (which could not be
 *  served). An alias already on this backbone may have been moved by a publish or rollback: never undo that. */
export const shouldWriteAlias = (current, backbone) => !current || current.backbone !== backbone;

/** The backbone id in a safetensors adapter's metadata (null when unreadable). */
function adapterBackbone(buf) {
  try {
    const n = Number(buf.readBigUInt64LE(0));
    return JSON.parse(buf.subarray(8, 8 + n).toString("utf8")).__metadata__?.backbone ?? null;
  } catch {
    return null;
  }
}
