#!/usr/bin/env node
// API keys for the edge worker: create (the key is printed once; only its hash is stored), list, revoke.
// Keys live in the KV namespace bound as TENANTS in wrangler.toml, through wrangler's KV commands: --local (default)
// is the store `wrangler dev` / `npm start` use (under --persist-to, default .wrangler/state); --remote is
// Cloudflare KV (CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID from the environment).
//
//   node scripts/keys.mjs create --tenant acme --scope read|publish|admin [--label "ci publisher"]
//   node scripts/keys.mjs list [--tenant acme]
//   node scripts/keys.mjs revoke <key id>
// Scopes: read = classify, generate, list and describe adapters; publish = also upload versions and roll back;
// admin = also set the tenant's default adapters and grants. A revoked key stops working within AUTH_CACHE_MS (10 s).
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { SCOPES, createKey } from "./lib/keys.mjs";

const fail = (msg) => {
  console.error(`error: ${msg}`);
  process.exit(2);
};

let cmd, opts;
try {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      scope: { type: "string" },
      label: { type: "string", default: "" },
      local: { type: "boolean" },
      remote: { type: "boolean" },
      "persist-to": { type: "string", default: ".wrangler/state" },
    },
  });
  [cmd, ...opts] = positionals;
  opts = { ...values, args: opts };
} catch (e) {
  fail(e.message);
}
if (opts.local && opts.remote) fail("give --local or --remote, not both");
const where = opts.remote ? ["--remote"] : ["--local", "--persist-to", opts["persist-to"]];

function wrangler(...args) {
  const r = spawnSync("npx", ["--no-install", "wrangler", "kv", "key", ...args, "--binding", "TENANTS", ...where], {
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
  if (r.status !== 0) fail(`wrangler kv key ${args[0]}: ${(r.stderr || r.stdout).trim().split("\n").filter(Boolean).pop() ?? "failed"}`);
  return r.stdout;
}

if (cmd === "create") {
  if (!opts.tenant || !opts.scope) fail(`create needs --tenant NAME and --scope ${SCOPES.join("|")}`);
  let k;
  try {
    k = await createKey({ tenant: opts.tenant, scope: opts.scope, label: opts.label });
  } catch (e) {
    fail(e.message);
  }
  wrangler("put", k.kvKey, JSON.stringify(k.record));
  console.error(`created key ${k.id} for tenant ${opts.tenant}, scope ${opts.scope} — it is shown once, store it now:`);
  console.log(k.key);
} else if (cmd === "list") {
  const names = JSON.parse(wrangler("list", "--prefix", "key/")).map((x) => x.name);
  const rows = [];
  for (const name of names) {
    const rec = JSON.parse(wrangler("get", name, "--text"));
    if (!opts.tenant || rec.tenant === opts.tenant)
      rows.push({ id: name.slice(4), tenant: rec.tenant, scope: rec.scope, created: rec.created, label: rec.label });
  }
  if (!rows.length) console.error("no keys");
  else console.table(rows);
} else if (cmd === "revoke") {
  const id = opts.args[0];
  if (!/^[0-9a-f]{12}$/.test(id ?? "")) fail("revoke needs a key id (12 hex digits; `list` shows them)");
  const names = JSON.parse(wrangler("list", "--prefix", `key/${id}`)).map((x) => x.name);
  if (!names.includes(`key/${id}`)) fail(`no key ${id}`);
  wrangler("delete", `key/${id}`);
  console.log(`revoked ${id}`);
} else {
  fail(
    "usage: keys.mjs create --tenant T --scope read|publish|admin [--label L] | list [--tenant T] | revoke ID  [--local [--persist-to DIR] | --remote]",
  );
}
