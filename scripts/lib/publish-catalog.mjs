// The default catalog's adapters published through a running worker's API (PUT /v1/adapters/<tenant>/<name>), so a
// deploy moves aliases with the worker's own validation and compare-and-swap, like every other writer. An alias is
// published only when absent or on another backbone (catalog-plan.mjs shouldWriteAlias): a later publish or rollback
// on the current backbone is never undone. `key` needs publish scope for the adapters' tenant. Requests go through
// scripts/lib/http.mjs, which retries those that failed before any response (a stale kept-alive connection).
import { shouldWriteAlias } from "./catalog-plan.mjs";
import { request } from "./http.mjs";

export async function publishCatalog(base, key, plan) {
  const headers = { authorization: `Bearer ${key}` };
  const fail = async (what, r) => {
    const body = await r.text();
    let why = `HTTP ${r.status}`;
    try {
      const e = JSON.parse(body).error;
      why = `${r.status} ${e.code}: ${e.message}`;
    } catch {}
    throw new Error(`${what}: ${why}`);
  };
  let published = 0,
    kept = 0;
  for (const a of plan.adapters) {
    const cur = await request(`${base}/v1/adapters/${a.alias}`, { headers });
    if (cur.status !== 200 && cur.status !== 404) await fail(`GET /v1/adapters/${a.alias}`, cur);
    if (!shouldWriteAlias(cur.status === 200 ? await cur.json() : null, plan.backbone)) {
      kept++;
      continue;
    }
    // idempotent, so retried: the version is the artifact's sha256, and re-sending the current version changes nothing
    const r = await request(`${base}/v1/adapters/${a.alias}`, {
      method: "PUT",
      headers: { ...headers, "content-type": "application/octet-stream" },
      body: a.bytes,
    });
    if (r.status !== 200 && r.status !== 201) await fail(`PUT /v1/adapters/${a.alias}`, r);
    published++;
  }
  return { published, kept };
}
