// fp32 and int8 ONNX graphs vs PyTorch, on fixtures written by `scripts/py fixtures tiny`:
// plain batch, KV prefix, and left padding behind a KV prefix; both ONNX Runtime builds.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { BACKENDS, load, type Feeds } from "./ort-backends";

const DIR = new URL("../fixtures/parity/tiny/", import.meta.url).pathname;
const index = JSON.parse(readFileSync(DIR + "index.json", "utf8")) as { models: string[] };

interface Case {
  name: string;
  inputs: Feeds;
  valid: number[][];
  logits: { dims: number[]; data: number[] };
  hidden_states: { dims: number[]; data: number[] };
}
interface Graph {
  file: string;
  last_only: boolean;
  reference?: string;
  cases: Case[];
}

/** max |diff| over the positions that hold real tokens (padded positions have no defined answer) */
function maxDiff(got: Float32Array, c: Case, lastOnly: boolean, want = c.logits): number {
  const [B, T, V] = want.dims;
  let m = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const tt = lastOnly ? c.valid[b].length - 1 : t;
      if (!c.valid[b][tt]) continue;
      for (let v = 0; v < V; v++) {
        const i = (b * T + t) * V + v;
        m = Math.max(m, Math.abs(got[i] - want.data[i]));
      }
    }
  return m;
}

function argmaxRows(x: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / V; r++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (x[r * V + v] > x[r * V + best]) best = v;
    out.push(best);
  }
  return out;
}

for (const name of index.models) {
  const fx = JSON.parse(readFileSync(DIR + name + ".json", "utf8")) as { graphs: Record<string, Graph> };
  // every int8 scheme the fixtures hold (scripts/py fixtures tiny writes one per quantize.SCHEMES entry)
  const INT8_GRAPHS = Object.keys(fx.graphs).filter((g) => g !== "fp32");
  describe.each(BACKENDS)(`${name} on onnxruntime-%s`, (backend) => {
    it("fp32 graph matches PyTorch within 1e-4 (plain, KV prefix, left padding)", async () => {
      const g = fx.graphs.fp32;
      const s = await load(backend, DIR + g.file);
      for (const c of g.cases) {
        const out = await s.run(c.inputs);
        expect(out.logits.dims).toEqual(c.logits.dims);
        expect(maxDiff(out.logits.data, c, false), c.name).toBeLessThanOrEqual(1e-4);
        expect(maxDiff(out.hidden_states.data, c, false, c.hidden_states), c.name).toBeLessThanOrEqual(1e-4);
      }
    });

    it("fp32 graph returns presents that extend the past by the new tokens", async () => {
      const c = fx.graphs.fp32.cases[1];
      const out = await (await load(backend, DIR + fx.graphs.fp32.file)).run(c.inputs);
      const past = c.inputs["past_key_values.0.key"].dims;
      expect(out["present.0.key"].dims).toEqual([past[0], past[1], past[2] + c.inputs.input_ids.dims[1], past[3]]);
      // the first S slots of present are the past itself
      const pd = c.inputs["past_key_values.0.key"].data;
      const S = past[2],
        D = past[3];
      expect(out["present.0.key"].data[0]).toBeCloseTo(pd[0], 6);
      expect(out["present.0.key"].data[(S - 1) * D + D - 1]).toBeCloseTo(pd[(S - 1) * D + D - 1], 6);
    });

    it.each(INT8_GRAPHS)("int8 %s graph matches PyTorch simulating its int8 math within 1e-4", async (scheme) => {
      const g = fx.graphs[scheme];
      expect(g.reference).toBe("simulated-int8");
      const s = await load(backend, DIR + g.file);
      for (const c of g.cases) {
        const out = await s.run(c.inputs);
        expect(out.logits.dims).toEqual([c.logits.dims[0], 1, c.logits.dims[2]]);
        expect(maxDiff(out.logits.data, c, true), c.name).toBeLessThanOrEqual(1e-4);
        // every position's final hidden states (what classification heads read)
        expect(out.hidden_states.dims).toEqual(c.hidden_states.dims);
        expect(maxDiff(out.hidden_states.data, c, false, c.hidden_states), c.name).toBeLessThanOrEqual(1e-4);
      }
    });

    // weight-only-dql is weight-only's math, kept for its speed figure
    it.each(INT8_GRAPHS.filter((g) => g !== "weight-only-dql"))("int8 %s graph keeps fp32's top-1 prediction", async (scheme) => {
      const s = await load(backend, DIR + fx.graphs[scheme].file);
      let agree = 0,
        total = 0;
      for (const c of fx.graphs.fp32.cases) {
        const out = await s.run(c.inputs);
        const [B, T, V] = c.logits.dims;
        const last = Array.from({ length: B }, (_, b) => argmaxRows(c.logits.data.slice((b * T + T - 1) * V, (b * T + T) * V), V)[0]);
        argmaxRows(out.logits.data, V).forEach((x, b) => {
          if (c.valid[b][T - 1]) {
            total++;
            agree += Number(x === last[b]);
          }
        });
      }
      expect(total).toBe(6);
      expect(agree / total).toBeGreaterThanOrEqual(5 / 6);
    });

    it.each(INT8_GRAPHS)("int8 %s: an item's logits do not depend on its batch-mates", async (scheme) => {
      const g = fx.graphs[scheme];
      const s = await load(backend, DIR + g.file);
      const c = g.cases[0];
      const both = await s.run(c.inputs);
      // row 0 alone (slice every batch-major input)
      const solo: Feeds = {};
      for (const [k, f] of Object.entries(c.inputs)) {
        const per = f.data.length / f.dims[0];
        solo[k] = { ...f, dims: [1, ...f.dims.slice(1)], data: f.data.slice(0, per) };
      }
      const one = await s.run(solo);
      const V = c.logits.dims[2];
      let m = 0;
      for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(one.logits.data[v] - both.logits.data[v]));
      expect(m).toBeLessThanOrEqual(1e-5);
    });
  });
}
