#!/usr/bin/env node
// Publish, roll back or list an adapter in the local bucket that `wrangler dev` serves, through the worker's own
// storage code (validation, content-addressed versions, compare-and-swap on alias.json). Called by
// `scripts/py publish --local`; prints one JSON object, or "error: ..." and exits 2.
//   node scripts/publish-local.mjs publish FILE --alias tenant/name [--persist-to DIR] [--backbones DIR]
//   node scripts/publish-local.mjs rollback tenant/name [--to VERSION] [--persist-to DIR] [--backbones DIR]
//   node scripts/publish-local.mjs list tenant/name [--persist-to DIR]
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { adapterBackbone } from "./lib/catalog-plan.mjs";
import { openLocalStore, ownBytes, storeCode } from "./lib/local-store.mjs";

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args.splice(i, 2)[1] : d;
};
const persist = opt("--persist-to", ".wrangler/state"),
  backbones = opt("--backbones", "adapters/backbones");
const alias = opt("--alias"),
  to = opt("--to");
const [cmd, target] = args;
const fail = (m) => {
  console.error(`error: ${m}`);
  process.exit(2);
};

function backboneConfig(id) {
  const p = join(backbones, id, "config.json");
  if (!existsSync(p)) fail(`the adapter is for backbone ${JSON.stringify(id)}, which is not in ${backbones}`);
  return JSON.parse(readFileSync(p, "utf8"));
}
/** the worker's default prompt limits and the bundle's tokenizer, as a publish through the API checks them */
const serving = (code, dir) => ({
  limits: { maxTokens: code.SETTINGS.MAX_TOKENS[0], maxNewTokens: code.SETTINGS.MAX_NEW_TOKENS[0] },
  tokenizer: async () => new code.Tokenizer(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")), {}),
});
if (!["publish", "rollback", "list"].includes(cmd) || !target)
  fail("usage: publish FILE --alias tenant/name | rollback tenant/name [--to V] | list tenant/name");
const code = await storeCode();
const ref = (s) => {
  try {
    return code.parseRef(s);
  } catch (e) {
    fail(e.message);
  }
};
const store = await openLocalStore(persist);
try {
  let out;
  if (cmd === "publish") {
    if (!alias) fail("publish needs --alias tenant/name");
    const { tenant, name, version } = ref(alias);
    if (version) fail("--alias is tenant/name (the version comes from the file's content)");
    if (!existsSync(target)) fail(`${target}: no such file`);
    const file = readFileSync(target);
    const id = adapterBackbone(file); // the id the artifact names, before the worker's code validates the rest
    const bytes = ownBytes(file);
    // an unreadable header gets the worker's own refusal (validated against any config)
    const cfg = id ? backboneConfig(id) : { id: "" };
    out = await code.publish(store.io, tenant, name, bytes, cfg, serving(code, join(backbones, id ?? "")));
  } else {
    const { tenant, name } = ref(target);
    if (cmd === "list") out = await code.versions(store.io, tenant, name);
    else {
      const cur = await store.bucket.get(code.aliasKey(tenant, name));
      if (!cur) fail(`no adapter ${tenant}/${name}`);
      out = await code.rollback(store.io, tenant, name, to, backboneConfig((await cur.json()).backbone));
    }
  }
  console.log(JSON.stringify(out));
} catch (e) {
  if (e instanceof code.DomainError) fail(`${e.message} (${e.code})`);
  throw e;
} finally {
  await store.dispose();
}
