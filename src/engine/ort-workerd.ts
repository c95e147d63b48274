// ONNX Runtime Web inside workerd. workerd refuses to compile wasm from bytes at run time, and ORT's env.wasm
// takes only bytes or URLs; the bundler (wrangler, the vitest pool) turns the imported .wasm file into a
// precompiled WebAssembly.Module. So ORT's own WebAssembly.instantiate call is handed that module instead of
// the placeholder bytes it passes. One init per isolate, shared by every caller (cache the promise: a failed
// init would poison the isolate, so a failure is kept and reported rather than retried).
import * as ort from "onnxruntime-web/wasm";
// @ts-expect-error: a .wasm import is a WebAssembly.Module in workerd
import wasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";

export type OrtModule = typeof ort;
let ready: Promise<OrtModule> | null = null;
let memory: WebAssembly.Memory | null = null;

/** Bytes of ONNX Runtime's WebAssembly memory (0 before init). It counts against the isolate's 128 MB and
 *  never shrinks: its size is the peak of every session load and run so far. */
export const wasmMemoryBytes = () => memory?.buffer.byteLength ?? 0;

function findMemory(imports: unknown, instance: WebAssembly.Instance): WebAssembly.Memory | null {
  const candidates = [
    ...Object.values(instance.exports),
    ...Object.values((imports ?? {}) as Record<string, Record<string, unknown>>).flatMap((m) => Object.values(m ?? {})),
  ];
  return (candidates.find((v) => v instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined) ?? null;
}

export function loadOrt(): Promise<OrtModule> {
  ready ??= (async () => {
    const original = WebAssembly.instantiate.bind(WebAssembly) as (...a: unknown[]) => Promise<unknown>;
    (WebAssembly as unknown as { instantiate: unknown }).instantiate = (src: unknown, imports: unknown) =>
      src instanceof WebAssembly.Module
        ? original(src, imports)
        : (original(wasmModule, imports) as Promise<WebAssembly.Instance>).then((instance) => {
            memory = findMemory(imports, instance);
            return { module: wasmModule, instance };
          });
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]); // placeholder: the call above swaps it
    return ort;
  })();
  return ready;
}

// A one-node ONNX graph (Identity on one float, opset 17, written with onnx.helper): creating a session from it is
// what makes ORT initialise its wasm backend (the first session of an isolate pays for that, about 150 ms locally).
const IDENTITY_GRAPH = new Uint8Array([
  8, 8, 18, 0, 58, 55, 10, 16, 10, 1, 120, 18, 1, 121, 34, 8, 73, 100, 101, 110, 116, 105, 116, 121, 18, 1, 105, 90, 15, 10, 1, 120, 18, 10, 10, 8, 8,
  1, 18, 4, 10, 2, 8, 1, 98, 15, 10, 1, 121, 18, 10, 10, 8, 8, 1, 18, 4, 10, 2, 8, 1, 66, 4, 10, 0, 16, 17,
]);
let initialised: Promise<OrtModule> | null = null;

/** ORT with its wasm backend initialised, once per isolate: the backbone's loader starts this before it reads the
 *  bundle from R2, so the two overlap on a cold start. */
export function initOrt(): Promise<OrtModule> {
  initialised ??= loadOrt().then(async (ort) => {
    await ort.InferenceSession.create(IDENTITY_GRAPH, { executionProviders: ["wasm"] });
    return ort;
  });
  return initialised;
}
