/**
 * The Files API end to end with the official `openai` client against the running platform:
 * `files.create` (with `toFile`), `retrieve`, `list` (paged, filtered), `content`, `delete`, in
 * OpenAI's shapes; batch input files refused with the line and reason of their first fault
 * (malformed JSON, a duplicate custom_id, mixed endpoints, an unknown model, over the size and
 * line limits) with nothing kept — no row, no body in the store; another tenant's files
 * answer 404 as unknown ones do.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { type APIError, toFile } from "openai";
import { describe, expect } from "vitest";
import type { Platform } from "@infera/testkit";
import { expectSchema } from "../openapi/validate.ts";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const MAX_BYTES = 64 * 1024;
const MAX_LINES = 200;

let platform: Platform;
let client: OpenAI;

const test = platformTest({ label: "files-api", env: { FILES_MAX_BYTES: String(MAX_BYTES), FILES_MAX_LINES: String(MAX_LINES) } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  client = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
}, 120_000);

const line = (id: string, o: { url?: string; model?: string; content?: string } = {}) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: o.url ?? "/v1/chat/completions",
    body: { model: o.model ?? MODEL, messages: [{ role: "user", content: o.content ?? `Hello ${id}` }], max_tokens: 8 },
  });
const jsonl = (...lines: string[]) => `${lines.join("\n")}\n`;

const upload = async (text: string, name = "input.jsonl", c = client) => c.files.create({ file: await toFile(Buffer.from(text), name), purpose: "batch" });

/** The error JSON's message (the client's own message leads with the status). */
const reason = (e: unknown) => ((e as APIError).error as { message: string }).message;

/** Every body in the platform's blob store (local backend), by file id; no temporary files either. */
function storedBodies(): string[] {
  if (!existsSync(platform.storageDir)) return [];
  return readdirSync(platform.storageDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(platform.storageDir.length + 1))
    .sort();
}

async function allFileIds(c = client): Promise<string[]> {
  const ids: string[] = [];
  for await (const f of c.files.list()) ids.push(f.id);
  return ids;
}

/** A key of a new tenant (inference scope). */
async function otherTenantKey(): Promise<string> {
  const admin = (path: string, body: unknown) =>
    fetch(`${platform.baseURL}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then((r) => r.json() as Promise<Record<string, unknown>>);
  const t = await admin("/admin/tenants", { name: `other-${Date.now()}` });
  const k = await admin("/admin/api-keys", { tenant_id: t.id, name: "k", scopes: ["inference"] });
  return k.secret as string;
}

describe("the Files API, with the official client", () => {
  test("create, retrieve, list, content and delete: OpenAI's shapes, the body byte for byte, gone after delete", async () => {
    const text = jsonl(line("a"), line("b", { content: "é ✓ 🙂" }), line("c"));
    const before = Math.floor(Date.now() / 1000);
    const f = await upload(text, "my-batch.jsonl");
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[A-Za-z0-9]{24}$/),
      object: "file",
      bytes: Buffer.byteLength(text),
      created_at: expect.any(Number),
      expires_at: f.created_at + 30 * 86_400,
      filename: "my-batch.jsonl",
      purpose: "batch",
      status: "processed",
    });
    expect(f.created_at).toBeGreaterThanOrEqual(before - 1);
    expectSchema("OpenAIFile", f);
    expect(await client.files.retrieve(f.id)).toEqual(f);
    const listed = await client.files.list({ purpose: "batch" });
    expect(listed.data[0]).toEqual(f);
    const content = await client.files.content(f.id);
    expect(content.headers.get("content-type")).toBe("application/octet-stream");
    expect(await content.text()).toBe(text);
    expect(storedBodies()).toContain(
      `files/${
        storedBodies()
          .find((p) => p.endsWith(f.id))
          ?.split("/")[1]
      }/${f.id}`,
    );

    const deleted = await client.files.delete(f.id);
    expect(deleted).toEqual({ id: f.id, object: "file", deleted: true });
    expectSchema("DeleteFileResponse", deleted);
    for (const attempt of [() => client.files.retrieve(f.id), () => client.files.content(f.id), () => client.files.delete(f.id)]) {
      const e = await attempt().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as APIError).param).toBe("file_id");
    }
    expect(await allFileIds()).not.toContain(f.id);
    expect(storedBodies().filter((p) => p.endsWith(f.id))).toEqual([]);
  });

  test("expires_after sets expires_at; list pages with limit/after/order and filters by purpose", async () => {
    const short = await client.files.create({
      file: await toFile(Buffer.from(jsonl(line("x"))), "short.jsonl"),
      purpose: "batch",
      expires_after: { anchor: "created_at", seconds: 3600 },
    });
    expect(short.expires_at).toBe(short.created_at + 3600);
    const ids = [short.id];
    for (const n of ["p1", "p2"]) ids.push((await upload(jsonl(line(n)), `${n}.jsonl`)).id);

    const mine = (await allFileIds()).filter((id) => ids.includes(id));
    expect(mine).toEqual([...ids].reverse());
    const asc = await client.files.list({ order: "asc", limit: 2, after: ids[0] });
    expect(asc.data.map((f) => f.id)).toEqual([ids[1], ids[2]]);
    const page1 = await client.files.list({ order: "desc", limit: 1 });
    expect(page1.has_more).toBe(true);
    expect(page1.data.map((f) => f.id)).toEqual([ids[2]]);
    const raw = await fetch(`${platform.openaiURL}/files?order=desc&limit=1`, { headers: { authorization: `Bearer ${platform.adminKey}` } });
    const rawPage = await raw.json();
    expect(rawPage).toMatchObject({ object: "list", has_more: true, first_id: ids[2], last_id: ids[2] });
    expectSchema("ListFilesResponse", rawPage);
    expect((await client.files.list({ purpose: "batch_output" })).data).toEqual([]);
    const bad = await client.files.list({ purpose: "fine-tune" }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as APIError).param).toBe("purpose");
  });

  test("a bad batch file is refused with the line and reason of its first fault, and nothing of it is kept", async () => {
    const ids = await allFileIds();
    const bodies = storedBodies();
    const big = Array.from({ length: 60 }, (_, i) => line(`big-${i}`, { content: "x".repeat(1200) }));
    const cases: [string, string, RegExp][] = [
      ["malformed JSON", jsonl(line("a"), line("b"), '{"custom_id": "c", "method": "POST",'), /^line 3: not valid JSON/],
      ["duplicate custom_id", jsonl(line("a"), line("b"), line("a")), /^line 3: duplicate custom_id "a" \(first on line 1\)$/],
      [
        "mixed endpoints",
        jsonl(line("a"), JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/embeddings", body: { model: MODEL, input: "x" } })),
        /^line 2: url "\/v1\/embeddings" differs from the first line's "\/v1\/chat\/completions"/,
      ],
      ["unknown model", jsonl(line("a"), line("b"), line("c", { model: "no/such-model" })), /^line 3: The model 'no\/such-model' does not exist/],
      ["an endpoint not batchable", jsonl(line("a", { url: "/v1/images/generations" })), /^line 1: url must be one of/],
      [
        "a bad request body",
        jsonl(line("a"), JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/chat/completions", body: { model: MODEL } })),
        /^line 2: body: Missing required parameter: 'messages'/,
      ],
      ["over the size limit", jsonl(...big), /^line \d+: the file is larger than the 65536 bytes this server accepts$/],
      [
        "over the line limit",
        jsonl(
          ...Array.from({ length: MAX_LINES + 1 }, (_, i) => `{"custom_id":"${i}","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}`),
        ),
        /^line 201: more than 200 requests in one file$/,
      ],
      ["empty", "", /The file has no lines/],
    ];
    for (const [what, text, expected] of cases) {
      const e = await upload(text).catch((x: unknown) => x);
      expect(e, what).toBeInstanceOf(OpenAI.BadRequestError);
      expect(reason(e), what).toMatch(expected);
      expect((e as APIError).param, what).toBe("file");
      expect((e as APIError).type, what).toBe("invalid_request_error");
    }
    // The size limit names the line where the file passed it: the 65,536th byte is on it.
    const size = (await upload(jsonl(...big)).catch((x: APIError) => x)) as APIError;
    const lineBytes = Buffer.byteLength(big[0]!) + 1;
    expect(reason(size)).toMatch(new RegExp(`^line ${Math.floor(MAX_BYTES / lineBytes) + 1}:`));
    expect(await allFileIds()).toEqual(ids);
    expect(storedBodies()).toEqual(bodies);
  });

  test("a purpose other than batch, or a form without file or purpose, is a 400 naming the field", async () => {
    const e = await client.files.create({ file: await toFile(Buffer.from(jsonl(line("a"))), "a.jsonl"), purpose: "fine-tune" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as APIError).param).toBe("purpose");
    expect(reason(e)).toContain("Supported values are: 'batch'");
    const post = (form: FormData) =>
      fetch(`${platform.openaiURL}/files`, { method: "POST", headers: { authorization: `Bearer ${platform.adminKey}` }, body: form });
    const noFile = new FormData();
    noFile.set("purpose", "batch");
    const r1 = await post(noFile);
    expect(r1.status).toBe(400);
    expect(await r1.json()).toMatchObject({ error: { param: "file", message: "Missing required parameter: 'file'." } });
    const noPurpose = new FormData();
    noPurpose.set("file", new Blob([jsonl(line("a"))]), "a.jsonl");
    const r2 = await post(noPurpose);
    expect(await r2.json()).toMatchObject({ error: { param: "purpose" } });
    const json = await fetch(`${platform.openaiURL}/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ purpose: "batch" }),
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { error: { message: string } }).error.message).toContain("multipart/form-data");
  });

  test("another tenant's key: every file route is a 404 as for an unknown id, and its list holds only its own", async () => {
    const f = await upload(jsonl(line("mine")));
    const other = new OpenAI({ apiKey: await otherTenantKey(), baseURL: platform.openaiURL, maxRetries: 0 });
    for (const attempt of [() => other.files.retrieve(f.id), () => other.files.content(f.id), () => other.files.delete(f.id)]) {
      const e = await attempt().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect(reason(e)).toBe(`No such File object: ${f.id}`);
    }
    expect(await allFileIds(other)).toEqual([]);
    const theirs = await upload(jsonl(line("theirs")), "theirs.jsonl", other);
    expect(await allFileIds(other)).toEqual([theirs.id]);
    expect(await allFileIds()).not.toContain(theirs.id);
    // Still there for its owner.
    expect(await (await client.files.content(f.id)).text()).toBe(jsonl(line("mine")));
  });
});
