// A worker for `npm run bench` only (never deployed): the engine and ONNX Runtime Web inside workerd without the
// API around them, so the benchmark can tell the engine's own time from HTTP, auth and JSON, and measure the peak
// of a plain matrix multiply in the same runtime (the roofline). The client posts the model bytes; times are taken
// around awaits with performance.now(), which advances across them in local workerd.
//   GET /healthz
//   POST /backbone      model.onnx bytes; header x-config: config.json (base64), x-optimization-level (default: the
//                       worker's, sessionLevel of the config)
//   POST /adapter?name=N  an adapter file, parsed for the backbone
//   POST /classify      {items: [{adapter, ids}], runs, group, maxBatchTokens}: ms per call
//   POST /forward       {ids, adapter (null: no prefix), runs, group}: one forward pass, no readout
//   POST /matmul-model  a graph's bytes; POST /matmul {dims, dtype, runs}: ms per run of it
//   POST /checksum?runs=N   bytes: ms per SHA-256 of them (the backbone loader's model.onnx check)
//   POST /tokenizer?runs=N  tokenizer.json bytes: ms per parse + construction (the loader's tokenizer)
import { parseAdapter, type Adapter } from "../../src/engine/adapter";
import { sessionLevel, type BackboneConfig, type OptimizationLevel } from "../../src/engine/backbone-config";
import { runBatch } from "../../src/engine/batch";
import { classifyBatch } from "../../src/engine/classify";
import { sha256Hex } from "../../src/engine/hash";
import { loadOrt, type OrtModule } from "../../src/engine/ort-workerd";
import { Tokenizer } from "@huggingface/tokenizers";
import type * as ORT from "onnxruntime-web";

let ort: OrtModule;
let backbone: { session: ORT.InferenceSession; cfg: BackboneConfig } | null = null;
let matmul: ORT.InferenceSession | null = null;
const adapters = new Map<string, Adapter>();
async function create(bytes: ArrayBuffer, level: OptimizationLevel = "all") {
  ort ??= await loadOrt();
  return ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"], graphOptimizationLevel: level });
}

/** ms per call, one figure per group of `group` calls: workerd's clock ticks in whole milliseconds, so short calls
 * are timed in groups */
async function times(runs: number, fn: () => Promise<unknown>, group = 1): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    for (let j = 0; j < group; j++) await fn();
    out.push((performance.now() - t0) / group);
  }
  return out;
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return Response.json({ ok: true });
    if (request.method !== "POST") return Response.json({ error: "POST only" }, { status: 405 });
    try {
      switch (url.pathname) {
        case "/backbone": {
          const cfg = JSON.parse(atob(request.headers.get("x-config") ?? "")) as BackboneConfig;
          const level = (request.headers.get("x-optimization-level") as OptimizationLevel | null) ?? sessionLevel(cfg); // the worker's
          const bytes = await request.arrayBuffer(); // the upload is not the session's time
          const t0 = performance.now();
          backbone = { session: await create(bytes, level), cfg };
          adapters.clear();
          return Response.json({ ms: performance.now() - t0 });
        }
        case "/adapter": {
          if (!backbone) throw new Error("post /backbone first");
          adapters.set(url.searchParams.get("name") ?? "", await parseAdapter(await request.arrayBuffer(), backbone.cfg));
          return Response.json({ adapters: adapters.size });
        }
        case "/classify": {
          if (!backbone) throw new Error("post /backbone first");
          const { session, cfg } = backbone;
          const body = (await request.json()) as {
            items: { adapter: string; ids: number[] }[];
            runs: number;
            group?: number;
            maxBatchTokens: number;
          };
          const items = body.items.map((it) => ({ ids: it.ids, adapter: adapters.get(it.adapter)! }));
          return Response.json({ ms: await times(body.runs, () => classifyBatch(ort, session, cfg, items, body.maxBatchTokens), body.group) });
        }
        case "/forward": {
          // one forward pass, no readout: the cost of an adapter's compiled KV prefix against no prefix at all
          if (!backbone) throw new Error("post /backbone first");
          const { session, cfg } = backbone;
          const body = (await request.json()) as { ids: number[]; adapter: string | null; runs: number; group?: number };
          const a = body.adapter === null ? null : adapters.get(body.adapter)!;
          const item = { ids: body.ids, kv: a?.kv ?? null, virtualTokens: a?.virtualTokens ?? 0 };
          return Response.json({ ms: await times(body.runs, () => runBatch(ort, session, cfg, [item]), body.group) });
        }
        case "/checksum": {
          const bytes = new Uint8Array(await request.arrayBuffer());
          return Response.json({ ms: await times(Number(url.searchParams.get("runs") ?? 5), () => sha256Hex(bytes), 10) });
        }
        case "/tokenizer": {
          const text = await request.text();
          const build = async () => new Tokenizer(JSON.parse(text), {});
          return Response.json({ ms: await times(Number(url.searchParams.get("runs") ?? 5), build, 10) });
        }
        case "/matmul-model": {
          const bytes = await request.arrayBuffer();
          const t0 = performance.now();
          matmul = await create(bytes);
          return Response.json({ ms: performance.now() - t0 });
        }
        case "/matmul": {
          if (!matmul) throw new Error("post /matmul-model first");
          const session = matmul;
          const { dims, dtype, runs } = (await request.json()) as { dims: number[]; dtype: "float32" | "uint8"; runs: number };
          const n = dims.reduce((a, b) => a * b, 1);
          const data =
            dtype === "uint8"
              ? Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256)
              : Float32Array.from({ length: n }, (_, i) => ((i * 37) % 97) / 97 - 0.5);
          const feeds = { [session.inputNames[0]]: new ort.Tensor(dtype, data, dims) };
          return Response.json({ ms: await times(runs, () => session.run(feeds)) });
        }
      }
      return Response.json({ error: `no route ${url.pathname}` }, { status: 404 });
    } catch (e) {
      return Response.json({ error: String(e) }, { status: 500 });
    }
  },
};
