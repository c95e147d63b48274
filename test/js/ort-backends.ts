// The two ONNX Runtime builds the parity tests run: native (onnxruntime-node) and the wasm build the edge
// worker uses (onnxruntime-web, single-threaded as in workerd).
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { readFileSync } from "node:fs";

ortWeb.env.wasm.numThreads = 1;
ortWeb.env.wasm.proxy = false;

export type Feeds = Record<string, { dims: number[]; dtype: "int64" | "float32"; data: number[] }>;
export interface Runner {
  run(feeds: Feeds): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>>;
}

export const BACKENDS = ["node", "web"] as const;
export type Backend = (typeof BACKENDS)[number];

export async function load(backend: Backend, path: string): Promise<Runner> {
  const ort = (backend === "node" ? ortNode : ortWeb) as typeof ortWeb;
  const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(path)), {
    executionProviders: [backend === "node" ? "cpu" : "wasm"],
    // native ORT's extended-level fusions rewrite DequantizeLinear+MatMul into an int8 kernel that also
    // quantises activations (max |diff| ~0.02 on the tiny fixtures), so it would no longer compute the graph's
    // math; the wasm build does not. Native runs at "basic" to compute exactly what the graph says.
    graphOptimizationLevel: backend === "node" ? "basic" : "all",
  });
  return {
    async run(feeds) {
      const t: Record<string, ortWeb.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) {
        t[name] =
          f.dtype === "int64"
            ? new ort.Tensor(
                "int64",
                BigInt64Array.from(f.data, (x) => BigInt(x)),
                f.dims,
              )
            : new ort.Tensor("float32", Float32Array.from(f.data), f.dims);
      }
      const out = await session.run(t);
      const res: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
      for (const [k, v] of Object.entries(out)) res[k] = { dims: v.dims, data: v.data as Float32Array };
      return res;
    },
  };
}
