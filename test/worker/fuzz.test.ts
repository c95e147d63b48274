// Fuzzing the public endpoints with generated bad requests (seeded, so a failure replays): wrong types, huge and
// deeply nested JSON, invalid UTF-8, control characters, unknown fields, boundary numbers, bad headers and paths.
// Every answer must be a 4xx (or a 200 where the mutation happened to be valid) in the JSON error shape, never a
// 500 or a stack trace, and the worker must still answer a good request afterwards.
import { env } from "cloudflare:test";
import { beforeAll, expect, it } from "vitest";
import { bytes, call, newKey, putAdapter, seedDefaults } from "./helpers";

let key: string;
let artifact: Uint8Array;
const unlimited = { ...env, RATE_LIMITER: undefined }; // thousands of calls from one tenant: not a rate-limit test

/** mulberry32: a small seeded generator */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const deep = (n: number, open = "[", close = "]") => open.repeat(n) + close.repeat(n);
const numbers = [-1, 0, 1, 63, 64, 65, 100000, 2 ** 31, 2 ** 32, 2 ** 53 + 1, -(2 ** 53), 1e308, -1e308, 5e-324, 0.5, -0.0, 1.5];
const strings = [
  "",
  " ",
  "\u0000",
  "\u0007\u001b[31m",
  "\ud800",
  "\udfff\ud800",
  "😀".repeat(3000),
  "x".repeat(9000),
  "a\r\nb\tc",
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "demo/spam-prefix@zzzz",
  "demo/",
  "/spam",
  "DEMO/SPAM",
  "acme/spam\u0000x",
  "%2e%2e%2f",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style probe, on purpose
  "${jndi}",
];

function value(r: () => number, depth = 0): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  switch (Math.floor(r() * 8)) {
    case 0:
      return pick(numbers);
    case 1:
      return pick(strings);
    case 2:
      return pick([true, false, null]);
    case 3:
      return depth > 2 ? [] : Array.from({ length: Math.floor(r() * 4) }, () => value(r, depth + 1));
    case 4:
      return depth > 2 ? {} : { [pick(["text", "adapter", "items", "x", "__proto__", "constructor"])]: value(r, depth + 1) };
    case 5:
      return Array.from({ length: 40 }, () => "a");
    case 6:
      return pick(["demo/spam-prefix", "demo/define-prefix", "acme/none"]);
    default:
      return r() < 0.5 ? "ok text" : Math.floor(r() * 200) - 50;
  }
}

const good: Record<string, Record<string, unknown>> = {
  "/v1/classify": { adapter: "demo/spam-prefix", text: "hello there" },
  "/v1/generate": { adapter: "demo/define-prefix", input: "cat", max_new_tokens: 2 },
  "/v1/tenant/defaults": { classify: "demo/spam-prefix" },
  "/v1/adapters/acme/fz/rollback": {},
};

/** one bad request: [method, path, headers, body] */
function badRequest(r: () => number): [string, string, Record<string, string>, BodyInit | undefined] {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const path = pick(Object.keys(good));
  const method = path === "/v1/tenant/defaults" ? "PUT" : "POST";
  const json = { "content-type": "application/json" };
  const body = structuredClone(good[path]) as Record<string, unknown>;
  switch (Math.floor(r() * 12)) {
    case 0: {
      // a field replaced by a value of any type
      const k = pick([
        ...Object.keys(body),
        "text",
        "items",
        "max_new_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "stream",
        "version",
        "no_repeat_ngram_size",
      ]);
      body[k] = value(r);
      return [method, path, json, JSON.stringify(body)];
    }
    case 1:
      body[pick(["foo", "__proto__", "Text", "adapter ", "\u0000"])] = value(r);
      return [method, path, json, JSON.stringify(body)];
    case 2:
      delete body[pick(Object.keys(body).concat("text"))];
      return [method, path, json, JSON.stringify(body)];
    case 3:
      return [method, path, json, `{"text": ${deep(pick([100, 10000, 200000]))}}`];
    case 4:
      return [method, path, json, deep(pick([1000, 100000]), '{"a":', "}").replace(/}+$/, (m) => "1" + m)];
    case 5: {
      // invalid UTF-8 inside a string
      const pre = new TextEncoder().encode('{"adapter":"demo/spam-prefix","text":"');
      const bad = pick([[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]]);
      return [method, path, json, new Uint8Array([...pre, ...bad, ...new TextEncoder().encode('"}')])];
    }
    case 6:
      return [method, path, json, pick(["", "{", "null", "[]", "1", '"x"', '{"text": "a",}', "{'text': 'a'}", "\ufeff{}", '{"text":"a"}{}', "NaN"])];
    case 7:
      return [
        method,
        path,
        pick([
          {},
          { "content-type": "text/plain" },
          { "content-type": "application/json; charset=latin1" },
          { "content-type": "multipart/form-data" },
        ]),
        JSON.stringify(body),
      ];
    case 8: {
      // boundary numbers in the numeric fields
      const k = pick(["max_new_tokens", "temperature", "top_k", "top_p", "seed", "no_repeat_ngram_size"]);
      return [method, path, json, JSON.stringify({ ...body, [k]: pick(numbers) }).replace("1e+308", pick(["1e999", "-1e999", "1e308"]))];
    }
    case 9:
      return [
        method,
        path,
        json,
        JSON.stringify({ items: Array.from({ length: pick([0, 33, 1000]) }, () => ({ adapter: "demo/spam-prefix", text: pick(strings) || "x" })) }),
      ];
    case 10:
      return [
        pick(["GET", "DELETE", "PATCH", "PUT"]),
        pick([
          ...Object.keys(good),
          "/v1/adapters/%00/x",
          "/v1/adapters/a/b/c/d",
          "/v1/adapters/" + "a".repeat(300) + "/b",
          "/v1/tenant/grants/%2F..%2F",
          "/v1/adapters/acme/x/versions?x=\u0000",
        ]),
        json,
        undefined,
      ];
    default:
      return [
        method,
        path,
        { ...json, "content-length": String(pick([0, 5])) },
        JSON.stringify({ text: pick(strings) || "x", adapter: pick(strings) }),
      ];
  }
}

beforeAll(async () => {
  await seedDefaults();
  key = await newKey("acme", "admin");
  artifact = await bytes("adapters/default/spam-prefix.safetensors");
  expect((await putAdapter("acme/fz", key, artifact)).status).toBe(201);
});

it("survives generated bad requests: no 500, every error in the JSON shape, a good request still answers", async () => {
  const r = rng(20261129);
  const statuses: Record<number, number> = {};
  const authHeaders = [
    "",
    "Bearer",
    "Bearer ",
    `Basic ${btoa("a:b")}`,
    `Bearer ${key}x`,
    `Bearer ${key.toUpperCase()}`,
    "Bearer se_zzzzzzzzzzzz_aaaaaaaaaaaaaaaaaaaa",
    `bearer  ${key}`,
  ];
  let cases = 0;
  for (let i = 0; i < 5000; i++) {
    let [method, path, headers, body] = badRequest(r);
    // one in eight with a broken Authorization header; the rest with the good key
    headers = { ...headers, authorization: r() < 0.125 ? authHeaders[Math.floor(r() * authHeaders.length)] : `Bearer ${key}` };
    if (r() < 0.08) {
      // random bytes as an adapter upload
      method = "PUT";
      path = "/v1/adapters/acme/fz";
      headers["content-type"] = "application/octet-stream";
      const b = artifact.slice(0, Math.floor(r() * artifact.length));
      for (let k = 0; k < 4; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      body = b;
    }
    let res: Response;
    try {
      res = await call(method, path, { headers, body: method === "GET" ? undefined : body }, unlimited);
    } catch (e) {
      // the test client refusing to build the request (e.g. a header it forbids) is not a worker answer
      if (e instanceof TypeError) continue;
      throw e;
    }
    cases++;
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    const text = await res.text();
    expect(res.status, `${method} ${path} ${String(body).slice(0, 200)}`).not.toBe(500);
    expect(res.status).toBeLessThan(600);
    if (res.status >= 400) {
      const j = JSON.parse(text);
      expect(typeof j.error.code).toBe("string");
      expect(typeof j.error.message).toBe("string");
      expect(text).not.toMatch(/\n\s+at |\.ts:\d+|Error:/);
      expect(text).not.toContain(key);
    }
  }
  const ok = await call("POST", "/v1/classify", { key, headers: { "content-type": "application/json" }, body: JSON.stringify(good["/v1/classify"]) });
  expect(ok.status).toBe(200);
  expect(cases).toBeGreaterThanOrEqual(5000 * 0.95);
  console.log(`fuzz: ${cases} cases, statuses ${JSON.stringify(statuses)}`);
});
