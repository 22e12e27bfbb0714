/**
 * The gateway's OpenAPI document has every route the gateway serves (a route left out must be
 * hidden on purpose: the console's and the reference page's own files), each with its method,
 * and is a valid OpenAPI 3.1 document. What the routes answer is checked against it end to end
 * (test/e2e/openapi.e2e.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { documentProblems, type OpenApiDocument } from "../../../test/openapi/platform-openapi.ts";
import type { RunningGateway } from "./app.ts";
import { registeredRoutes } from "./openapi.ts";
import { startTestGateway, type TestGateway } from "./test-gateway.ts";

/** Pages for people, not API: they are hidden from the document. */
const HIDDEN = [/^\/console(\/|$)/, /^\/docs(\/|$)/];

let t: TestGateway;
let gateway: RunningGateway;

beforeAll(async () => {
  t = await startTestGateway("openapi");
  gateway = t.gateway;
});

afterAll(async () => {
  await t?.stop();
});

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const doc = gateway.app.swagger() as unknown as OpenApiDocument;
    expect(doc.openapi).toBe("3.1.0");
    expect(await documentProblems(doc)).toEqual([]);
  });

  it("has every route the gateway serves, with its method", () => {
    const doc = gateway.app.swagger() as unknown as OpenApiDocument;
    const routes = registeredRoutes(gateway.app);
    expect(routes.length).toBeGreaterThan(30);
    const missing: string[] = [];
    for (const r of routes) {
      if (r.hidden) {
        expect(
          HIDDEN.some((h) => h.test(r.url)),
          `${r.method} ${r.url} is hidden from the document`,
        ).toBe(true);
        continue;
      }
      const path = r.documentedAs ?? r.url.replace(/:(\w+)/g, "{$1}");
      expect(path, `${r.method} ${r.url}: a wildcard route needs config.openapi.path`).not.toContain("*");
      if (!doc.paths[path]?.[r.method.toLowerCase()]) missing.push(`${r.method} ${path}`);
    }
    expect(missing).toEqual([]);
    // And nothing in it that the gateway does not serve.
    const served = new Set(routes.filter((r) => !r.hidden).map((r) => `${r.method} ${r.documentedAs ?? r.url.replace(/:(\w+)/g, "{$1}")}`));
    const documented = Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`));
    expect(documented.filter((d) => !served.has(d))).toEqual([]);
  });

  it("is served at /openapi.json, with a reference page at /docs that loads nothing from elsewhere", async () => {
    const base = `http://127.0.0.1:${gateway.port}`;
    const r = await fetch(`${base}/openapi.json`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as OpenApiDocument).paths["/deploy/{id}/events"]?.get).toBeDefined();
    const page = await fetch(`${base}/docs/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect(page.headers.get("content-security-policy")).not.toMatch(/https:|swagger\.io/);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    const assets = [...html.matchAll(/(?:src|href)="\.\/(static\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets, html).toEqual(expect.arrayContaining([expect.stringMatching(/swagger-ui-bundle\.js$/), expect.stringMatching(/swagger-ui\.css$/)]));
    for (const a of assets) expect((await fetch(`${base}/docs/${a}`)).status, a).toBe(200);
  });
});
