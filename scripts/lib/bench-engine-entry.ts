// What scripts/bench.mjs runs in Node: the edge engine itself, driven by onnxruntime-node.
export { parseAdapter } from "../../src/engine/adapter";
export { classifyBatch } from "../../src/engine/classify";
export { generate } from "../../src/engine/generate";
export { encodePrompt } from "../../src/engine/prompt";
export { SETTINGS } from "../../src/config";
