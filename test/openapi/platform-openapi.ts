/**
 * Checks real answers against the platform's own OpenAPI document (`/openapi.json`): the
 * document itself against the OpenAPI 3.1 schema, then each answer against the response the
 * document declares for its operation, status and content type (JSON Schema 2020-12, with the
 * document's components). It remembers which operations were checked, so a test can require
 * that every documented operation was.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

interface Operation {
  operationId?: string;
  parameters?: { in: string; name: string; required?: boolean; schema: unknown }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
}

const METHODS = ["get", "put", "post", "delete", "patch"];

/** Problems the OpenAPI 3.1 schema finds in the document (empty when it is valid). */
export async function documentProblems(doc: OpenApiDocument): Promise<string[]> {
  const res = await new Validator().validate(structuredClone(doc) as unknown as Parameters<Validator["validate"]>[0]);
  if (res.valid) return [];
  return (Array.isArray(res.errors) ? res.errors : [res.errors]).map((e) => JSON.stringify(e).slice(0, 400));
}

export class OpenApiChecker {
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();
  /** `METHOD /path/template` of every operation an answer was checked against. */
  readonly checked = new Set<string>();

  constructor(readonly doc: OpenApiDocument) {
    this.ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats.default(this.ajv);
    this.ajv.addSchema({ $id: "doc", components: doc.components });
  }

  /** Every documented operation, `METHOD /path/template`. */
  operations(): string[] {
    return Object.entries(this.doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`));
  }

  /** The documented path a concrete path matches (`/deploy/dep_1/events` → `/deploy/{id}/events`), the most literal first. */
  template(path: string): string | undefined {
    const p = path.split("?")[0]!;
    const candidates = Object.keys(this.doc.paths).filter((t) => {
      const re = new RegExp(`^${t.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+(?:/[^/]+)*?")}$`);
      return re.test(p);
    });
    // Fewest parameters first (`/deploy/list` before `/deploy/{id}`), then the longest (`/deploy/{id}/events` before `/deploy/{id}`).
    const params = (t: string) => t.match(/\{/g)?.length ?? 0;
    return candidates.sort((a, b) => params(a) - params(b) || b.length - a.length)[0];
  }

  /** Violations of `body` against the operation's declared answer for `status` (empty when it conforms). */
  problems(method: string, path: string, status: number, contentType: string, body: unknown): string[] {
    const template = this.template(path);
    if (!template) return [`${method} ${path}: no such path in the document`];
    const op = this.doc.paths[template]?.[method.toLowerCase()];
    if (!op) return [`${method} ${template}: not in the document`];
    const res = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default;
    if (!res) return [`${method} ${template}: status ${status} is not documented (documented: ${Object.keys(op.responses).join(", ")})`];
    const type = contentType.split(";")[0]!.trim();
    const media = res.content?.[type];
    if (!media) return [`${method} ${template} ${status}: content type ${type} is not documented (${Object.keys(res.content ?? {}).join(", ")})`];
    const key = `${method.toUpperCase()} ${template} ${status} ${type}`;
    let validate = this.compiled.get(key);
    if (!validate) {
      // References into the document's components resolve against it.
      validate = this.ajv.compile(JSON.parse(JSON.stringify(media.schema).replaceAll('"#/components/', '"doc#/components/')) as object);
      this.compiled.set(key, validate);
    }
    this.checked.add(`${method.toUpperCase()} ${template}`);
    if (validate(body)) return [];
    return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`);
  }

  /** Throws, listing every violation, unless the answer conforms. */
  expect(method: string, path: string, status: number, contentType: string, body: unknown): void {
    const p = this.problems(method, path, status, contentType, body);
    if (p.length > 0)
      throw new Error(`${method} ${path} → ${status} does not match /openapi.json:\n  ${p.join("\n  ")}\nbody: ${JSON.stringify(body).slice(0, 1200)}`);
  }
}
