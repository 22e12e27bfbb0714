import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ChunksSchema,
  Endpoint,
  EngineErrorSchema,
  GenerateRequestSchema,
  GenerateResponseSchema,
  UsageSchema,
  type GenerateResponse,
} from "./gen/infera/agent/v1/agent_pb.ts";
import { decodeGenerateRequest, decodeGenerateResponse, encodeGenerateRequest, encodeGenerateResponse } from "./generate-wire.ts";

const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

const messages: GenerateResponse[] = [
  ...[0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 2_100_000].map((n) => create(GenerateResponseSchema, { event: { case: "chunk", value: bytes(n) } })),
  ...[[], [0], [5, 127, 128], [16_380, 3], Array.from({ length: 40 }, (_, i) => i * 17)].map((sizes) =>
    create(GenerateResponseSchema, { event: { case: "chunks", value: create(ChunksSchema, { items: sizes.map((n, i) => bytes(n, 0x30 + (i % 10))) }) } }),
  ),
  ...[0, 1, 200, 128, 70_000].map((n) => create(GenerateResponseSchema, { event: { case: "body", value: bytes(n, 0x7b) } })),
  ...[
    { promptTokens: 12, completionTokens: 300, ttftMs: 3.5 },
    {},
    { images: 2 },
    { promptTokens: 127, completionTokens: 128, images: 16_384, ttftMs: -0.25 },
    { promptTokens: 0xffffffff, completionTokens: 2 ** 31, ttftMs: 1e-300 },
    { ttftMs: 123456.789 },
  ].map((u) => create(GenerateResponseSchema, { event: { case: "usage", value: create(UsageSchema, u) } })),
  create(GenerateResponseSchema, {
    event: { case: "error", value: create(EngineErrorSchema, { status: 400, message: "bad", type: "invalid_request_error", param: "n", code: "x" }) },
  }),
  create(GenerateResponseSchema, {}),
];

describe("GenerateResponse's fast wire codec", () => {
  it("writes exactly the bytes protobuf-es writes, and reads back an equal message", () => {
    for (const m of messages) {
      const ours = encodeGenerateResponse(m);
      expect(Buffer.compare(ours, Buffer.from(toBinary(GenerateResponseSchema, m))), m.event.case ?? "empty").toBe(0);
      expect(equals(GenerateResponseSchema, decodeGenerateResponse(ours), m), m.event.case ?? "empty").toBe(true);
      expect(equals(GenerateResponseSchema, decodeGenerateResponse(ours), fromBinary(GenerateResponseSchema, ours))).toBe(true);
    }
  });

  it("hands chunk bytes out as views of the message read (no copy per token)", () => {
    const wire = encodeGenerateResponse(
      create(GenerateResponseSchema, { event: { case: "chunks", value: create(ChunksSchema, { items: [bytes(10), bytes(20)] }) } }),
    );
    const got = decodeGenerateResponse(wire);
    expect(got.event.case).toBe("chunks");
    if (got.event.case === "chunks") for (const item of got.event.value.items) expect(item.buffer).toBe(wire.buffer);
  });

  it("reads usage as protobuf-es does when fields repeat or come out of order, and leaves what it does not know to it", () => {
    // ttft first, prompt tokens twice (the last wins), an unknown field 9 (protobuf-es keeps it as unknown).
    const inner = Buffer.from([0x21, ...Buffer.from(new Float64Array([2.5]).buffer), 0x08, 0x05, 0x10, 0x07, 0x08, 0x09]);
    const wire = Buffer.concat([Buffer.from([0x1a, inner.length]), inner]);
    expect(equals(GenerateResponseSchema, decodeGenerateResponse(wire), fromBinary(GenerateResponseSchema, wire))).toBe(true);
    const unknown = Buffer.concat([Buffer.from([0x1a, inner.length + 2]), inner, Buffer.from([0x48, 0x01])]);
    expect(equals(GenerateResponseSchema, decodeGenerateResponse(unknown), fromBinary(GenerateResponseSchema, unknown))).toBe(true);
    expect(() => decodeGenerateResponse(wire.subarray(0, 6))).toThrow();
  });

  it("falls back to protobuf-es for anything else: a truncated message is refused as it would be", () => {
    const wire = encodeGenerateResponse(create(GenerateResponseSchema, { event: { case: "chunk", value: bytes(300) } }));
    expect(() => decodeGenerateResponse(wire.subarray(0, 100))).toThrow();
    expect(() => fromBinary(GenerateResponseSchema, wire.subarray(0, 100))).toThrow();
  });
});

describe("GenerateRequest's wire codec", () => {
  const requests = [
    create(GenerateRequestSchema, {}),
    create(GenerateRequestSchema, {
      requestId: "req_0123456789abcdef01234567",
      endpoint: Endpoint.CHAT_COMPLETIONS,
      body: bytes(300),
      stream: true,
      tenantId: "ten_1",
    }),
    create(GenerateRequestSchema, {
      requestId: "r",
      endpoint: Endpoint.DETOKENIZE,
      body: bytes(70_000),
      tenantId: "t",
      correlationId: "ten_1:client-id-é-漢字-😀",
    }),
    create(GenerateRequestSchema, { requestId: "x".repeat(200), stream: false, correlationId: "\ud800 lone surrogate" }),
  ];

  it("writes exactly the bytes protobuf-es writes, and reads back an equal message", () => {
    for (const m of requests) {
      const ours = encodeGenerateRequest(m);
      expect(Buffer.compare(ours, Buffer.from(toBinary(GenerateRequestSchema, m)))).toBe(0);
      expect(equals(GenerateRequestSchema, decodeGenerateRequest(ours), fromBinary(GenerateRequestSchema, ours))).toBe(true);
    }
  });

  it("reads what it does not know as protobuf-es does: unknown fields kept, bad bytes refused", () => {
    const withUnknown = Buffer.concat([encodeGenerateRequest(requests[1]!), Buffer.from([0x78, 0x05])]); // field 15, varint 5
    expect(equals(GenerateRequestSchema, decodeGenerateRequest(withUnknown), fromBinary(GenerateRequestSchema, withUnknown))).toBe(true);
    expect(decodeGenerateRequest(withUnknown).$unknown?.length).toBe(1);
    const truncated = encodeGenerateRequest(requests[2]!).subarray(0, 50);
    expect(() => decodeGenerateRequest(truncated)).toThrow();
    const badUtf8 = Buffer.from([0x0a, 0x02, 0xc3, 0x28]);
    const theirs = (() => {
      try {
        return fromBinary(GenerateRequestSchema, badUtf8);
      } catch (err) {
        return err as Error;
      }
    })();
    if (theirs instanceof Error) expect(() => decodeGenerateRequest(badUtf8)).toThrow();
    else expect(decodeGenerateRequest(badUtf8).requestId).toBe(theirs.requestId);
  });
});
