#!/usr/bin/env node
// Scores classification adapters as the edge serves them: a fresh `wrangler dev` on a free port with its own temp
// state, seeded (scripts/seed-local-r2.mjs), each artifact published into that bucket (scripts/publish-local.mjs) as
// <tenant>/<name> of the seed's first read key, and each eval file sent through POST /v1/classify in batches. The
// figures therefore cover the worker's tokenizer, prompt budget, int8 graph and readout, not PyTorch's.
//   npm run score:served -- --adapter runs/x/adapter.safetensors --eval data/eval.jsonl [--adapter B --eval F2 ...]
//     [--name x ...] [--batch 32] [--out .cache/score-served.json]
// --adapter and --eval pair up in order; --name (once per adapter) is the alias name, by default from the file name.
// Eval rows are JSONL {"text", "label"}; a text over the worker's MAX_TEXT_CHARS is cut to it (the worker reads only
// its first MAX_TOKENS tokens anyway) and counted as texts_cut. Prints one line per adapter; writes the JSON with
// each adapter's file, sha256, eval file, examples, accuracy, macro_f1 (the mean F1 of the labels that occur in the
// rows or the answers, as scripts/py tune reports it), wall_s (its classify requests) and each row's predicted label.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort, startDev } from "./lib/dev-server.mjs";
import { request } from "./lib/http.mjs";
import { DEV_KEYS, NAME } from "./lib/keys.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const fail = (m) => {
  console.error(`error: ${m}`);
  process.exit(2);
};

let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      adapter: { type: "string", multiple: true, default: [] },
      eval: { type: "string", multiple: true, default: [] },
      name: { type: "string", multiple: true, default: [] },
      batch: { type: "string", default: "32" },
      out: { type: "string", default: join(ROOT, ".cache/score-served.json") },
    },
  }));
} catch (e) {
  fail(e.message);
}
const OUT = resolve(opt.out); // paths as given, from the caller's folder; the work below runs in the repo root
if (!opt.adapter.length || opt.adapter.length !== opt.eval.length)
  fail(`give --adapter FILE --eval FILE pairs (got ${opt.adapter.length} --adapter, ${opt.eval.length} --eval)`);
if (opt.name.length && opt.name.length !== opt.adapter.length)
  fail(`give one --name per --adapter (got ${opt.name.length} for ${opt.adapter.length})`);
const BATCH = Number(opt.batch);
const CALLER = process.cwd();
process.chdir(ROOT); // the store code, the seed and publish-local read repo-relative paths
// the worker's own limits, from src/config.ts, so that no request is refused for its size; imported after the
// chdir, as esbuild takes its working folder when it loads
const { SETTINGS } = await (await import("./lib/local-store.mjs")).storeCode();
const [MAX_ITEMS, MAX_TEXT_CHARS] = [SETTINGS.MAX_ITEMS[0], SETTINGS.MAX_TEXT_CHARS[0]];
if (!Number.isInteger(BATCH) || BATCH < 1 || BATCH > MAX_ITEMS)
  fail(`--batch must be a whole number from 1 to ${MAX_ITEMS} (the worker's MAX_ITEMS)`);

/** the artifact's safetensors metadata, or null when unreadable (publish then answers with the worker's refusal) */
function metadata(buf) {
  try {
    const n = Number(buf.readBigUInt64LE(0));
    return JSON.parse(buf.subarray(8, 8 + n).toString("utf8")).__metadata__ ?? null;
  } catch {
    return null;
  }
}

function readEval(path) {
  const abs = resolve(CALLER, path);
  if (!existsSync(abs)) fail(`${path}: no such file`);
  const lines = readFileSync(abs, "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  const rows = lines.map((line, i) => {
    const where = `${path}:${i + 1}`;
    if (!line.trim()) fail(`${where}: empty line`);
    let r;
    try {
      r = JSON.parse(line);
    } catch (e) {
      fail(`${where}: not valid JSON (${e.message})`);
    }
    if (!r || typeof r !== "object" || Array.isArray(r)) fail(`${where}: expected a JSON object`);
    for (const k of ["text", "label"]) {
      if (!(k in r)) fail(`${where}: missing "${k}"`);
      if (typeof r[k] !== "string") fail(`${where}: "${k}" must be a string`);
      if (!r[k].trim()) fail(`${where}: empty "${k}"`);
    }
    return { text: r.text, label: r.label };
  });
  if (!rows.length) fail(`${path}: no examples`);
  return rows;
}

/** macro-F1 over the labels seen in gold or predictions, as softedge.tuning.tasks.classification_metrics */
function metrics(gold, pred, labels) {
  const accuracy = gold.filter((g, i) => g === pred[i]).length / gold.length;
  const f1s = [];
  for (const l of labels) {
    let tp = 0,
      fp = 0,
      fn = 0;
    gold.forEach((g, i) => {
      if (g === l && pred[i] === l) tp++;
      else if (pred[i] === l) fp++;
      else if (g === l) fn++;
    });
    if (tp + fp + fn) f1s.push((2 * tp) / (2 * tp + fp + fn));
  }
  return { accuracy, macro_f1: f1s.length ? f1s.reduce((a, b) => a + b, 0) / f1s.length : 0 };
}

const [KEY, TENANT] = DEV_KEYS.find(([, , scope]) => scope === "read"); // a tenant reads its own adapters
const taken = new Set();
/** the alias name: --name, or the file name ("adapter" takes its run folder's), made a valid and unused name */
function aliasName(file, i) {
  if (opt.name.length) {
    if (!NAME.test(opt.name[i])) fail(`--name ${JSON.stringify(opt.name[i])}: lowercase letters, digits, '-' or '_' (at most 63)`);
    if (taken.has(opt.name[i])) fail(`--name ${opt.name[i]} is given twice`);
    taken.add(opt.name[i]);
    return opt.name[i];
  }
  let stem = basename(file).replace(/\.safetensors$/, "");
  if (stem === "adapter") stem = basename(dirname(resolve(CALLER, file)));
  stem = (
    stem
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "") || "adapter"
  ).slice(0, 56);
  let name = stem;
  for (let k = 2; taken.has(name); k++) name = `${stem}-${k}`;
  taken.add(name);
  return name;
}

// every input is read and checked before a server starts
const jobs = opt.adapter.map((a, i) => {
  const file = resolve(CALLER, a);
  if (!existsSync(file)) fail(`${a}: no such file`);
  const bytes = readFileSync(file);
  const rows = readEval(opt.eval[i]);
  const meta = metadata(bytes);
  if (meta) {
    if (meta.task !== "classify") fail(`${a}: a ${meta.task} adapter; only classification adapters are scored`);
    let names = null;
    try {
      names = JSON.parse(meta.labels).map((l) => l.name);
    } catch {} // a damaged label list is the worker's to refuse, at publish
    if (names) {
      const n = rows.findIndex((r) => !names.includes(r.label));
      if (n >= 0) fail(`${opt.eval[i]}:${n + 1}: label ${JSON.stringify(rows[n].label)} is not one of ${a}'s labels (${names.join(", ")})`);
    }
  }
  return { arg: a, file, evalArg: opt.eval[i], rows, sha256: createHash("sha256").update(bytes).digest("hex"), name: aliasName(a, i) };
});

const state = mkdtempSync(join(tmpdir(), "softedge-score-"));
let dev;
const stop = () => {
  dev?.stop();
  rmSync(state, { recursive: true, force: true });
};
for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, () => {
    stop();
    process.exit(130);
  });
/** a child script's output; its own `error: ...` line becomes ours */
const runScript = (script, args) => {
  try {
    return execFileSync("node", [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const line = (e.stderr || e.message)
      .trim()
      .split("\n")
      .findLast((l) => l.startsWith("error: "));
    throw new Error(line ? line.slice(7) : `${script} failed:\n${e.stderr}`);
  }
};

try {
  const [port, inspector] = [await freePort(), await freePort()];
  dev = await startDev({
    state,
    port,
    seed: false,
    devArgs: ["--inspector-port", String(inspector)],
    // no runtime holds the state yet: seed it, then publish each artifact through the worker's own store code
    beforeStart: () => {
      runScript("scripts/seed-local-r2.mjs", ["--persist-to", state]);
      for (const j of jobs) {
        let out;
        try {
          out = runScript("scripts/publish-local.mjs", ["publish", j.file, "--alias", `${TENANT}/${j.name}`, "--persist-to", state]);
        } catch (e) {
          throw new Error(`${j.arg}: ${e.message}`);
        }
        j.version = JSON.parse(out).version;
      }
    },
  });
  process.stderr.write(`wrangler dev on ${dev.base}, serving ${jobs.map((j) => `${TENANT}/${j.name}`).join(", ")}\n`);
  const results = [];
  for (const j of jobs) {
    const alias = `${TENANT}/${j.name}`;
    const predicted = [];
    let truncated = 0,
      cut = 0;
    const t0 = performance.now();
    for (let s = 0; s < j.rows.length; s += BATCH) {
      const items = j.rows.slice(s, s + BATCH).map(({ text }) => {
        if (text.length <= MAX_TEXT_CHARS) return { adapter: alias, text };
        cut++;
        // never half a surrogate pair
        const end = /[\ud800-\udbff]/.test(text[MAX_TEXT_CHARS - 1]) ? MAX_TEXT_CHARS - 1 : MAX_TEXT_CHARS;
        return { adapter: alias, text: text.slice(0, end) };
      });
      const r = await request(`${dev.base}/v1/classify`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ items }),
        idempotent: true, // classifying changes nothing
      });
      if (!r.ok) throw new Error(`POST /v1/classify for ${j.evalArg} rows ${s + 1}-${s + items.length}: ${r.status} ${await r.text()}`);
      const { results: answers } = await r.json();
      for (const a of answers) {
        if (a.version !== j.version) throw new Error(`${alias} answered with version ${a.version}, not the published ${j.version}`);
        predicted.push(a.label);
        if (a.truncated) truncated++;
      }
    }
    const wall_s = (performance.now() - t0) / 1000;
    const gold = j.rows.map((r) => r.label);
    const m = metrics(gold, predicted, [...new Set([...gold, ...predicted])].sort());
    results.push({
      adapter: j.arg,
      sha256: j.sha256,
      eval: j.evalArg,
      examples: gold.length,
      accuracy: m.accuracy,
      macro_f1: m.macro_f1,
      wall_s,
      alias,
      version: j.version,
      texts_cut: cut,
      truncated,
      predicted,
    });
    console.log(
      `${j.arg} on ${j.evalArg}: accuracy ${m.accuracy.toFixed(4)}, macro-F1 ${m.macro_f1.toFixed(4)} ` +
        `(${gold.length} examples, ${truncated} cut to the token budget${cut ? `, ${cut} to ${MAX_TEXT_CHARS} characters` : ""}, ${wall_s.toFixed(1)} s)`,
    );
  }
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(`${OUT}.tmp`, JSON.stringify({ served_by: "wrangler dev", batch: BATCH, results }, null, 2) + "\n");
  renameSync(`${OUT}.tmp`, OUT);
} catch (e) {
  stop();
  fail(e.message);
}
stop();
