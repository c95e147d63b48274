// The softedge edge worker (issue #4 builds the API here).
import { Hono } from "hono";

export interface Env {
  BUCKET: R2Bucket;
}

const app = new Hono<{ Bindings: Env }>();
app.get("/healthz", (c) => c.json({ ok: true }));

export default app;
