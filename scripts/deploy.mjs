#!/usr/bin/env node
// Deploys softedge to Cloudflare: the R2 bucket and KV namespace (created when missing), the default backbone and
// catalog.json uploaded to R2 (scripts/lib/catalog-plan.mjs), a first admin key (to a file), `wrangler deploy`,
// then the default adapters published through the deployed worker's own API (scripts/lib/publish-catalog.mjs, with a
// temporary publish key per tenant, deleted afterwards): one validation and one compare-and-swap on alias.json for
// every writer. An alias is published only when absent or on another backbone.
//   npm run deploy -- --dry-run            no network, no credentials: builds the bundle, checks its gzip size
//                                          against the plan limits, checks the catalog, prints the plan
//   npm run deploy [-- --tenant acme] [--url https://softedge.<you>.workers.dev] [--key-file PATH]
//                                          needs CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID in the environment;
//                                          --url when wrangler's output names no workers.dev address (a custom route);
//                                          the first admin key goes to --key-file (softedge-admin-key-<tenant>.txt, mode
//                                          0600), never to stdout, where CI logs would keep it
// Idempotent and resumable: an object is uploaded only when R2's deploy manifest (deploy/manifest.json, sha256 per
// key, updated after each upload) does not already list its hash; versions go up before any alias names them. The
// KV namespace id is written to wrangler.deploy.toml (git-ignored: account-specific), which `wrangler deploy` reads.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { catalogPlan } from "./lib/catalog-plan.mjs";
import { publishCatalog } from "./lib/publish-catalog.mjs";
import { createKey } from "./lib/keys.mjs";
import { SecretFileExists, writeSecretFile } from "./lib/secret-file.mjs";

// Workers script size limits after compression (developers.cloudflare.com/workers/platform/limits)
const PLANS = [
  ["Workers Free", 3 * 2 ** 20],
  ["Workers Paid", 10 * 2 ** 20],
];
const MANIFEST = "deploy/manifest.json";
const mb = (n) => `${(n / 2 ** 20).toFixed(2)} MiB`;

class DeployError extends Error {}
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, dflt) => (args.indexOf(name) >= 0 ? args[args.indexOf(name) + 1] : dflt);
const dryRun = flag("--dry-run");
const tenant = option("--tenant", "main");
const keyFile = option("--key-file", `softedge-admin-key-${tenant}.txt`);

function wrangler(argv, { input, quiet = true } = {}) {
  const r = spawnSync("npx", ["--no-install", "wrangler", ...argv], {
    encoding: "utf8",
    input,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (!quiet) process.stdout.write(r.stdout);
  return r;
}
function must(r, what) {
  if (r.status !== 0) throw new DeployError(`${what} failed: ${(r.stderr || r.stdout).trim().split("\n").filter(Boolean).pop() ?? "no output"}`);
  return r.stdout;
}

/** wrangler's own bundle (what `wrangler deploy` uploads), and its gzip size against the plan limits */
function buildBundle() {
  const out = mkdtempSync(join(tmpdir(), "softedge-bundle-"));
  must(wrangler(["deploy", "--dry-run", "--outdir", out]), "wrangler deploy --dry-run");
  const files = readdirSync(out).filter((f) => !f.endsWith(".map") && f !== "README.md");
  const raw = files.reduce((a, f) => a + statSync(join(out, f)).size, 0);
  const gzip = files.reduce((a, f) => a + gzipSync(readFileSync(join(out, f))).length, 0);
  rmSync(out, { recursive: true, force: true });
  const plan = PLANS.find(([, limit]) => gzip <= limit);
  if (!plan) throw new DeployError(`the bundle is ${mb(gzip)} gzipped, over every plan's limit (${mb(PLANS.at(-1)[1])})`);
  return { files, raw, gzip, plan: plan[0] };
}

function describe(plan, bundle, bucket) {
  const bytes = plan.objects.reduce((a, o) => a + o.size, 0);
  console.log(
    `bundle: ${bundle.files.join(", ")}: ${mb(bundle.raw)}, ${mb(bundle.gzip)} gzipped -> needs the ${bundle.plan} plan` +
      ` (limits: ${PLANS.map(([n, l]) => `${n} ${mb(l)}`).join(", ")})`,
  );
  console.log(`catalog: backbone ${plan.backbone}, ${plan.adapters.length} adapters (checked: files present, packed for this backbone)`);
  console.log(
    `plan:\n  1. R2 bucket "${bucket}" and KV namespace for TENANTS: created when missing; the KV id goes to wrangler.deploy.toml` +
      `\n  2. upload ${plan.objects.length} objects (${mb(bytes)}) to R2, skipping those the deploy manifest already lists:` +
      plan.objects.map((o) => `\n       ${o.key} (${o.size.toLocaleString("en-US")} bytes, sha256 ${o.sha256.slice(0, 12)})`).join("") +
      `\n  3. a first admin key for tenant "${tenant}" when the namespace has no keys, written to ${keyFile} (mode 0600)` +
      `\n  4. wrangler deploy --config wrangler.deploy.toml` +
      `\n  5. publish ${plan.adapters.length} adapters through the deployed worker's API, each only when its alias is absent or on another backbone:` +
      plan.adapters.map((a) => `\n       ${a.alias} (${a.size.toLocaleString("en-US")} bytes, version ${a.version})`).join(""),
  );
}

function preflight() {
  const missing = ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"].filter((k) => !process.env[k]);
  if (missing.length)
    throw new DeployError(
      `${missing.join(" and ")} not set (an API token with Workers Scripts, Workers KV and R2 edit rights, and the account id); nothing was changed`,
    );
  must(wrangler(["whoami"]), "checking the API token (wrangler whoami)");
}

function ensureBucket(bucket) {
  const list = must(wrangler(["r2", "bucket", "list"]), "listing R2 buckets");
  if (new RegExp(`^name:\\s*${bucket}\\s*$`, "m").test(list)) return;
  must(wrangler(["r2", "bucket", "create", bucket]), `creating R2 bucket ${bucket}`);
  console.log(`created R2 bucket ${bucket}`);
}

function ensureNamespace() {
  const title = "softedge-TENANTS";
  const find = () => JSON.parse(must(wrangler(["kv", "namespace", "list"]), "listing KV namespaces")).find((n) => n.title === title);
  let ns = find();
  if (!ns) {
    must(wrangler(["kv", "namespace", "create", "TENANTS"]), "creating the KV namespace");
    ns = find();
    if (!ns) throw new DeployError(`created the KV namespace but cannot find "${title}" in the list`);
    console.log(`created KV namespace ${title} (${ns.id})`);
  }
  const toml = readFileSync("wrangler.toml", "utf8").replace(/(\[\[kv_namespaces\]\][^[]*?id\s*=\s*")[^"]+(")/, `$1${ns.id}$2`);
  writeFileSync("wrangler.deploy.toml.tmp", `# generated by scripts/deploy.mjs from wrangler.toml: account-specific, not committed\n${toml}`);
  renameSync("wrangler.deploy.toml.tmp", "wrangler.deploy.toml");
  return ns.id;
}

/** fn(a fresh temporary file path), the folder removed afterwards */
function withTemp(fn) {
  const dir = mkdtempSync(join(tmpdir(), "softedge-r2-"));
  try {
    return fn(join(dir, "o"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
function r2Get(bucket, key) {
  return withTemp((path) => {
    const r = wrangler(["r2", "object", "get", `${bucket}/${key}`, "--file", path, "--remote"]);
    return r.status === 0 && existsSync(path) ? readFileSync(path) : null;
  });
}
function r2Put(bucket, key, bytes, file) {
  const put = (path) => must(wrangler(["r2", "object", "put", `${bucket}/${key}`, "--file", path, "--remote"]), `uploading ${key}`);
  if (file) return put(file);
  withTemp((path) => {
    writeFileSync(path, bytes);
    put(path);
  });
}

function upload(plan, bucket) {
  const manifest = JSON.parse(r2Get(bucket, MANIFEST)?.toString("utf8") ?? "{}");
  let sent = 0;
  for (const [i, o] of plan.objects.entries()) {
    if (manifest[o.key] === o.sha256) continue;
    console.log(`[${i + 1}/${plan.objects.length}] ${o.key} (${o.size.toLocaleString("en-US")} bytes)`);
    r2Put(bucket, o.key, o.bytes, o.file);
    manifest[o.key] = o.sha256; // recorded as soon as it is up: an interrupted deploy resumes after it
    r2Put(bucket, MANIFEST, Buffer.from(JSON.stringify(manifest, null, 1)));
    sent++;
  }
  console.log(`R2: ${sent} objects uploaded, ${plan.objects.length - sent} already there`);
}

async function firstAdminKey(nsId) {
  const keys = JSON.parse(must(wrangler(["kv", "key", "list", "--namespace-id", nsId, "--prefix", "key/", "--remote"]), "listing API keys"));
  if (keys.length) return console.log(`API keys: ${keys.length} already in the namespace (make more with npm run keys)`);
  const k = await createKey({ tenant, scope: "admin", label: "first admin key (deploy)" });
  try {
    writeSecretFile(keyFile, `${k.key}\n`); // before the key is stored: a stored key nobody holds would be lost
  } catch (e) {
    throw new DeployError(e instanceof SecretFileExists ? `the admin key file ${e.message}` : `writing ${keyFile}: ${e.message}`);
  }
  const stored = wrangler(["kv", "key", "put", "--namespace-id", nsId, k.kvKey, JSON.stringify(k.record), "--remote"]);
  if (stored.status !== 0) rmSync(keyFile, { force: true }); // the key was never valid
  must(stored, "storing the admin key");
  console.log(`admin key for tenant "${tenant}" written to ${keyFile} (mode 0600; the only copy: only its hash is stored)`);
}

/** the adapters through the deployed worker's API, with a short-lived publish key per tenant (removed afterwards) */
async function publishAdapters(plan, nsId, url) {
  for (const t of new Set(plan.adapters.map((a) => a.alias.split("/")[0]))) {
    const k = await createKey({ tenant: t, scope: "publish", label: "deploy: publishing the default catalog (deleted after)" });
    must(wrangler(["kv", "key", "put", "--namespace-id", nsId, k.kvKey, JSON.stringify(k.record), "--remote"]), "storing a publish key");
    try {
      const r = await publishCatalog(url, k.key, { ...plan, adapters: plan.adapters.filter((a) => a.alias.startsWith(`${t}/`)) });
      console.log(`adapters of ${t}: ${r.published} published, ${r.kept} already on this backbone`);
    } catch (e) {
      throw new DeployError(`publishing through ${url}: ${e.message}`);
    } finally {
      must(wrangler(["kv", "key", "delete", "--namespace-id", nsId, k.kvKey, "--remote"]), "deleting the publish key");
    }
  }
}

async function main() {
  const toml = readFileSync("wrangler.toml", "utf8");
  const bucket = /bucket_name\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  if (!bucket) throw new DeployError("wrangler.toml has no [[r2_buckets]] bucket_name");
  let plan;
  try {
    plan = catalogPlan(".");
  } catch (e) {
    throw new DeployError(`catalog: ${e.message}`);
  }
  if (!dryRun) preflight(); // before anything changes
  const bundle = buildBundle();
  describe(plan, bundle, bucket);
  if (dryRun) return console.log("--dry-run: nothing was changed");
  ensureBucket(bucket);
  const nsId = ensureNamespace();
  upload(plan, bucket);
  await firstAdminKey(nsId);
  const out = must(wrangler(["deploy", "--config", "wrangler.deploy.toml"], { quiet: false }), "wrangler deploy");
  const url = option("--url") ?? /https:\/\/[\w.-]+\.workers\.dev/.exec(out)?.[0];
  if (!url) throw new DeployError("wrangler deploy named no workers.dev address: rerun with --url https://<your worker> to publish the adapters");
  await publishAdapters(plan, nsId, url.replace(/\/$/, ""));
  console.log("deployed. Roll back the code with `npx wrangler rollback`, an adapter with `scripts/py publish --rollback ALIAS --api URL`.");
}

main().catch((e) => {
  if (!(e instanceof DeployError)) throw e;
  console.error(`error: ${e.message}`);
  process.exit(2);
});
