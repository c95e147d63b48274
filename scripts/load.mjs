#!/usr/bin/env node
// Load test: autocannon against `wrangler dev` on loopback, several tenants and adapters at once, bounded in time.
//   npm run load -- [--duration 60] [--connections 48] [--port 8798] [--client autocannon|fetch] [--var NAME=VALUE ...]
// --var: a worker var (e.g. ALIAS_TTL_MS=60000); --client fetch: the same requests from the project's HTTP client
// (scripts/lib/http.mjs: undici, a request whose connection dropped before any response sent again on a fresh one),
// one loop per connection (a second client, to tell the worker's errors from a client's or wrangler dev's proxy's).
// autocannon keeps its own connections and reconnects by itself; each error it sees is reported as it came.
// Set-up through the API itself: acme and globex publish their own adapters (PUT), then every connection cycles
// through classify calls on own and public adapters, a mixed batch and a short generation, each with its tenant's key.
// Reports errors (non-2xx, socket errors, timeouts), p50/p99 latency, throughput, workerd's resident memory after
// warm-up, every 10 s, and at the end, and the isolate's JS heap every 10 s (DevTools protocol, port + 1000). Writes .cache/load-<client>.md, and wrangler's whole log to .cache/load-<client>-wrangler.log.
import autocannon from "autocannon";
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startDev } from "./lib/dev-server.mjs";
import { connectInspector } from "./lib/inspector.mjs";
import { DEV_KEYS } from "./lib/keys.mjs";
import { request } from "./lib/http.mjs";

const { values: o } = parseArgs({
  options: {
    duration: { type: "string", default: "60" },
    connections: { type: "string", default: "48" },
    port: { type: "string", default: "8798" },
    client: { type: "string", default: "autocannon" },
    var: { type: "string", multiple: true, default: [] },
  },
});
const duration = Number(o.duration),
  connections = Number(o.connections);
if (
  !(duration > 0 && duration <= 600 && connections > 0 && connections <= 256) ||
  o.var.some((v) => !/^[A-Z_]+=\S+$/.test(v)) ||
  !["autocannon", "fetch"].includes(o.client)
) {
  console.error("error: --duration 1..600 s, --connections 1..256, --client autocannon|fetch, --var NAME=VALUE");
  process.exit(2);
}
const keyOf = (tenant, scope) => DEV_KEYS.find((k) => k[1] === tenant && (!scope || k[2] === scope))[0];
const INSPECTOR = Number(o.port) + 1000;
const dev = await startDev({
  state: ".cache/load-state",
  port: Number(o.port),
  vars: Object.fromEntries(o.var.map((v) => v.split("="))),
  devArgs: ["--inspector-port", String(INSPECTOR)],
});
const { cdp, close: closeInspector } = await connectInspector(INSPECTOR);
const MB = 2 ** 20;
/** the isolate's own memory (the process's RSS also holds the runtime, local R2/KV and logging) */
const heap = async () => {
  const h = await cdp("Runtime.getHeapUsage");
  return `${(h.usedSize / MB).toFixed(0)}/${(h.totalSize / MB).toFixed(0)}+${(h.backingStorageSize / MB).toFixed(0)}`;
};
const auth = (tenant) => ({ authorization: `Bearer ${keyOf(tenant)}` });

// each tenant publishes its own adapter through the API
const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8"));
const file = (alias) => readFileSync(`adapters/${catalog.adapters.find((a) => a.alias === alias).file}`);
for (const [alias, tenant, src] of [
  ["acme/spam", "acme", "demo/spam-prompt"],
  ["globex/topics", "globex", "demo/topic-prefix"],
]) {
  const r = await request(`${dev.base}/v1/adapters/${alias}`, {
    method: "PUT",
    headers: { ...auth(tenant), "content-type": "application/octet-stream" },
    body: file(src),
  });
  if (r.status !== 201 && r.status !== 200) throw new Error(`publishing ${alias}: ${r.status} ${await r.text()}`);
}

const texts = [
  "WIN a FREE cruise!!! Click here to claim your prize now",
  "Are we still meeting for lunch tomorrow?",
  "sparrow: small brown songbird common in towns",
  "Minutes of Tuesday's meeting are attached; please review section 3.",
];
const json = (tenant, path, body) => ({
  method: "POST",
  path,
  headers: { ...auth(tenant), "content-type": "application/json" },
  body: JSON.stringify(body),
});
const requests = [
  json("acme", "/v1/classify", { adapter: "acme/spam", text: texts[0] }),
  json("globex", "/v1/classify", { adapter: "globex/topics", text: texts[2] }),
  json("initech", "/v1/classify", { adapter: "demo/spam-prefix", text: texts[1] }),
  json("acme", "/v1/classify", {
    items: [
      { adapter: "acme/spam", text: texts[3] },
      { adapter: "demo/topic-prefix", text: texts[2] },
    ],
  }),
  json("globex", "/v1/classify", { adapter: "demo/spam-prompt", text: texts[3] }),
  json("initech", "/v1/generate", { adapter: "demo/define-prefix", input: "lighthouse", max_new_tokens: 8 }),
];
// warm-up: every request once (backbone load, adapters into the cache)
for (const r of requests) {
  const res = await request(dev.base + r.path, { method: r.method, headers: r.headers, body: r.body, idempotent: true });
  if (!res.ok) throw new Error(`warm-up ${r.path}: ${res.status} ${await res.text()}`);
}
const memStart = dev.rss();
const samples = [],
  heaps = [];
const timer = setInterval(() => {
  samples.push(dev.rss());
  heap().then((h) => heaps.push(h));
}, 10_000);
console.log(`load (${o.client}): ${connections} connections for ${duration} s against ${dev.base} (${requests.length} request kinds, 3 tenants)`);
const errorBodies = {};
const watched = requests.map((r) => ({
  ...r,
  onResponse: (status, body) => {
    if (status >= 300) {
      const k = `${status} ${r.path} ${String(body).slice(0, 160)}`;
      errorBodies[k] = (errorBodies[k] ?? 0) + 1;
    }
  },
}));
const result =
  o.client === "autocannon" ? await autocannon({ url: dev.base, connections, duration, requests: watched, timeout: 30 }) : await fetchLoad(watched);
clearInterval(timer);
const memEnd = dev.rss();
closeInspector();
dev.stop();
const warnings = dev
  .log()
  .split("\n")
  .filter(
    (l) =>
      l.trim() &&
      !/\[wrangler:info\] (POST|PUT|GET) .* (200|201) |^\s*env\.|Binding|wrangler 4|^─|Starting local|Ready on|Your Worker has access/.test(l) &&
      !/^\{"request_id":.*"status":[23]\d\d,/.test(l), // the worker's own log line of a request that succeeded
  );

/** the same requests from scripts/lib/http.mjs (classify and generate change nothing, so they are retried): `connections` loops, each cycling through them; autocannon's result shape */
async function fetchLoad(reqs) {
  const t0 = Date.now(),
    lat = [],
    codes = {};
  let socketErrors = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let i = c; Date.now() - t0 < duration * 1000; i++) {
        const r = reqs[i % reqs.length],
          a = performance.now();
        try {
          const res = await request(dev.base + r.path, { method: r.method, headers: r.headers, body: r.body, idempotent: true });
          const body = await res.text();
          lat.push(performance.now() - a);
          codes[res.status] = { count: (codes[res.status]?.count ?? 0) + 1 };
          r.onResponse(res.status, body);
        } catch {
          socketErrors++;
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const at = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]);
  const ok = Object.entries(codes).reduce((n, [k, v]) => n + (k < 300 ? v.count : 0), 0);
  return {
    requests: { total: lat.length, average: lat.length / duration },
    latency: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Math.round(lat.at(-1)) },
    non2xx: lat.length - ok,
    errors: socketErrors,
    timeouts: 0,
    statusCodeStats: codes,
  };
}

const L = result.latency,
  errors = result.non2xx + result.errors + result.timeouts;
const codes = Object.entries(result.statusCodeStats ?? {})
  .map(([k, v]) => `${k}: ${v.count}`)
  .join(", ");
const lines = [
  `load: ${new Date().toISOString()}, client ${o.client}, ${connections} connections, ${duration} s, loopback, wrangler dev (one workerd isolate)`,
  "",
  "| requests | errors | non-2xx | socket errors | timeouts | req/s (mean) | p50 ms | p90 ms | p99 ms | max ms |",
  "|---|---|---|---|---|---|---|---|---|---|",
  `| ${result.requests.total} | ${errors} | ${result.non2xx} | ${result.errors} | ${result.timeouts} | ${result.requests.average.toFixed(1)} | ${L.p50} | ${L.p90} | ${L.p99} | ${L.max} |`,
  "",
  `status codes: ${codes}`,
  `workerd RSS: ${memStart.toFixed(0)} MB after warm-up, ${samples.map((m) => m.toFixed(0)).join(" / ")} MB every 10 s, ${memEnd.toFixed(0)} MB at the end`,
  // the first seconds grow the wasm heap to the working set of the connections in flight; drift is what follows
  `workerd RSS drift over the second half of the run: ${samples.length >= 2 ? `${(memEnd - samples[Math.floor((samples.length - 1) / 2)]).toFixed(0)} MB` : "n/a (run too short)"}`,
  `isolate JS heap every 10 s (used/allocated + ArrayBuffers, MB; garbage included, no forced GC): ${heaps.join(" / ")}`,
];
for (const [k, n] of Object.entries(errorBodies)) lines.push(`error response x${n}: ${k}`);
if (warnings.length) lines.push(`worker warnings (${warnings.length}, first 5):`, ...warnings.slice(0, 5).map((l) => `    ${l.trim()}`));
console.log(lines.join("\n"));
writeFileSync(`.cache/load-${o.client}.md`, lines.join("\n") + "\n");
writeFileSync(`.cache/load-${o.client}-wrangler.log`, dev.log()); // the whole log, for what the summary leaves out
process.exit(errors ? 1 : 0);
