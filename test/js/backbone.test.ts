// The committed default backbone bundle: tokenizer identity with Python, int8 quality against PyTorch fp32,
// exactness against PyTorch simulating the int8 math, batch invariance, and the bundle's own integrity.
import { parityTolerance } from "../parity-tolerance";
import { describe, expect, it, beforeAll } from "vitest";
import { readFileSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { Tokenizer } from "@huggingface/tokenizers";
// @ts-expect-error plain ES module shared with scripts/eval-backbone.mjs
import { openSession, decodeWindows, compare } from "../../scripts/lib/backbone-eval.mjs";

const ROOT = new URL("../../", import.meta.url).pathname;
const catalog = JSON.parse(readFileSync(ROOT + "adapters/catalog.json", "utf8"));
const DIR = `${ROOT}adapters/backbones/${catalog.default_backbone}/`;
const cfg = JSON.parse(readFileSync(DIR + "config.json", "utf8"));
const fixture = JSON.parse(readFileSync(ROOT + "test/fixtures/parity/backbone.json", "utf8"));

describe("default backbone bundle", () => {
  it("is the one the fixtures were written for, and its config matches its files", () => {
    expect(fixture.backbone).toBe(cfg.id);
    const onnx = readFileSync(DIR + "model.onnx");
    expect(createHash("sha256").update(onnx).digest("hex")).toBe(cfg.model_sha256);
    expect(
      createHash("sha256")
        .update(readFileSync(DIR + "tokenizer.json"))
        .digest("hex"),
    ).toBe(cfg.tokenizer_sha256);
    expect(statSync(DIR + "model.onnx").size).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(cfg.quantization).not.toBe("none");
  });

  it("tokenizer.json in JS gives the ids SentencePiece gives in Python", () => {
    const tok = new Tokenizer(JSON.parse(readFileSync(DIR + "tokenizer.json", "utf8")), {});
    const bad = fixture.tokenizer_cases.filter(
      (c: { text: string; ids: number[] }) => JSON.stringify(tok.encode(c.text, { add_special_tokens: false }).ids) !== JSON.stringify(c.ids),
    );
    expect(fixture.tokenizer_cases.length).toBeGreaterThan(100);
    expect(bad.map((c: { text: string }) => c.text)).toEqual([]);
  });

  describe.each(["web", "node"])("int8 graph on onnxruntime-%s", (backend) => {
    let s: unknown;
    let res: { logprob: number[][]; top1: number[][]; lastLogits: Float32Array; V: number };
    beforeAll(async () => {
      s = await openSession(DIR + "model.onnx", backend);
      res = await decodeWindows(s, cfg, fixture);
    }, 120_000);

    it("agrees with fp32 PyTorch on >= 98% of top-1 next tokens, perplexity within +3%", () => {
      const r = compare(fixture, res);
      expect(r.positions).toBe(fixture.windows * fixture.seq);
      expect(r.top1_agreement).toBeGreaterThanOrEqual(0.98);
      expect(r.ppl / r.fp32_ppl).toBeLessThanOrEqual(1.03);
      expect(Math.abs(r.fp32_ppl - fixture.fp32_ppl) / fixture.fp32_ppl).toBeLessThan(1e-3);
    });

    it("computes what PyTorch computes simulating the int8 graph (KV-cache decode; test/parity-tolerance.ts)", () => {
      expect(compare(fixture, res).max_abs_diff_vs_int8_reference).toBeLessThanOrEqual(parityTolerance(cfg.quantization).logits);
    });

    it("gives an item the same probabilities alone as in a batch (<= 1e-4)", async () => {
      const alone = await decodeWindows(s, cfg, fixture, [3]);
      const V = res.V;
      const soft = (x: ArrayLike<number>, row: number) => {
        let m = -Infinity,
          z = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, x[row * V + v]);
        const p = new Float64Array(V);
        for (let v = 0; v < V; v++) z += p[v] = Math.exp(x[row * V + v] - m);
        return p.map((q) => q / z);
      };
      const a = soft(alone.lastLogits, 0),
        b = soft(res.lastLogits, 3);
      let m = 0;
      for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(a[v] - b[v]));
      expect(m).toBeLessThanOrEqual(1e-4);
    });
  });
});
