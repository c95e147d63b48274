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
