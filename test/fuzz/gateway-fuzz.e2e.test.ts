/**
 * Hostile input against the gateway's JSON endpoints, from a seeded PRNG (FUZZ_SEED to
 * replay, FUZZ_CASES for more): random and mutated bodies, huge strings, deep nesting,
 * wrong types, invalid UTF-8, slow-loris bodies and header abuse. Every answer is a 4xx
 * with OpenAI's error JSON or a success; nothing is a 5xx; the gateway never crashes;
 * no job is enqueued for a request the gateway rejected; memory stays bounded. Auth
 * leaks nothing by timing, and no secret reaches a log line.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRng } from "../../services/engine-sim/src/random.ts";
import { metricSum, sampleProcess, servicePids, startPlatform, type Platform } from "@infera/testkit";
import { gatewayMetrics, isOpenAIError, MODEL, RESPONSES_INPUT } from "../faults/harness.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20240917);
const CASES = Number(process.env.FUZZ_CASES ?? 300);
const REQUEST_TIMEOUT_MS = 2000;

let platform: Platform;
let gatewayPid = 0;
/** Every secret presented during the suite: none may appear in a log. */
const secrets: string[] = [];

beforeAll(async () => {
  platform = await startPlatform({
    label: "fuzz",
    readyTimeoutMs: 240_000,
    catalog: ["chat", "embeddings"],
    env: { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS), BODY_LIMIT_BYTES: String(2 * 1024 * 1024) },
  });
  secrets.push(platform.adminKey);
  gatewayPid = servicePids(platform.pid, "gateway")[0] ?? 0;
  expect(gatewayPid).toBeGreaterThan(0);
}, 300_000);
afterAll(async () => {
  await platform?.stop();
}, 120_000);

const ENDPOINTS = ["/chat/completions", "/completions", "/embeddings", "/images/generations", "/responses"] as const;
const VALID: Record<(typeof ENDPOINTS)[number], Record<string, unknown>> = {
  "/chat/completions": { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 3 },
  "/completions": { model: MODEL, prompt: "hi", max_tokens: 3 },
  "/embeddings": { model: "BAAI/bge-large-en-v1.5", input: "hi" },
  "/images/generations": { prompt: "a cat", n: 1 },
  // Items, tools and a format: what the Responses translation reads, for the mutations to reach.
  "/responses": {
    model: MODEL,
    input: structuredClone(RESPONSES_INPUT),
    tools: [{ type: "function", name: "f", parameters: { type: "object", properties: {} } }],
    tool_choice: "auto",
    text: { format: { type: "json_schema", name: "n", schema: { type: "object" } } },
    max_output_tokens: 3,
  },
};

interface Case {
  name: string;
  path: string;
  body: Buffer;
  headers: Record<string, string>;
}

function randomValue(rnd: () => number, depth = 0): unknown {
  const k = Math.floor(rnd() * (depth > 3 ? 6 : 8));
  switch (k) {
    case 0:
      return null;
    case 1:
      return rnd() < 0.5;
    case 2:
      return [0, -1, 1e308, -1e308, 3.5, 2 ** 53 + 1, 1e-300][Math.floor(rnd() * 7)];
    case 3:
      return ["", "x", "\u0000", "\ud800", "🤖".repeat(50), "<|eot_id|>", "' OR 1=1 --", "a".repeat(Math.floor(rnd() * 5000))][Math.floor(rnd() * 8)];
    case 4:
      return "user";
    case 5:
      return Math.floor(rnd() * 100);
    case 6:
      return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rnd() * 4); i > 0; i--)
        o[["role", "content", "model", "messages", "__proto__", "constructor", "x"][Math.floor(rnd() * 7)]!] = randomValue(rnd, depth + 1);
      return o;
    }
  }
}

const FIELDS = [
  "model",
  "messages",
  "prompt",
  "input",
  "max_tokens",
  "temperature",
  "stream",
  "n",
  "stop",
  "top_p",
  "seed",
  "stream_options",
  "response_format",
  "size",
  "tools",
  "logit_bias",
  "user",
];

function mutate(rnd: () => number, base: Record<string, unknown>): Record<string, unknown> {
  const o = structuredClone(base) as Record<string, unknown>;
  for (let i = 1 + Math.floor(rnd() * 3); i > 0; i--) {
    const f = FIELDS[Math.floor(rnd() * FIELDS.length)]!;
    const op = rnd();
    if (op < 0.3) delete o[f];
    else o[f] = randomValue(rnd);
  }
  return o;
}

function deep(n: number): string {
  return `${'{"a":['.repeat(n)}1${"]}".repeat(n)}`;
}

function makeCases(rnd: () => number, n: number): Case[] {
  const json = { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` };
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const path = ENDPOINTS[Math.floor(rnd() * ENDPOINTS.length)]!;
    const kind = Math.floor(rnd() * 10);
    let body: Buffer;
    let name: string;
    let headers: Record<string, string> = json;
    switch (kind) {
      case 0:
        name = "random JSON value";
        body = Buffer.from(JSON.stringify(randomValue(rnd)) ?? "null");
        break;
      case 1:
      case 2:
      case 3:
        name = "mutated valid body";
        body = Buffer.from(JSON.stringify(mutate(rnd, VALID[path])));
        break;
      case 4:
        name = "huge string";
        body = Buffer.from(JSON.stringify({ ...VALID[path], [rnd() < 0.5 ? "model" : "user"]: "x".repeat(1_000_000 + Math.floor(rnd() * 1_500_000)) }));
        break;
      case 5:
        name = "deep nesting";
        body = Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":${deep(1000 + Math.floor(rnd() * 20000))}}]}`);
        break;
      case 6: {
        name = "invalid UTF-8";
        const valid = Buffer.from(JSON.stringify(VALID[path]));
        const at = Math.floor(rnd() * valid.length);
        body = Buffer.concat([valid.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]), valid.subarray(at)]);
        break;
      }
      case 7: {
        name = "truncated or random bytes";
        const valid = Buffer.from(JSON.stringify(VALID[path]));
        body =
          rnd() < 0.5
            ? valid.subarray(0, Math.floor(rnd() * valid.length))
            : Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
        break;
      }
      case 8:
        name = "bad content-type";
        body = Buffer.from(JSON.stringify(VALID[path]));
        headers = {
          authorization: json.authorization,
          "content-type": [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
            "",
            "application/jsonx",
          ][Math.floor(rnd() * 6)]!,
        };
        break;
      default:
        name = "wrong types in every field";
        body = Buffer.from(JSON.stringify(Object.fromEntries(Object.keys(VALID[path]).map((k) => [k, randomValue(rnd)]))));
    }
    out.push({ name, path, body, headers });
  }
  return out;
}

interface Answer {
  status: number;
  text: string;
}

async function send(c: Case): Promise<Answer> {
  const res = await fetch(`${platform.openaiURL}${c.path}`, {
    method: "POST",
    headers: c.headers,
    body: new Uint8Array(c.body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, text: await res.text() };
}

function expectOpenAIAnswer(a: Answer, what: string): void {
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
  if (a.status >= 400) {
    let j: unknown;
    try {
      j = JSON.parse(a.text);
    } catch {
      j = undefined;
    }
    expect(isOpenAIError(j), `${what}: ${a.status} ${a.text.slice(0, 300)}`).toBe(true);
  }
}

describe("hostile input: random and mutated bodies", () => {
  it(`answers ${CASES} seeded cases (seed ${SEED}) with a 4xx in OpenAI's shape or a success, never a 5xx, and enqueues only what reached an engine`, async () => {
    const before = await gatewayMetrics(platform);
    const rss0 = sampleProcess(gatewayPid)!.rssKb;
    const rnd = createRng(SEED);
    const counts: Record<string, number> = {};
    let ok = 0;
    for (const c of makeCases(rnd, CASES)) {
      const a = await send(c);
      counts[`${c.name} → ${a.status}`] = (counts[`${c.name} → ${a.status}`] ?? 0) + 1;
      expectOpenAIAnswer(a, c.name);
      if (a.status === 200) ok++;
    }
    console.log("[fuzz] answers", counts);
    const after = await gatewayMetrics(platform);
    const delta = (name: string, match: Record<string, string> = {}) => metricSum(after, name, match) - metricSum(before, name, match);
    // Every request the gateway placed (a leased slot or the queue) went to an engine (served, or
    // refused by the engine itself); everything the gateway rejected was rejected before placement.
    expect(delta("gateway_placements_total")).toBe(
      delta("gateway_agent_calls_total", { outcome: "ok" }) + delta("gateway_agent_calls_total", { outcome: "engine_error" }),
    );
    expect(delta("gateway_agent_calls_total", { outcome: "ok" })).toBe(ok);
    expect(delta("gateway_errors_total", { code: "internal" })).toBe(0);
    expect(sampleProcess(gatewayPid)!.rssKb - rss0).toBeLessThan(400 * 1024);
  }, 240_000);

  it("answers a body over the limit with 413 in OpenAI's shape", async () => {
    const a = await send({
      name: "too large",
      path: "/chat/completions",
      headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
      body: Buffer.alloc(3 * 1024 * 1024, 0x20),
    });
    expect(a.status).toBe(413);
    expectOpenAIAnswer(a, "too large");
  });

  it("lets a client finish writing a body over the limit, answers 413, and keeps the connection for its next request", async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 0x20);
    const post = `POST /v1/openai/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${platform.adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const next = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const r = await raw(post, { bodyBytes: Buffer.concat([body, Buffer.from(next)]), timeoutMs: 20_000 });
    expect(r.text.startsWith("HTTP/1.1 413")).toBe(true);
    expect(r.text).toContain("HTTP/1.1 200");
    expect(r.text).toContain('{"status":"ok"}');
  });
});

/** A raw HTTP exchange on a socket; resolves with what the server sent when it closes (or at `timeoutMs`). */
function raw(
  head: string,
  opts: { bodyBytes?: Buffer; byteEveryMs?: number; timeoutMs: number },
): Promise<{ text: string; closedAfterMs: number; closed: boolean }> {
  return new Promise((resolve) => {
    const url = new URL(platform.baseURL);
    const started = Date.now();
    const s = connect(Number(url.port), url.hostname);
    let text = "";
    let timer: NodeJS.Timeout | undefined;
    const end = (closed: boolean) => {
      if (timer) clearInterval(timer);
      clearTimeout(hard);
      s.destroy();
      resolve({ text, closedAfterMs: Date.now() - started, closed });
    };
    const hard = setTimeout(() => end(false), opts.timeoutMs);
    s.on("data", (d) => (text += d.toString()));
    s.on("close", () => end(true));
    s.on("error", () => {});
    s.on("connect", () => {
      s.write(head);
      const body = opts.bodyBytes;
      if (body && opts.byteEveryMs) {
        let i = 0;
        timer = setInterval(() => {
          if (i < body.length && !s.destroyed) s.write(body.subarray(i, ++i));
        }, opts.byteEveryMs);
      } else if (body) s.write(body);
    });
  });
}

function bodyJson(httpText: string): unknown {
  const i = httpText.indexOf("\r\n\r\n");
  try {
    return JSON.parse(httpText.slice(i + 4));
  } catch {
    return undefined;
  }
}

describe("hostile input: slow-loris and header abuse", () => {
  it("cuts off a body sent one byte at a time with a 408 in OpenAI's shape, within the request timeout", async () => {
    const body = Buffer.from(JSON.stringify(VALID["/chat/completions"]));
    const head = `POST /v1/openai/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${platform.adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const r = await raw(head, { bodyBytes: body, byteEveryMs: 400, timeoutMs: 20_000 });
    expect(r.closed).toBe(true);
    expect(r.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS * 4);
    expect(r.text.startsWith("HTTP/1.1 408")).toBe(true);
    expect(isOpenAIError(bodyJson(r.text))).toBe(true);
  });

  it("cuts off headers sent slowly", async () => {
    const r = await new Promise<{ closed: boolean; ms: number }>((resolve) => {
      const url = new URL(platform.baseURL);
      const s = connect(Number(url.port), url.hostname);
      const t0 = Date.now();
      const line = "X-Slow: a\r\n";
      s.write("POST /v1/openai/chat/completions HTTP/1.1\r\nHost: x\r\n");
      const iv = setInterval(() => !s.destroyed && s.write(line), 300);
      const hard = setTimeout(() => done(false), 20_000);
      const done = (closed: boolean) => {
        clearInterval(iv);
        clearTimeout(hard);
        s.destroy();
        resolve({ closed, ms: Date.now() - t0 });
      };
      s.on("close", () => done(true));
      s.on("error", () => {});
    });
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(REQUEST_TIMEOUT_MS * 4);
  });

  it("answers huge headers with 431 in OpenAI's shape", async () => {
    const r = await raw(`GET /v1/openai/models HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`, { timeoutMs: 10_000 });
    expect(r.text.startsWith("HTTP/1.1 431")).toBe(true);
    expect(isOpenAIError(bodyJson(r.text))).toBe(true);
  });

  it("answers bytes that are not HTTP with 400 in OpenAI's shape", async () => {
    const r = await raw("\u0000\u0001GARBAGE \r\n\r\n", { timeoutMs: 10_000 });
    expect(r.text.startsWith("HTTP/1.1 400")).toBe(true);
    expect(isOpenAIError(bodyJson(r.text))).toBe(true);
  });

  it("survives many headers, duplicate and malformed authorization, and odd content types", async () => {
    const many: Record<string, string> = { authorization: `Bearer ${platform.adminKey}`, "content-type": "application/json" };
    for (let i = 0; i < 500; i++) many[`x-h-${i}`] = "v".repeat(20);
    const body = JSON.stringify(VALID["/chat/completions"]);
    const answers: Answer[] = [];
    const post = async (headers: Record<string, string> | [string, string][]) => {
      const res = await fetch(`${platform.openaiURL}/chat/completions`, { method: "POST", headers, body, signal: AbortSignal.timeout(20_000) });
      answers.push({ status: res.status, text: await res.text() });
    };
    await post(many);
    await post([
      ["authorization", `Bearer ${platform.adminKey}`],
      ["authorization", "Bearer sk-other"],
      ["content-type", "application/json"],
    ]);
    for (const auth of [
      "Bearer",
      "Bearer ",
      "Basic abc",
      `bearer ${platform.adminKey}`,
      `Bearer ${"k".repeat(10_000)}`,
      "Bearer \u00ff\u00fe",
      `Bearer  ${platform.adminKey} `,
    ]) {
      await post({ authorization: auth, "content-type": "application/json" });
    }
    for (const a of answers) expectOpenAIAnswer(a, "header abuse");
  });
});

describe("auth timing", () => {
  /**
   * Keys are looked up by their SHA-256, so a presented key that shares the real key's
   * prefix hashes as unrelated as any other. The test sends wrong keys of two kinds,
   * interleaved (ABAB…, so a busy neighbour slows both alike), each one fresh (both go
   * to the database), and compares medians with a relative bound plus an absolute floor:
   * robust on a busy 2-core machine, yet a lookup that short-circuits on a known prefix
   * (a cache or index hit vs. a miss) would show as a systematic gap.
   */
  it("takes as long to refuse a key that shares the real key's prefix as a random one", async () => {
    const N = 150;
    const prefix = platform.adminKey.slice(0, platform.adminKey.length - 8);
    const near: number[] = [];
    const far: number[] = [];
    const once = async (key: string) => {
      const t = performance.now();
      const res = await fetch(`${platform.openaiURL}/models`, { headers: { authorization: `Bearer ${key}` } });
      await res.text();
      expect(res.status).toBe(401);
      return performance.now() - t;
    };
    for (let i = 0; i < 10; i++) await once(`sk-warm-${randomBytes(8).toString("hex")}`);
    for (let i = 0; i < N; i++) {
      const a = `${prefix}${randomBytes(4).toString("hex")}`;
      const b = `sk-admin-${randomBytes(16).toString("hex")}`;
      secrets.push(a, b);
      if (i % 2 === 0) {
        near.push(await once(a));
        far.push(await once(b));
      } else {
        far.push(await once(b));
        near.push(await once(a));
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const mNear = median(near);
    const mFar = median(far);
    console.log(`[auth timing] median near-prefix ${mNear.toFixed(2)} ms, random ${mFar.toFixed(2)} ms`);
    expect(Math.abs(mNear - mFar)).toBeLessThan(Math.max(2, 0.35 * Math.min(mNear, mFar)));
  });
});

describe("after the suite", () => {
  it("the gateway never crashed (same process) and still serves", async () => {
    expect(servicePids(platform.pid, "gateway")).toEqual([gatewayPid]);
    const res = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}` },
      body: JSON.stringify(VALID["/chat/completions"]),
    });
    expect(res.status).toBe(200);
  });

  it("no secret appears in any log line (platform output and replica logs)", () => {
    const texts = [platform.output()];
    for (const f of readdirSync(platform.logDir)) texts.push(readFileSync(`${platform.logDir}/${f}`, "utf8"));
    const all = texts.join("\n");
    expect(all.length).toBeGreaterThan(0);
    const leaked = secrets.filter((s) => all.includes(s) || all.includes(s.slice(-24)));
    expect(leaked).toEqual([]);
  });
});
