// How close the edge must come to PyTorch doing the int8 graph's own math (scripts/softedge/export/quantize.py simulate),
// by quantisation scheme. Weight-only graphs compute the same dequantised weights in float: the differences are
// accumulation order, 1e-4 on probabilities (1e-3 on the logits of 64x128-token decodes). Graphs that also quantise
// activations per row (dynamic-row*) round every activation to an int8 step; where a value sits within float error
// of a rounding boundary, ONNX Runtime and PyTorch can land on neighbouring steps, which no accumulation order
// removes (the tiny parity graphs still match within 1e-4: test/js/parity.test.ts). Measured on the default
// backbone's dynamic-row-mixed graph: 3.7e-4 on the golden label probabilities, 6.8e-3 on decode logits; labels and
// greedy tokens identical. The bounds leave about 2.5x headroom over those figures.
export function parityTolerance(quantization: string): { probabilities: number; logits: number } {
  return quantization.startsWith("dynamic-row") ? { probabilities: 1e-3, logits: 2e-2 } : { probabilities: 1e-4, logits: 1e-3 };
}
