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
