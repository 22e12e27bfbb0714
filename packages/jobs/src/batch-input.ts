/**
 * A batch's input file, read line by line from its blob: the non-blank lines, numbered from 0
 * in file order (line 1 of the file as the tenant counts it is line_no 0), each with its
 * `custom_id` and request body. The upload validated every line, so a line that does not
 * parse now is reported as that line's failure, never a crash.
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

export interface BatchInputLine {
  lineNo: number;
  customId: string;
  /** The request body; undefined when the line is not a request object (`invalid`). */
  body: Record<string, unknown> | undefined;
  invalid?: string;
}

/** Lines [from, to) of the file, stopping the read once past `to`. */
export async function* readBatchLines(file: Readable, from = 0, to = Number.POSITIVE_INFINITY): AsyncGenerator<BatchInputLine> {
  const lines = createInterface({ input: file, crlfDelay: Number.POSITIVE_INFINITY });
  let n = -1;
  try {
    for await (const text of lines) {
      if (text.trim() === "") continue;
      n++;
      if (n < from) continue;
      if (n >= to) break;
      yield parseLine(n, text);
    }
  } finally {
    lines.close();
    file.destroy();
  }
}

function parseLine(lineNo: number, text: string): BatchInputLine {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { lineNo, customId: "", body: undefined, invalid: "the line is not JSON" };
  }
  const o = v as { custom_id?: unknown; body?: unknown } | null;
  const customId = typeof o?.custom_id === "string" ? o.custom_id : "";
  if (o === null || typeof o !== "object" || typeof o.body !== "object" || o.body === null || Array.isArray(o.body))
    return { lineNo, customId, body: undefined, invalid: "the line has no request `body` object" };
  return { lineNo, customId, body: o.body as Record<string, unknown> };
}
