/**
 * GenerateResponse's stream chunks (and, at the end, GenerateRequest) on the wire without protobuf-es's reflection: a
 * `chunk` (field 1) or `chunks` (field 5, `repeated bytes items = 1`) message is written
 * straight into one buffer of its exact size and read back as views into the received
 * bytes. Those are nearly every message of a stream, so this is the per-token path; `body`
 * and `usage` (one each per request: protobuf-es's reflection took 3–4 µs to write each, the
 * hand codec 0.3–0.5) the same way; the rest (error) and anything unexpected take `toBinary`/`fromBinary`. The
 * bytes are exactly what `toBinary` writes (the test compares them).
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type GenerateRequest, GenerateRequestSchema, type GenerateResponse, GenerateResponseSchema } from "./gen/infera/agent/v1/agent_pb.ts";

/** Field 1 (chunk) or field 1 of Chunks (items), length-delimited: (1 << 3) | 2. */
const TAG_BYTES_1 = 0x0a;
/** Field 5 (chunks), length-delimited: (5 << 3) | 2. */
const TAG_CHUNKS = 0x2a;
/** Field 2 (body) and field 3 (usage), length-delimited. */
const TAG_BODY = 0x12;
const TAG_USAGE = 0x1a;
/** Usage's field 4 (ttft_ms), a double: (4 << 3) | 1. */
const TAG_TTFT = 0x21;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function writeField(buf: Buffer, pos: number, tag: number, b: Uint8Array): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, b.byteLength);
  buf.set(b, pos);
  return pos + b.byteLength;
}

export function encodeGenerateResponse(m: GenerateResponse): Buffer {
  const e = m.event;
  if (e.case === "chunk") {
    const buf = Buffer.allocUnsafe(1 + varintSize(e.value.byteLength) + e.value.byteLength);
    writeField(buf, 0, TAG_BYTES_1, e.value);
    return buf;
  }
  if (e.case === "chunks") {
    let inner = 0;
    for (const item of e.value.items) inner += 1 + varintSize(item.byteLength) + item.byteLength;
    const buf = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
    buf[0] = TAG_CHUNKS;
    let pos = writeVarint(buf, 1, inner);
    for (const item of e.value.items) pos = writeField(buf, pos, TAG_BYTES_1, item);
    return buf;
  }
  if (e.case === "body") {
    const buf = Buffer.allocUnsafe(1 + varintSize(e.value.byteLength) + e.value.byteLength);
    writeField(buf, 0, TAG_BODY, e.value);
    return buf;
  }
  if (e.case === "usage" && !e.value.$unknown?.length && !m.$unknown?.length) {
    const u = e.value;
    const ints = [u.promptTokens, u.completionTokens, u.images];
    if (ints.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) {
      // proto3: a zero is left out (-0 too, as protobuf-es does); NaN is written.
      const inner = ints.reduce((n, v) => n + (v ? 1 + varintSize(v) : 0), 0) + (u.ttftMs !== 0 ? 9 : 0);
      const buf = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
      buf[0] = TAG_USAGE;
      let pos = writeVarint(buf, 1, inner);
      ints.forEach((v, i) => {
        if (!v) return;
        buf[pos++] = (i + 1) << 3;
        pos = writeVarint(buf, pos, v);
      });
      if (u.ttftMs !== 0) {
        buf[pos++] = TAG_TTFT;
        buf.writeDoubleLE(u.ttftMs, pos);
      }
      return buf;
    }
  }
  const b = toBinary(GenerateResponseSchema, m);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Usage's fields, or undefined for anything the hand codec leaves to protobuf-es (another field, a wire type, a uint32 past 2^32). */
function readUsage(b: Uint8Array): GenerateResponse | undefined {
  const ints = [0, 0, 0];
  let ttftMs = 0;
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos]!;
    if (tag === TAG_TTFT) {
      if (pos + 9 > b.length) return undefined;
      ttftMs = Buffer.from(b.buffer, b.byteOffset + pos + 1, 8).readDoubleLE(0);
      pos += 9;
      continue;
    }
    if (tag !== 0x08 && tag !== 0x10 && tag !== 0x18) return undefined;
    const v = readVarint(b, pos + 1);
    if (!v || v[0] > 0xffffffff) return undefined;
    ints[(tag >> 3) - 1] = v[0];
    pos = v[1];
  }
  const [promptTokens, completionTokens, images] = ints as [number, number, number];
  return {
    $typeName: "infera.agent.v1.GenerateResponse",
    event: { case: "usage", value: { $typeName: "infera.agent.v1.Usage", promptTokens, completionTokens, images, ttftMs } },
  };
}

/** Reads a varint at `pos`: [value, next position], or undefined past the end or over 2^53. */
function readVarint(b: Uint8Array, pos: number): [number, number] | undefined {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 8 && pos < b.length; i++) {
    const byte = b[pos++]!;
    n += (byte & 0x7f) * mul;
    if (byte < 0x80) return [n, pos];
    mul *= 128;
  }
  return undefined;
}

/** One length-delimited field with this tag spanning exactly [pos, end): its bytes (a view), else undefined. */
function readField(b: Uint8Array, pos: number, end: number, tag: number): [Uint8Array, number] | undefined {
  if (b[pos] !== tag) return undefined;
  const v = readVarint(b, pos + 1);
  if (!v || v[1] + v[0] > end) return undefined;
  return [b.subarray(v[1], v[1] + v[0]), v[1] + v[0]];
}

export function decodeGenerateResponse(b: Uint8Array): GenerateResponse {
  if (b[0] === TAG_BODY || b[0] === TAG_USAGE) {
    const f = readField(b, 0, b.length, b[0]);
    if (f && f[1] === b.length) {
      if (b[0] === TAG_BODY) return { $typeName: "infera.agent.v1.GenerateResponse", event: { case: "body", value: f[0] } };
      const u = readUsage(f[0]);
      if (u) return u;
    }
    return fromBinary(GenerateResponseSchema, b);
  }
  const one = readField(b, 0, b.length, b[0] === TAG_CHUNKS ? TAG_CHUNKS : TAG_BYTES_1);
  if (one && one[1] === b.length) {
    if (b[0] === TAG_BYTES_1) return { $typeName: "infera.agent.v1.GenerateResponse", event: { case: "chunk", value: one[0] } };
    const inner = one[0];
    const items: Uint8Array[] = [];
    let pos = 0;
    while (pos < inner.length) {
      const item = readField(inner, pos, inner.length, TAG_BYTES_1);
      if (!item) return fromBinary(GenerateResponseSchema, b);
      items.push(item[0]);
      pos = item[1];
    }
    return { $typeName: "infera.agent.v1.GenerateResponse", event: { case: "chunks", value: { $typeName: "infera.agent.v1.Chunks", items } } };
  }
  return fromBinary(GenerateResponseSchema, b);
}

/**
 * GenerateRequest (one per request: requestId 1, endpoint 2, body 3, stream 4, tenantId 5,
 * correlationId 6, proto3 defaults left out) the same way: protobuf-es's reflection costs
 * ~6 µs to write and as much to read it, the hand codec a fraction. Same bytes as `toBinary`;
 * a message with unknown fields, or bytes with any other field or wire type, takes protobuf-es.
 */
const REQUEST = "infera.agent.v1.GenerateRequest";
// Fatal, as protobuf-es reads strings: bytes that are not UTF-8 are refused, not replaced.
const utf8 = new TextDecoder("utf-8", { fatal: true });

export function encodeGenerateRequest(m: GenerateRequest): Buffer {
  if (m.$unknown?.length || m.endpoint < 0) {
    const b = toBinary(GenerateRequestSchema, m);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
  const id = Buffer.byteLength(m.requestId);
  const tenant = Buffer.byteLength(m.tenantId);
  const corr = Buffer.byteLength(m.correlationId);
  const body = m.body.byteLength;
  const size =
    (id ? 1 + varintSize(id) + id : 0) +
    (m.endpoint ? 1 + varintSize(m.endpoint) : 0) +
    (body ? 1 + varintSize(body) + body : 0) +
    (m.stream ? 2 : 0) +
    (tenant ? 1 + varintSize(tenant) + tenant : 0) +
    (corr ? 1 + varintSize(corr) + corr : 0);
  // Not from Node's shared slab: grpc-js keeps the encoded request until the call ends.
  const buf = Buffer.allocUnsafeSlow(size);
  let pos = 0;
  const str = (tag: number, s: string, n: number) => {
    if (!n) return;
    buf[pos++] = tag;
    pos = writeVarint(buf, pos, n);
    pos += buf.write(s, pos, n, "utf8");
  };
  str(0x0a, m.requestId, id);
  if (m.endpoint) {
    buf[pos++] = 0x10;
    pos = writeVarint(buf, pos, m.endpoint);
  }
  if (body) pos = writeField(buf, pos, 0x1a, m.body);
  if (m.stream) {
    buf[pos++] = 0x20;
    buf[pos++] = 1;
  }
  str(0x2a, m.tenantId, tenant);
  str(0x32, m.correlationId, corr);
  return buf;
}

export function decodeGenerateRequest(b: Uint8Array): GenerateRequest {
  const m: GenerateRequest = { $typeName: REQUEST, requestId: "", endpoint: 0, body: new Uint8Array(0), stream: false, tenantId: "", correlationId: "" };
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos];
    if (tag === 0x10 || tag === 0x20) {
      const v = readVarint(b, pos + 1);
      // Enum values past int32, or a bool that is not 0/1: protobuf-es decides.
      if (!v || v[0] > 0x7fffffff || (tag === 0x20 && v[0] > 1)) return fromBinary(GenerateRequestSchema, b);
      if (tag === 0x10) m.endpoint = v[0];
      else m.stream = v[0] === 1;
      pos = v[1];
      continue;
    }
    if (tag !== 0x0a && tag !== 0x1a && tag !== 0x2a && tag !== 0x32) return fromBinary(GenerateRequestSchema, b);
    const f = readField(b, pos, b.length, tag);
    if (!f) return fromBinary(GenerateRequestSchema, b);
    if (tag === 0x1a) m.body = f[0];
    else if (tag === 0x0a) m.requestId = utf8.decode(f[0]);
    else if (tag === 0x2a) m.tenantId = utf8.decode(f[0]);
    else m.correlationId = utf8.decode(f[0]);
    pos = f[1];
  }
  return m;
}
