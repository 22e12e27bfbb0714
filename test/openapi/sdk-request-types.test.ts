/**
 * The gateway's request schemas against the official `openai` package's own TypeScript
 * types (the SDK is generated from OpenAI's spec, so its `…CreateParams` list every field
 * OpenAI documents): every field, message role and content part the SDK can send is one the
 * gateway's schema accepts. Read with the TypeScript compiler from the installed package,
 * so an SDK upgrade that adds a field fails this test until the schema (and the table in
 * services/gateway/src/request-fields.ts) has it.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { ChatCompletionRequest, ChatMessage, CompletionRequest, EmbeddingRequest } from "../../services/gateway/src/openai-schema.ts";
import { CreateResponseRequest } from "../../services/gateway/src/routes/responses.ts";

// The package's root: its main entry lives there (`openai/package.json` is not exported).
const sdkRoot = dirname(createRequire(import.meta.url).resolve("openai"));
const files = [
  "resources/chat/completions/completions.d.ts",
  "resources/completions.d.ts",
  "resources/embeddings.d.ts",
  "resources/responses/responses.d.ts",
  "resources/shared.d.ts",
].map((f) => join(sdkRoot, f));
const program = ts.createProgram(files, { strict: true, noEmit: true });
const checker = program.getTypeChecker();

/** The declared type of an exported name (`A` or `Ns.A`) in one of the SDK's files. */
function sdkType(file: string, name: string): ts.Type {
  const source = program.getSourceFile(join(sdkRoot, file));
  if (!source) throw new Error(`no ${file} in the SDK`);
  let symbol = checker.getSymbolAtLocation(source);
  for (const part of name.split(".")) {
    const exports = symbol ? checker.getExportsOfModule(symbol) : [];
    const next = exports.find((s) => s.name === part) ?? symbol?.exports?.get(part as ts.__String);
    if (!next) throw new Error(`no ${name} in ${file}`);
    symbol = next.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(next) : next;
  }
  return checker.getDeclaredTypeOfSymbol(symbol!);
}

const propsOf = (t: ts.Type): string[] =>
  checker
    .getPropertiesOfType(t)
    .map((p) => p.name)
    .sort();

/** Members of a union type, each with its literal `discriminant` (role / type) value. */
function unionMembers(t: ts.Type, discriminant: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of t.isUnion() ? t.types : [t]) {
    const d = checker.getPropertyOfType(m, discriminant);
    const dt = d && checker.getTypeOfSymbol(d);
    const value = dt?.isStringLiteral() ? dt.value : "?";
    out.set(value, propsOf(m));
  }
  return out;
}

interface SchemaLike {
  properties?: Record<string, SchemaLike>;
  anyOf?: SchemaLike[];
  items?: SchemaLike;
  const?: unknown;
}
const keysOf = (s: SchemaLike): string[] => Object.keys(s.properties ?? {}).sort();

describe("the gateway's request schemas take every field the official SDK's types can send", () => {
  const cases = [
    ["chat completions", "resources/chat/completions/completions.d.ts", "ChatCompletionCreateParamsBase", ChatCompletionRequest],
    ["completions", "resources/completions.d.ts", "CompletionCreateParamsBase", CompletionRequest],
    ["embeddings", "resources/embeddings.d.ts", "EmbeddingCreateParams", EmbeddingRequest],
    ["responses", "resources/responses/responses.d.ts", "ResponseCreateParamsBase", CreateResponseRequest],
  ] as const;
  for (const [what, file, name, schema] of cases) {
    it(`${what}: ${name}`, () => {
      const sdk = propsOf(sdkType(file, name));
      expect(sdk.length).toBeGreaterThan(3);
      expect(sdk.filter((f) => !keysOf(schema as SchemaLike).includes(f))).toEqual([]);
    });
  }

  it("chat messages: every role, with every field the SDK gives it", () => {
    const sdk = unionMembers(sdkType("resources/chat/completions/completions.d.ts", "ChatCompletionMessageParam"), "role");
    const ours = new Map((ChatMessage as SchemaLike).anyOf!.map((m) => [String(m.properties!.role!.const), keysOf(m)]));
    expect([...sdk.keys()].sort()).toEqual([...ours.keys()].sort());
    for (const [role, fields] of sdk)
      expect(
        fields.filter((f) => !ours.get(role)!.includes(f)),
        role,
      ).toEqual([]);
  });

  it("user content parts: text, image_url, input_audio and file, with their fields", () => {
    const sdk = unionMembers(sdkType("resources/chat/completions/completions.d.ts", "ChatCompletionContentPart"), "type");
    const user = (ChatMessage as SchemaLike).anyOf!.find((m) => m.properties!.role!.const === "user")!;
    const parts = user.properties!.content!.anyOf!.find((a) => a.items)!.items!.anyOf!;
    const ours = new Map(parts.map((p) => [String(p.properties!.type!.const), keysOf(p)]));
    expect([...sdk.keys()].sort()).toEqual([...ours.keys()].sort());
    for (const [type, fields] of sdk)
      expect(
        fields.filter((f) => !ours.get(type)!.includes(f)),
        type,
      ).toEqual([]);
    const nested = [
      ["ChatCompletionContentPartImage.ImageURL", "image_url"],
      ["ChatCompletionContentPartInputAudio.InputAudio", "input_audio"],
      ["ChatCompletionContentPart.File.File", "file"],
    ] as const;
    for (const [sdkName, part] of nested) {
      const inner = parts.find((p) => p.properties!.type!.const === part)!.properties![part]!;
      expect(
        propsOf(sdkType("resources/chat/completions/completions.d.ts", sdkName)).filter((f) => !keysOf(inner).includes(f)),
        part,
      ).toEqual([]);
    }
  });

  it("stream options, tools and tool choices", () => {
    const chat = ChatCompletionRequest as SchemaLike;
    const streamOptions = chat.properties!.stream_options!.anyOf!.find((a) => a.properties)!;
    expect(
      propsOf(sdkType("resources/chat/completions/completions.d.ts", "ChatCompletionStreamOptions")).filter((f) => !keysOf(streamOptions).includes(f)),
    ).toEqual([]);
    const tools = unionMembers(sdkType("resources/chat/completions/completions.d.ts", "ChatCompletionTool"), "type");
    const ourTools = new Set(chat.properties!.tools!.items!.anyOf!.map((t) => String(t.properties!.type!.const)));
    expect([...tools.keys()].filter((t) => !ourTools.has(t))).toEqual([]);
    const choices = sdkType("resources/chat/completions/completions.d.ts", "ChatCompletionToolChoiceOption");
    const ourChoices = new Set(chat.properties!.tool_choice!.anyOf!.map((c) => String(c.const ?? c.properties?.type?.const)));
    const sdkChoices = (choices.isUnion() ? choices.types : [choices]).map((m) => {
      if (m.isStringLiteral()) return m.value;
      const t = checker.getPropertyOfType(m, "type");
      const lit = t && checker.getTypeOfSymbol(t);
      return lit?.isStringLiteral() ? lit.value : "?";
    });
    expect(sdkChoices.filter((c) => !ourChoices.has(c))).toEqual([]);
  });
});
