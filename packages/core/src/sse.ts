/**
 * Incremental Server-Sent Events parsing: feed it bytes as they arrive, get each
 * event's `data` as soon as its blank line is seen. Nothing is buffered beyond the
 * event in progress. Handles \n, \r\n, multi-line data and comments.
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event: string | undefined;
  private readonly decoder = new TextDecoder();

  constructor(private readonly onEvent: (data: string, event: string | undefined) => void) {}

  push(chunk: Uint8Array | string): void {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf("\n", start);
      if (nl === -1) break;
      let line = this.buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }

  /** End of input: a last event without its blank line still counts (TGI ends that way sometimes). */
  end(): void {
    if (this.buffer.length) {
      this.line(this.buffer);
      this.buffer = "";
    }
    this.dispatch();
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.event = undefined;
      return;
    }
    const data = this.data.length === 1 ? this.data[0]! : this.data.join("\n");
    const event = this.event;
    this.data = [];
    this.event = undefined;
    this.onEvent(data, event);
  }
}

const LF = 0x0a;
const CR = 0x0d;
const NEWLINE = Buffer.from("\n");

/**
 * The same parsing on bytes, for relays that pass events on undecoded: each event's `data`
 * is a view into the bytes read (no decode, no copy) unless it spans reads or lines. Only
 * `data` fields are kept (event names, ids and comments are skipped); UTF-8 split across
 * reads needs no care, nothing is decoded.
 */
export class SseByteParser {
  /** The line in progress (bytes after the last newline), copied so no whole read is kept alive by it. */
  private rest: Buffer | undefined;
  private data: Buffer[] = [];

  constructor(private readonly onData: (data: Buffer) => void) {}

  push(chunk: Uint8Array): void {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.rest !== undefined) {
      buf = Buffer.concat([this.rest, buf]);
      this.rest = undefined;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(LF, start);
      if (nl === -1) break;
      this.line(buf, start, nl > start && buf[nl - 1] === CR ? nl - 1 : nl);
      start = nl + 1;
    }
    if (start < buf.length) this.rest = Buffer.from(buf.subarray(start));
  }

  /** End of input: a last event without its blank line still counts. */
  end(): void {
    const r = this.rest;
    if (r !== undefined) {
      this.rest = undefined;
      this.line(r, 0, r.length > 0 && r[r.length - 1] === CR ? r.length - 1 : r.length);
    }
    this.dispatch();
  }

  private line(buf: Buffer, s: number, e: number): void {
    if (s === e) {
      this.dispatch();
      return;
    }
    // `data:` (0x64 0x61 0x74 0x61 0x3a) or a bare `data` line (an empty value); other fields are not needed.
    if (e - s < 4 || buf[s] !== 0x64 || buf[s + 1] !== 0x61 || buf[s + 2] !== 0x74 || buf[s + 3] !== 0x61) return;
    if (e - s === 4) {
      this.data.push(buf.subarray(e, e));
      return;
    }
    if (buf[s + 4] !== 0x3a) return;
    const v = s + 5 < e && buf[s + 5] === 0x20 ? s + 6 : s + 5;
    this.data.push(buf.subarray(v, e));
  }

  private dispatch(): void {
    const d = this.data;
    if (d.length === 0) return;
    this.data = [];
    if (d.length === 1) {
      this.onData(d[0]!);
      return;
    }
    const parts: Buffer[] = [];
    for (const [i, b] of d.entries()) {
      if (i > 0) parts.push(NEWLINE);
      parts.push(b);
    }
    this.onData(Buffer.concat(parts));
  }
}
