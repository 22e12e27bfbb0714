/**
 * Renders docs/openai-request-fields.md from the table in request-fields.ts (one source):
 * `pnpm docs:fields` writes it, and request-fields.test.ts fails when the file differs.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CHAT_FIELDS, COMPLETION_FIELDS, EMBEDDING_FIELDS, type FieldRule } from "./request-fields.ts";

export const FIELDS_DOC = fileURLToPath(new URL("../../../docs/openai-request-fields.md", import.meta.url));

const WHERE: Record<FieldRule["to"], string> = { engine: "passed to the engine", gateway: "applied by the gateway", ignored: "accepted and ignored" };

function table(title: string, rules: Record<string, FieldRule>): string {
  const rows = Object.entries(rules).map(([field, r]) => {
    const how = r.to === "engine" ? (r.note ?? "") : r.to === "gateway" ? r.what : r.why;
    return `| \`${field}\` | ${WHERE[r.to]} | ${how.replaceAll("|", "\\|")} |`;
  });
  return [`## ${title}`, "", "| field | where it goes | how |", "|---|---|---|", ...rows, ""].join("\n");
}

export function renderFieldsDoc(): string {
  return [
    "# OpenAI request fields: what the platform does with each",
    "",
    "<!-- Generated from services/gateway/src/request-fields.ts by `pnpm docs:fields`; a test fails when it differs. -->",
    "",
    "Every field of OpenAI's request schemas (as the official SDK's types list them) is accepted,",
    "and so are vLLM's extras. A field neither documents is a 400 naming it",
    "(`Unrecognized request argument supplied: …`); values are validated (types, ranges) with",
    "OpenAI's wording. *Passed to the engine*: sent as the client sent it (vLLM understands",
    "it; on TGI the agent maps what TGI has and the gateway answers a 400 for what it has not).",
    "*Applied by the gateway*: acted on here and not sent on. *Accepted and ignored*: not",
    "sent on, for the reason given.",
    "",
    table("Chat completions (`POST /v1/openai/chat/completions`)", CHAT_FIELDS),
    table("Completions (`POST /v1/openai/completions`)", COMPLETION_FIELDS),
    table("Embeddings (`POST /v1/openai/embeddings`)", EMBEDDING_FIELDS),
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(FIELDS_DOC, renderFieldsDoc());
