// The playground (GET /) and the API docs (GET /docs) in headless Chromium (Debian's, driven by playwright-core:
// nothing downloaded), served by `wrangler dev` on a freshly seeded local state, as a new user meets them:
// enter the README's dev key, classify with every default classification adapter, stream a generation, see a readable
// error for a bad key, read the docs page, keep the key for the session only unless told to remember it. Both pages
// come with their security headers and run under their Content-Security-Policy without a single violation.
// Screenshots go to .cache/browser/ and are checked not to be blank.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startDev } from "../../scripts/lib/dev-server.mjs";
import { DEV_KEYS } from "../../scripts/lib/keys.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = ".cache/browser";
const catalog = JSON.parse(readFileSync("adapters/catalog.json", "utf8")) as { adapters: { alias: string; task: string }[] };
const readKey = DEV_KEYS.find(([, tenant, scope]) => tenant === "acme" && scope === "read")![0];
let dev: Awaited<ReturnType<typeof startDev>>;
let browser: Browser;
const violations: string[] = []; // Content-Security-Policy violations the browser reported, on any page

/** a page in a fresh context (its own storage) that reports every CSP violation into `violations` */
async function newPage(options?: Parameters<Browser["newPage"]>[0]): Promise<Page> {
  const page = await browser.newPage(options);
  await page.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)),
  );
  page.on("console", (m) => {
    if (m.type() === "error" && /CSP violation|Content Security Policy/.test(m.text())) violations.push(`${page.url()}: ${m.text()}`);
  });
  return page;
}
afterEach(() => {
  expect(violations.splice(0)).toEqual([]);
});

const api = async (path: string, body: object) =>
  (await (
    await fetch(`${dev.base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${readKey}` },
      body: JSON.stringify(body),
    })
  ).json()) as any;

/** distinct colours and the share of pixels unlike the top-left one, of a PNG decoded by the browser itself */
async function inkOf(page: Page, png: Buffer): Promise<{ colours: number; ink: number }> {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = Object.assign(document.createElement("canvas"), { width: img.width, height: img.height });
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, img.width, img.height).data;
    const colours = new Set<number>();
    let ink = 0;
    for (let i = 0; i < px.length; i += 4) {
      colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
      if (Math.abs(px[i] - px[0]) + Math.abs(px[i + 1] - px[1]) + Math.abs(px[i + 2] - px[2]) > 30) ink++;
    }
    return { colours: colours.size, ink: ink / (px.length / 4) };
  }, png.toString("base64"));
}

async function screenshot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  const png = await page.screenshot({ fullPage: true });
  writeFileSync(join(SHOTS, name), png);
  return inkOf(page, png);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/setup.sh (it installs Debian's chromium)`);
  dev = await startDev({ state: mkdtempSync(join(tmpdir(), "softedge-browser-")), port: 8797 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  dev?.stop();
});

describe("the playground in Chromium", () => {
  it("classifies with each default classification adapter, with the API's probabilities, and is not blank", async () => {
    const page = await newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(dev.base + "/");
    expect(await page.title()).toBe("softedge playground");
    await page.fill("#key", readKey);
    await page.click("#key-form button");
    await page.waitForSelector("#adapter-section:not([hidden])");
    expect(await page.textContent("#tenant")).toContain("Tenant acme");
    const classifiers = catalog.adapters.filter((a) => a.task === "classify").map((a) => a.alias);
    expect(classifiers.length).toBeGreaterThan(1);
    // a new user starts on a classifier, with example text ready to run
    await page.waitForSelector("#meta[data-alias]");
    expect(await page.inputValue("#adapter")).toBe([...classifiers].sort()[0]);
    expect(await page.inputValue("#text")).not.toBe("");
    const text = "WIN a FREE cruise!!! Reply now to claim your prize, click here";
    for (const alias of classifiers) {
      await page.selectOption("#adapter", alias);
      await page.waitForSelector(`#meta[data-alias="${alias}"]`);
      await page.fill("#text", text);
      await page.click("#run");
      await page.waitForSelector("#labels .label-row");
      const rows = await page.$$eval("#labels .label-row", (els) =>
        els.map((e) => ({
          label: (e as HTMLElement).dataset.label!,
          score: Number(e.querySelector(".score")!.textContent!.replace("%", "")) / 100,
          width: Number((e.querySelector(".bar > div") as HTMLElement).style.width.replace("%", "")) / 100,
        })),
      );
      const want = await api("/v1/classify", { adapter: alias, text });
      expect(
        rows.map((r) => r.label),
        alias,
      ).toEqual(want.scores.map((s: any) => s.label));
      rows.forEach((r, i) => {
        expect(r.score).toBeCloseTo(want.scores[i].score, 3);
        expect(r.width).toBeCloseTo(want.scores[i].score, 3);
      });
      expect(await page.isHidden("#error")).toBe(true);
      await page.evaluate(() => document.querySelector("#labels")!.replaceChildren());
    }
    await page.selectOption("#adapter", "demo/spam-prefix");
    await page.waitForSelector('#meta[data-alias="demo/spam-prefix"]');
    await page.click("#run");
    await page.waitForSelector("#labels .label-row");
    const shot = await screenshot(page, "playground.png");
    expect(shot.colours).toBeGreaterThan(50);
    expect(shot.ink).toBeGreaterThan(0.02);
    await page.close();
  });

  it("streams a generation in, ending with the text /v1/generate gives", async () => {
    const page = await newPage();
    await page.goto(dev.base + "/");
    await page.fill("#key", readKey);
    await page.click("#key-form button");
    await page.waitForSelector("#adapter-section:not([hidden])");
    await page.selectOption("#adapter", "demo/define-prefix");
    await page.waitForSelector('#meta[data-alias="demo/define-prefix"]');
    await page.fill("#text", "volcano");
    await page.fill("#max-new", "12");
    // count the token events the page shows: the text must arrive in pieces, not at the end. Each event is one
    // mutation record; records, not observer callbacks, since events read from one network chunk share a callback
    await page.evaluate(() => {
      const out = document.querySelector("#generation")!;
      (window as any).updates = 0;
      new MutationObserver((records) => {
        (window as any).updates += records.length;
      }).observe(out, { childList: true, characterData: true, subtree: true });
    });
    await page.click("#run");
    await page.waitForSelector("#generation[data-finish]");
    const got = (await page.textContent("#generation"))!;
    const want = await api("/v1/generate", { adapter: "demo/define-prefix", input: "volcano", max_new_tokens: 12 });
    expect(got).toBe(want.text);
    expect(got.length).toBeGreaterThan(0);
    expect(await page.getAttribute("#generation", "data-finish")).toBe(want.finish_reason);
    expect(await page.evaluate(() => (window as any).updates)).toBeGreaterThan(2);
    expect(await page.textContent("#timing")).toMatch(/^\d+ tokens in \d+ ms$/);
    await page.close();
  });

  it("shows a readable error for a bad key, and keeps no adapters on screen", async () => {
    const page = await newPage();
    await page.goto(dev.base + "/");
    await page.fill("#key", "se_000000000000_not-a-key");
    await page.click("#key-form button");
    await page.waitForSelector("#error:not([hidden])");
    expect(await page.textContent("#error")).toMatch(/\(invalid_key, HTTP 401\)$/);
    expect(await page.isHidden("#adapter-section")).toBe(true);
    await page.close();
  });
});

describe("the pages' security headers", () => {
  const storage = (page: Page) =>
    page.evaluate(() => ({ session: sessionStorage.getItem("softedge.key"), local: localStorage.getItem("softedge.key") }));

  it("serves both pages with a CSP (no inline code, no framing) and the other headers, and reports a violation", async () => {
    for (const path of ["/", "/docs"]) {
      const page = await newPage();
      const r = (await page.goto(dev.base + path))!;
      const h = r.headers();
      const csp = Object.fromEntries(
        h["content-security-policy"]
          .split(";")
          .map((d) => d.trim().split(/\s+/))
          .map(([k, ...v]) => [k, v]),
      );
      expect([path, csp["default-src"], csp["script-src"], csp["style-src"], csp["frame-ancestors"]]).toEqual([
        path,
        ["'none'"],
        ["'self'"],
        ["'self'"],
        ["'none'"],
      ]);
      expect([h["x-content-type-options"], h["referrer-policy"], h["x-frame-options"]]).toEqual(["nosniff", "no-referrer", "DENY"]);
      await page.close();
    }
    // the violation detector itself: an inline script is refused and reported
    const page = await newPage();
    await page.goto(dev.base + "/");
    await page.evaluate(() => document.head.append(Object.assign(document.createElement("script"), { textContent: "window.ran = 1" })));
    // Chromium's own console line first, then the securitypolicyviolation event's
    await expect.poll(() => violations.join("\n")).toMatch(/CSP violation: script-src/);
    violations.splice(0);
    expect(await page.evaluate(() => (window as any).ran)).toBeUndefined();
    await page.close();
  });

  it("keeps the key in sessionStorage by default, in localStorage only while 'remember' is ticked", async () => {
    const page = await newPage();
    await page.goto(dev.base + "/");
    expect(await page.isChecked("#remember")).toBe(false);
    await page.fill("#key", readKey);
    await page.click("#key-form button");
    await page.waitForSelector("#adapter-section:not([hidden])");
    expect(await storage(page)).toEqual({ session: readKey, local: null });
    await page.check("#remember");
    expect(await storage(page)).toEqual({ session: null, local: readKey });
    // a new visit finds the remembered key, connects with it, and shows the box ticked
    await page.reload();
    await page.waitForSelector("#adapter-section:not([hidden])");
    expect(await page.isChecked("#remember")).toBe(true);
    expect(await storage(page)).toEqual({ session: null, local: readKey });
    await page.uncheck("#remember");
    expect(await storage(page)).toEqual({ session: readKey, local: null });
    await page.close();
  });
});

describe("the API docs in Chromium", () => {
  it("renders every route of the OpenAPI document, offline, and is not blank", async () => {
    const page = await newPage({ viewport: { width: 1200, height: 1000 } });
    const external: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(dev.base) && !r.url().startsWith("data:")) external.push(r.url());
    });
    await page.goto(dev.base + "/docs");
    await page.waitForSelector(".swagger-ui .info .title");
    expect(await page.textContent(".swagger-ui .info .title")).toContain("softedge");
    const doc = (await (await fetch(`${dev.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const want = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    await page.waitForSelector(".opblock-summary-path");
    const shown = (
      await page.$$eval(".opblock", (els) =>
        els.map(
          (e) => `${e.querySelector(".opblock-summary-method")!.textContent} ${e.querySelector(".opblock-summary-path")!.getAttribute("data-path")}`,
        ),
      )
    ).sort();
    expect(shown).toEqual(want);
    expect(external).toEqual([]);
    const shot = await screenshot(page, "docs.png");
    expect(shot.colours).toBeGreaterThan(50);
    expect(shot.ink).toBeGreaterThan(0.02);
    // more of Swagger UI under the CSP (checked after each test): an operation opened, the Authorize dialog
    await page.click(".opblock-summary");
    await page.waitForSelector(".opblock-body .responses-wrapper");
    await page.click(".btn.authorize");
    await page.waitForSelector(".modal-ux input");
    // a key given to "Authorize" lives in the page only: nothing is written to the browser's storage
    await page.fill(".modal-ux input", readKey);
    await page.click(".modal-ux button.authorize");
    await page.waitForSelector('.modal-ux button[aria-label="Remove authorization"]');
    expect(await page.evaluate(() => [localStorage.length, sessionStorage.length])).toEqual([0, 0]);
    await page.close();
  });
});
