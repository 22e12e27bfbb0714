/**
 * A small OTLP/HTTP trace receiver: `POST /v1/traces` with what an OpenTelemetry exporter
 * sends (protobuf, as every SDK's default, or JSON; gzip or not), decoded into spans and
 * kept in memory (the newest `keep` traces). `GET /traces` lists them, `GET /traces/<id>`
 * gives one as JSON, `GET /traces/<id>?format=text` as an indented tree.
 *
 * Local mode's `TRACING=1` runs one so a trace can be seen without installing a collector,
 * and the tests use it as the real receiver the services export to. It is not a collector:
 * no forwarding, no storage, no auth; it listens on loopback.
 */
import { createServer, type Server } from "node:http";
import { gunzipSync } from "node:zlib";

export type OtlpValue = string | number | boolean | OtlpValue[] | undefined;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span (or one whose parent is outside what was exported). */
  parentSpanId: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** Unix nanoseconds, as bigint (they exceed 2^53). */
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, OtlpValue>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  /** The `service.name` of the process that exported it. */
  service: string;
}

// ---- protobuf wire format, just what ExportTraceServiceRequest uses ----

class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly end = buf.length,
  ) {}
  get done(): boolean {
    return this.pos >= this.end;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  /** A field's tag: number and wire type. */
  tag(): [number, number] {
    const t = Number(this.varint());
    return [t >>> 3, t & 7];
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    if (this.pos + n > this.end) throw new Error("truncated field");
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  fixed64(): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + 8);
    this.pos += 8;
    return b;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Calls `field(number, wire, reader)` for each field of a message; unknown ones must be skipped by it. */
function fields(buf: Buffer, field: (n: number, wire: number, r: Reader) => void): void {
  const r = new Reader(buf);
  while (!r.done) {
    const [n, wire] = r.tag();
    field(n, wire, r);
  }
}

function anyValue(buf: Buffer): OtlpValue {
  let v: OtlpValue;
  fields(buf, (n, wire, r) => {
    if (n === 1 && wire === 2) v = r.bytes().toString("utf8");
    else if (n === 2 && wire === 0) v = r.varint() !== 0n;
    else if (n === 3 && wire === 0) v = Number(BigInt.asIntN(64, r.varint()));
    else if (n === 4 && wire === 1) v = r.fixed64().readDoubleLE(0);
    else if (n === 5 && wire === 2) {
      const items: OtlpValue[] = [];
      fields(r.bytes(), (m, w, rr) => (m === 1 && w === 2 ? items.push(anyValue(rr.bytes())) : rr.skip(w)));
      v = items;
    } else r.skip(wire);
  });
  return v;
}

function keyValue(buf: Buffer, into: Record<string, OtlpValue>): void {
  let key = "";
  let value: OtlpValue;
  fields(buf, (n, wire, r) => {
    if (n === 1 && wire === 2) key = r.bytes().toString("utf8");
    else if (n === 2 && wire === 2) value = anyValue(r.bytes());
    else r.skip(wire);
  });
  into[key] = value;
}

function span(buf: Buffer, service: string): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    name: "",
    kind: 0,
    startNs: 0n,
    endNs: 0n,
    attributes: {},
    statusCode: 0,
    statusMessage: "",
    service,
  };
  fields(buf, (n, wire, r) => {
    if (n === 1 && wire === 2) s.traceId = r.bytes().toString("hex");
    else if (n === 2 && wire === 2) s.spanId = r.bytes().toString("hex");
    else if (n === 4 && wire === 2) s.parentSpanId = r.bytes().toString("hex");
    else if (n === 5 && wire === 2) s.name = r.bytes().toString("utf8");
    else if (n === 6 && wire === 0) s.kind = Number(r.varint());
    else if (n === 7 && wire === 1) s.startNs = r.fixed64().readBigUInt64LE(0);
    else if (n === 8 && wire === 1) s.endNs = r.fixed64().readBigUInt64LE(0);
    else if (n === 9 && wire === 2) keyValue(r.bytes(), s.attributes);
    else if (n === 15 && wire === 2)
      fields(r.bytes(), (m, w, rr) => {
        if (m === 2 && w === 2) s.statusMessage = rr.bytes().toString("utf8");
        else if (m === 3 && w === 0) s.statusCode = Number(rr.varint());
        else rr.skip(w);
      });
    else r.skip(wire);
  });
  return s;
}

/** The spans of an OTLP ExportTraceServiceRequest in protobuf. */
export function decodeTraceRequest(buf: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  fields(buf, (n, wire, r) => {
    if (n !== 1 || wire !== 2) return r.skip(wire);
    // ResourceSpans: 1 resource, 2 scope spans.
    const resourceAttrs: Record<string, OtlpValue> = {};
    const scopes: Buffer[] = [];
    fields(r.bytes(), (m, w, rr) => {
      if (m === 1 && w === 2) fields(rr.bytes(), (k, kw, r3) => (k === 1 && kw === 2 ? keyValue(r3.bytes(), resourceAttrs) : r3.skip(kw)));
      else if (m === 2 && w === 2) scopes.push(rr.bytes());
      else rr.skip(w);
    });
    const service = String(resourceAttrs["service.name"] ?? "");
    for (const scope of scopes) fields(scope, (m, w, rr) => (m === 2 && w === 2 ? out.push(span(rr.bytes(), service)) : rr.skip(w)));
  });
  return out;
}

// ---- OTLP/JSON (ids in hex, times as decimal strings) ----

interface JsonAny {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAny[] };
}
interface JsonKv {
  key: string;
  value?: JsonAny;
}

function jsonValue(v: JsonAny | undefined): OtlpValue {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

function jsonAttrs(kvs: JsonKv[] | undefined): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = jsonValue(kv.value);
  return out;
}

/** The spans of an OTLP ExportTraceServiceRequest in JSON. */
export function decodeTraceJson(text: string): ReceivedSpan[] {
  const body = JSON.parse(text) as {
    resourceSpans?: {
      resource?: { attributes?: JsonKv[] };
      scopeSpans?: {
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          name: string;
          kind?: number;
          startTimeUnixNano: string;
          endTimeUnixNano: string;
          attributes?: JsonKv[];
          status?: { code?: number; message?: string };
        }[];
      }[];
    }[];
  };
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const service = String(jsonAttrs(rs.resource?.attributes)["service.name"] ?? "");
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? [])
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? "",
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: jsonAttrs(s.attributes),
          statusCode: s.status?.code ?? 0,
          statusMessage: s.status?.message ?? "",
          service,
        });
  }
  return out;
}

// ---- the receiver ----

/** One trace as an indented tree: service, span name, start offset and duration in ms. */
export function traceTree(spans: readonly ReceivedSpan[]): string {
  const sorted = [...spans].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  const ids = new Set(sorted.map((s) => s.spanId));
  const t0 = sorted[0]?.startNs ?? 0n;
  const lines: string[] = [];
  const walk = (parent: string, depth: number) => {
    for (const s of sorted.filter((x) => (parent === "" ? !ids.has(x.parentSpanId) : x.parentSpanId === parent))) {
      const at = Number(s.startNs - t0) / 1e6;
      const ms = Number(s.endNs - s.startNs) / 1e6;
      const err = s.statusCode === 2 ? ` ERROR ${s.attributes["error.type"] ?? ""}` : "";
      lines.push(`${"  ".repeat(depth)}${s.service}: ${s.name}  +${at.toFixed(2)} ms, ${ms.toFixed(2)} ms${err}`);
      walk(s.spanId, depth + 1);
    }
  };
  walk("", 0);
  return lines.join("\n");
}

export interface OtlpReceiverOptions {
  port?: number;
  host?: string;
  /** Traces kept (the oldest forgotten first); default 200. */
  keep?: number;
}

export class OtlpReceiver {
  private readonly traces = new Map<string, ReceivedSpan[]>();
  private server: Server | undefined;
  port = 0;

  constructor(private readonly o: OtlpReceiverOptions = {}) {}

  /** Every span received so far, oldest trace first. */
  spans(): ReceivedSpan[] {
    return [...this.traces.values()].flat();
  }

  trace(traceId: string): ReceivedSpan[] {
    return this.traces.get(traceId) ?? [];
  }

  /** The OTLP endpoint to give exporters (`OTEL_EXPORTER_OTLP_ENDPOINT`). */
  get endpoint(): string {
    return `http://${this.o.host ?? "127.0.0.1"}:${this.port}`;
  }

  private add(spans: ReceivedSpan[]): void {
    for (const s of spans) {
      let t = this.traces.get(s.traceId);
      if (!t) {
        t = [];
        this.traces.set(s.traceId, t);
        if (this.traces.size > (this.o.keep ?? 200)) this.traces.delete(this.traces.keys().next().value as string);
      }
      t.push(s);
    }
  }

  async start(): Promise<number> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (req.method === "POST" && url.pathname === "/v1/traces") {
        const parts: Buffer[] = [];
        req.on("data", (c: Buffer) => parts.push(c));
        req.on("end", () => {
          try {
            let body = Buffer.concat(parts);
            if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
            const json = (req.headers["content-type"] ?? "").includes("json");
            this.add(json ? decodeTraceJson(body.toString("utf8")) : decodeTraceRequest(body));
            res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
            res.end(json ? "{}" : undefined);
          } catch (err) {
            res.writeHead(400, { "content-type": "text/plain" });
            res.end(`cannot decode: ${(err as Error).message}`);
          }
        });
        return;
      }
      if (req.method === "GET" && url.pathname === "/traces") {
        const list = [...this.traces.entries()].reverse().map(([traceId, spans]) => {
          const root = spans.find((s) => !spans.some((p) => p.spanId === s.parentSpanId)) ?? spans[0]!;
          return { traceId, root: root.name, service: root.service, spans: spans.length, ms: Number(root.endNs - root.startNs) / 1e6 };
        });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ data: list }));
        return;
      }
      const m = /^\/traces\/([0-9a-f]{32})$/.exec(url.pathname);
      if (req.method === "GET" && m) {
        const spans = this.trace(m[1]!);
        if (url.searchParams.get("format") === "text") {
          res.writeHead(spans.length ? 200 : 404, { "content-type": "text/plain; charset=utf-8" });
          res.end(spans.length ? `${traceTree(spans)}\n` : "no such trace\n");
        } else {
          res.writeHead(spans.length ? 200 : 404, { "content-type": "application/json" });
          res.end(JSON.stringify({ data: spans }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
        }
        return;
      }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.o.port ?? 0, this.o.host ?? "127.0.0.1", () => resolve());
    });
    const a = this.server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
    return this.port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
