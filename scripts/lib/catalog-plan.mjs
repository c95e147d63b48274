// What the default catalog puts in R2: the backbone bundle (backbones/<id>/...) and catalog.json (the default
// backbone), written as plain objects, and the default adapters, which are published: through the worker's own
// store code (src/store/publish.ts: validation, the version object, compare-and-swap on alias.json), run in Node by
// the local seed (seed-local-r2.mjs) and through the deployed worker's API by the Cloudflare deploy
// (deploy.mjs, lib/publish-catalog.mjs), each only when its alias is absent or on another backbone.
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
  const adapters = [];
  for (const entry of catalog.adapters ?? []) {
    const file = join(root, "adapters", entry.file);
    if (!existsSync(file)) throw new Error(`${entry.alias}: missing ${entry.file}`);
    const bytes = readFileSync(file);
    const backbone = adapterBackbone(bytes);
    if (backbone !== id) throw new Error(`${entry.alias}: packed for backbone ${backbone}, the catalog serves ${id}`);
    adapters.push({ alias: entry.alias, task: entry.task, file, bytes, size: bytes.length, version: sha256(bytes).slice(0, 16) });
  }
  return { backbone: id, objects, adapters };
}

/** The alias rule: write it when absent, or when it points at an adapter for another backbone (which could not be
 *  served). An alias already on this backbone may have been moved by a publish or rollback: never undo that. */
export const shouldWriteAlias = (current, backbone) => !current || current.backbone !== backbone;

/** The backbone id in a safetensors adapter's metadata (null when unreadable). */
export function adapterBackbone(buf) {
  try {
    const n = Number(buf.readBigUInt64LE(0));
    return JSON.parse(buf.subarray(8, 8 + n).toString("utf8")).__metadata__?.backbone ?? null;
  } catch {
    return null;
  }
}
