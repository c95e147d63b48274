// ONNX Runtime Web inside workerd: the tiny parity graphs give PyTorch's logits (fp32 within 1e-4).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { loadOrt } from "../../src/engine/ort-workerd";

declare module "cloudflare:test" {
  interface ProvidedEnv {
    FIXTURES: Fetcher;
  }
}

async function fixture(path: string): Promise<Response> {
  const r = await env.FIXTURES.fetch(`http://fixtures/${path}`);
  if (!r.ok) throw new Error(`fixture ${path}: ${r.status}`);
  return r;
}

describe("onnxruntime-web in workerd", () => {
  it("loads once per isolate and matches PyTorch on the tiny fp32 graph", async () => {
    const [a, b] = await Promise.all([loadOrt(), loadOrt()]);
    expect(a).toBe(b);
    const fx = await (await fixture("test/fixtures/parity/tiny/tiny-llama.json")).json<any>();
    const g = fx.graphs.fp32;
    const bytes = new Uint8Array(await (await fixture(`test/fixtures/parity/tiny/${g.file}`)).arrayBuffer());
    const s = await a.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    for (const c of g.cases) {
      const feeds: Record<string, any> = {};
      for (const [k, f] of Object.entries<any>(c.inputs))
        feeds[k] =
          f.dtype === "int64"
            ? new a.Tensor(
                "int64",
                BigInt64Array.from(f.data, (x: number) => BigInt(x)),
                f.dims,
              )
            : new a.Tensor("float32", Float32Array.from(f.data), f.dims);
      const out = await s.run(feeds);
      const got = out.logits.data as Float32Array;
      const [B, T, V] = c.logits.dims;
      let m = 0;
      for (let bb = 0; bb < B; bb++)
        for (let t = 0; t < T; t++) {
          if (!c.valid[bb][t]) continue;
          for (let v = 0; v < V; v++) {
            const i = (bb * T + t) * V + v;
            m = Math.max(m, Math.abs(got[i] - c.logits.data[i]));
          }
        }
      expect(m, c.name).toBeLessThanOrEqual(1e-4);
    }
  });
});
