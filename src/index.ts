// The softedge edge worker: one shared backbone, a per-request adapter from R2.
import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv, Bindings } from "./app-env";
import { api } from "./api/routes";
import { onError, errorBody } from "./api/errors";
import { AdapterCache, AdapterStore } from "./store/adapters";
import { getBackbone } from "./store/backbone";
import { ApiError } from "./api/errors";

let store: AdapterStore | null = null; // per isolate: the adapter cache outlives requests
let backboneId: Promise<string> | null = null;

const num = (v: string | undefined, d: number) => (v && Number.isFinite(Number(v)) ? Number(v) : d);

async function defaultBackbone(env: Bindings): Promise<string> {
  if (env.BACKBONE_ID) return env.BACKBONE_ID;
  const o = await env.BUCKET.get("catalog.json");
  if (!o) throw new ApiError(503, "backbone_unavailable", "no catalog.json in the bucket (run npm start to seed it)");
  return (await o.json<{ default_backbone: string }>()).default_backbone;
}

export const app = new OpenAPIHono<AppEnv>();
// per-request context: the isolate's adapter store, the limits, and a lazy handle on the shared backbone
app.use("*", async (c, next) => {
  const env = c.env;
  store ??= new AdapterStore(env.BUCKET, new AdapterCache(num(env.ADAPTER_CACHE_BYTES, 32 << 20)), num(env.ALIAS_TTL_MS, 10_000));
  c.set("adapters", store);
  c.set("limits", { maxItems: num(env.MAX_ITEMS, 32), maxTextChars: num(env.MAX_TEXT_CHARS, 8000), maxTokens: num(env.MAX_TOKENS, 128),
    maxNewTokens: num(env.MAX_NEW_TOKENS, 64) });
  c.set("backbone", async () => {
    backboneId ??= defaultBackbone(env).catch((e) => { backboneId = null; throw e; });
    return getBackbone(env.BUCKET, await backboneId);
  });
  await next();
});
app.route("/", api);
app.onError(onError);
app.notFound((c) => c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404));

export default app;
