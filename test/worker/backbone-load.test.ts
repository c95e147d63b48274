// The backbone's load order in a fresh isolate (this file's own): the config is available while model.onnx is still
// being read, so a request's adapters are fetched and checked during the download; the session comes last.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { getBackbone, getBackboneConfig, stats } from "../../src/store/backbone";
import type { Storage } from "../../src/store/r2";
import { seedDefaults, type Catalog } from "./helpers";

let catalog: Catalog;
beforeAll(async () => {
  catalog = await seedDefaults();
});

describe("backbone load", () => {
  it("refuses a config that names an unknown load-time optimisation level, before any session", async () => {
    const id = catalog.default_backbone;
    const bucket = new Proxy(env.BUCKET, {
      get(target, prop) {
        if (prop !== "get") return Reflect.get(target, prop).bind(target);
        return async (key: string, ...rest: unknown[]) => {
          const o = await (target.get as (...a: unknown[]) => Promise<R2ObjectBody | null>)(key, ...rest);
          if (!key.endsWith("/config.json") || !o) return o;
          const cfg = { ...(await o.json<Record<string, unknown>>()), ort_optimization: { offline: "extended", at_load: "fastest", by: "x" } };
          return { arrayBuffer: async () => new TextEncoder().encode(JSON.stringify(cfg)).buffer };
        };
      },
    });
    const io: Storage = { bucket, retry: { attempts: 1, timeoutMs: 10_000, backoffMs: 0 } };
    await expect(getBackboneConfig(io, id)).rejects.toMatchObject({
      code: "backbone_unavailable",
      message: expect.stringMatching(/at_load "fastest"/),
    });
    await expect(getBackbone(io, id)).rejects.toMatchObject({ code: "backbone_unavailable" });
    await new Promise((r) => setTimeout(r, 0));
    expect(stats.loads).toBe(0);
  });

  // runs before any load succeeds: the next test's load (stats.loads 0 -> 1) is the retry after this failed one
  it("does not keep a failed load: the next request loads again (no waitUntil needed)", async () => {
    const id = catalog.default_backbone;
    const missing = new Proxy(env.BUCKET, {
      get(target, prop) {
        if (prop !== "get") return Reflect.get(target, prop).bind(target);
        return async (key: string, ...rest: unknown[]) =>
          key.endsWith("/model.onnx") ? null : (target.get as (...a: unknown[]) => Promise<R2ObjectBody | null>)(key, ...rest);
      },
    });
    const io: Storage = { bucket: missing, retry: { attempts: 1, timeoutMs: 10_000, backoffMs: 0 } };
    expect((await getBackboneConfig(io, id)).id).toBe(id); // the config alone is there
    await expect(getBackbone(io, id)).rejects.toMatchObject({ code: "backbone_unavailable" });
    await new Promise((r) => setTimeout(r, 0)); // the failed load lets go of its slot
    expect(stats.loads).toBe(0);
  });

  it("gives the config before model.onnx has arrived, and the backbone once it has", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const reads: string[] = [];
    // the local bucket, with model.onnx's read held back until the test releases it
    const bucket = new Proxy(env.BUCKET, {
      get(target, prop) {
        if (prop !== "get") return Reflect.get(target, prop).bind(target);
        return async (key: string, ...rest: unknown[]) => {
          reads.push(key);
          if (key.endsWith("/model.onnx")) await held;
          return (target.get as (...a: unknown[]) => Promise<R2ObjectBody | null>)(key, ...rest);
        };
      },
    });
    const io: Storage = { bucket, retry: { attempts: 1, timeoutMs: 10_000, backoffMs: 0 } };
    const id = catalog.default_backbone;
    let loaded = false;
    const backbone = getBackbone(io, id).then((b) => {
      loaded = true;
      return b;
    });
    const cfg = await getBackboneConfig(io, id);
    expect(cfg.id).toBe(id);
    expect(reads).toContain(`backbones/${id}/model.onnx`); // requested up front, still held
    expect(loaded).toBe(false);
    expect(stats.loads).toBe(0);
    release();
    const b = await backbone;
    expect(b.cfg).toBe(cfg);
    expect(b.tokenizer.encode("hello").ids.length).toBeGreaterThan(0);
    expect(stats.loads).toBe(1);
    expect(await getBackbone(io, id)).toBe(b); // cached: one load per isolate
  });
});
