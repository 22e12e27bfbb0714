/**
 * The web console in a real browser: Debian's Chromium, headless, driven by playwright-core
 * (`scripts/ensure-chromium.sh` installs it), against the platform as `pnpm start` runs it,
 * at a laptop's 1366×768. Sign in (a wrong key is refused beside the field), deploy a model
 * (a bad name is refused beside the field; then it runs, with events and replicas), stream a
 * playground answer, create a key (its secret shown once) and revoke it, see usage charts.
 * Any console error the test did not expect fails it, every request must go to the gateway
 * itself, and each page is written as a screenshot for review (CONSOLE_SCREENSHOTS, default
 * .tmp/console-screenshots).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPlatform, type Platform } from "@infera/testkit";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = process.env.CONSOLE_SCREENSHOTS ?? fileURLToPath(new URL("../../.tmp/console-screenshots", import.meta.url));

let platform: Platform;
let context: BrowserContext;
let page: Page;
let userDataDir = "";
const consoleErrors: string[] = [];
/** HTTP statuses the next steps are expected to produce (the browser logs each as a console error). */
const expectedFailures: number[] = [];
const foreignRequests: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run 'bash scripts/ensure-chromium.sh' (installs Debian's chromium).`);
  mkdirSync(SHOTS, { recursive: true });
  platform = await startPlatform({ label: "console", env: { SIM_STARTUP_DELAY_MS: "1000", SIM_ITL_MS: "15" }, readyTimeoutMs: 120_000 });
  userDataDir = mkdtempSync(join(tmpdir(), "infera-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  const origin = new URL(platform.baseURL).origin;
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol !== "data:" && u.origin !== origin) foreignRequests.push(r.url());
  });
  page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const status = /status of (\d{3})/.exec(msg.text())?.[1];
    const i = status ? expectedFailures.indexOf(Number(status)) : -1;
    if (i >= 0) expectedFailures.splice(i, 1);
    else consoleErrors.push(msg.text());
  });
  page.on("dialog", (d) => void d.accept());
}, 180_000);

afterAll(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await platform?.stop();
});

describe("the web console", () => {
  it("refuses a wrong key beside the field, then signs in with the admin key", async () => {
    await page.goto(`${platform.baseURL}/console`);
    await expect.poll(() => page.url()).toBe(`${platform.baseURL}/console/`);
    const key = page.getByLabel("API key");
    await key.fill("sk-wrong-key-0000000000000000");
    expectedFailures.push(401);
    await key.press("Enter");
    await expect.poll(() => page.locator(".field-error").textContent()).toContain("Incorrect API key provided.");
    await shot("login");
    await key.fill(platform.adminKey);
    await key.press("Enter");
    await page.getByRole("heading", { name: "Deployments" }).waitFor();
    // The key lives in this tab's session storage only.
    expect(await page.evaluate(() => [sessionStorage.getItem("infera.key") !== null, localStorage.length, document.cookie])).toEqual([true, 0, ""]);
  });

  it("deploys a model from a form that knows the GPU types, engines and engine profiles, naming a bad field beside it", async () => {
    // By keyboard: the navigation is reachable with Tab, and Enter follows a link.
    await page.keyboard.press("Tab"); // skip link
    await page.keyboard.press("Tab"); // first nav link
    await page.keyboard.press("Tab");
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Deploy a model");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Deploy a model" }).waitFor();

    const gpu = page.getByLabel("GPU type");
    // Local mode's GPU types; the catalog's chat model holds one A100.
    await expect.poll(() => gpu.locator("option").allTextContents()).toEqual(["A100-80GB (7 of 8 free)", "H100-80GB (8 of 8 free)", "L4 (8 of 8 free)"]);
    expect(await page.getByLabel("Engine", { exact: true }).locator("option").allTextContents()).toEqual(["vLLM", "Text Generation Inference"]);
    // The operator's profiles for the chosen engine (local mode: the built-in one per engine).
    await expect.poll(() => page.getByLabel("Engine profile").locator("option").allTextContents()).toEqual(["vllm"]);

    await page.getByLabel("Model name").fill("not a name!");
    await gpu.selectOption("L4");
    expectedFailures.push(400);
    await page.getByRole("button", { name: "Deploy" }).click();
    const modelField = page.locator(".field", { has: page.getByLabel("Model name") });
    await expect.poll(() => modelField.locator(".field-error").textContent()).toMatch(/model_name/);
    expect(await page.getByLabel("Model name").getAttribute("aria-invalid")).toBe("true");
    await shot("deploy-form");

    await page.getByLabel("Model name").fill("console-llama");
    await page.getByRole("button", { name: "Deploy" }).click();
    await page.getByRole("heading", { name: /admin\/console-llama:1/ }).waitFor();
    // Live: it reaches running, with a ready replica and the lifecycle in its events.
    await page.locator("h1 .status", { hasText: "running" }).waitFor({ timeout: 90_000 });
    await page.locator("table tbody tr", { hasText: "ready" }).waitFor({ timeout: 30_000 });
    const events = page.locator("ol.events li");
    await expect
      .poll(() => events.allTextContents(), { timeout: 15_000 })
      .toEqual(expect.arrayContaining([expect.stringContaining("initializing"), expect.stringMatching(/deploying.*running.*a replica is serving/)]));
    expect(await page.locator("table tbody tr").first().textContent()).toContain("1× L4");
    await expect.poll(() => page.getByRole("log").textContent(), { timeout: 15_000 }).toMatch(/agent listening/);
    await shot("deployment");

    await page.getByRole("link", { name: "Deployments", exact: true }).click();
    await page.locator("tbody tr", { hasText: "admin/console-llama:1" }).locator(".status", { hasText: "running" }).waitFor();
    await shot("deployments");
  }, 150_000);

  it("streams a chat completion in the playground", async () => {
    await page.getByRole("link", { name: "Playground" }).click();
    const model = page.getByLabel("Model");
    await expect.poll(() => model.locator("option").allTextContents()).toContain("admin/console-llama");
    await model.selectOption("admin/console-llama");
    await page.getByLabel("Max tokens").fill("24");
    await page.getByLabel("Your message").fill("Tell me about lamb.");
    // Ctrl+Enter sends; the answer grows while the stream is open, then its usage shows.
    await page.getByLabel("Your message").press("Control+Enter");
    const answer = page.getByTestId("answer");
    await expect.poll(() => answer.textContent(), { timeout: 15_000 }).toMatch(/\w{2,}/);
    const partial = (await answer.textContent()) ?? "";
    await page.getByTestId("answer-meta").waitFor({ timeout: 30_000 });
    expect(((await answer.textContent()) ?? "").length).toBeGreaterThan(partial === "…" ? 0 : partial.length - 1);
    expect(await page.getByTestId("answer-meta").textContent()).toMatch(/\d+ prompt \+ 24 completion tokens · first token after \d+ ms/);
    await shot("playground");
  });

  it("creates a key whose secret is shown once, and revokes it", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByLabel("Name").fill("console-key");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("new-secret").textContent()) ?? "";
    expect(secret).toMatch(/^sk-/);
    await shot("key-created");
    const works = await fetch(`${platform.openaiURL}/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(works.status).toBe(200);
    // Escape closes the dialog; the secret is nowhere on the page after that.
    await page.keyboard.press("Escape");
    const row = page.locator("tbody tr", { hasText: "console-key" });
    await row.waitFor();
    expect(await page.content()).not.toContain(secret);
    expect(await row.textContent()).toContain(secret.slice(0, 7));

    await row.getByRole("button", { name: "Revoke console-key" }).click();
    await expect.poll(() => row.textContent()).toContain("revoked");
    await shot("keys");
    await expect
      .poll(async () => (await fetch(`${platform.openaiURL}/models`, { headers: { authorization: `Bearer ${secret}` } })).status, { timeout: 5_000 })
      .toBe(401);
  });

  it("charts usage per model, key and day", async () => {
    await page.getByRole("link", { name: "Usage" }).click();
    await expect.poll(() => page.getByTestId("usage-total").textContent(), { timeout: 15_000 }).toMatch(/^[1-9]\d* requests?/);
    for (const title of ["Tokens per day", "Tokens per model", "Tokens per key"]) {
      const panel = page.getByRole("region", { name: title });
      await panel.locator("canvas").waitFor();
      expect(await panel.locator("canvas").evaluate((c: HTMLCanvasElement) => c.width > 0 && c.height > 0)).toBe(true);
    }
    expect(await page.getByRole("region", { name: "Tokens per model" }).locator("tbody").textContent()).toContain("admin/console-llama");
    expect(await page.getByRole("region", { name: "Tokens per day" }).locator("tbody").textContent()).toContain(new Date().toISOString().slice(0, 10));
    await shot("usage");
  });

  it("the API reference at /docs renders the OpenAPI document from the gateway alone", async () => {
    await page.goto(`${platform.baseURL}/docs`);
    await page.getByText("/deploy/{id}/events").first().waitFor({ timeout: 30_000 });
    expect(await page.getByText("/v1/openai/chat/completions").count()).toBeGreaterThan(0);
    await shot("api-docs");
  });

  it("logged no console error, asked nothing of anyone but the gateway, and expected failures all happened", () => {
    expect(consoleErrors).toEqual([]);
    expect(foreignRequests).toEqual([]);
    expect(expectedFailures).toEqual([]);
  });
});
