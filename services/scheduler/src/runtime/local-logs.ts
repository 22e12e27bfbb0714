/**
 * Reads the local runtime's replica logs: each replica's engine and agent write their
 * output to `<replicaId>-engine.log` and `<replicaId>-agent.log` in LOCAL_LOG_DIR. A read
 * starts with the last `tail` lines of each file, then (following) polls the files for what
 * they gain, picking up replicas that start meanwhile (a replacement after a crash, a scale-up).
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LogSource } from "@infera/contracts";
import type { LogLine, LogQuery } from "./driver.ts";

export interface LogFile {
  replicaId: string;
  source: LogSource;
  path: string;
}

/** A line longer than this is cut (an engine dumping a blob must not fill a stream entry). */
export const MAX_LINE = 16 * 1024;
const POLL_MS = 250;
const RELIST_MS = 1000;
const CHUNK = 64 * 1024;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A deployment's log files (one replica's when `replicaId` is given), engine before agent per replica. */
export async function deploymentLogFiles(dir: string, deploymentId: string, replicaId?: string): Promise<LogFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const re = new RegExp(`^(${escapeRegExp(deploymentId)}-r\\d+)-(engine|agent)\\.log$`);
  const files: LogFile[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (!m || (replicaId !== undefined && m[1] !== replicaId)) continue;
    files.push({ replicaId: m[1]!, source: m[2] as LogSource, path: join(dir, name) });
  }
  const seq = (id: string) => Number(id.slice(id.lastIndexOf("-r") + 2));
  return files.sort((a, b) => seq(a.replicaId) - seq(b.replicaId) || (a.source === b.source ? 0 : a.source === "engine" ? -1 : 1));
}

function cut(line: string): string {
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
}

/** The last `n` lines of a file and its size when read. */
export async function tailLines(path: string, n: number): Promise<{ lines: string[]; size: number }> {
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (n <= 0 || size === 0) return { lines: [], size };
    let start = size;
    let text = "";
    // Read backwards until n complete lines are in hand (or the file's start).
    while (start > 0) {
      const len = Math.min(CHUNK, start);
      start -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, start);
      text = buf.toString("utf8") + text;
      if (text.split("\n").length > n + 1) break;
    }
    const lines = text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    // A partial first line (we started mid-file) is dropped unless it is all there is.
    if (start > 0 && lines.length > n) lines.shift();
    return { lines: lines.slice(-n).map(cut), size };
  } finally {
    await fh.close();
  }
}

interface Cursor {
  file: LogFile;
  offset: number;
  /** A line not yet ended by a newline. */
  partial: string;
}

async function readNew(c: Cursor): Promise<string[]> {
  let size: number;
  try {
    size = (await stat(c.file.path)).size;
  } catch {
    return [];
  }
  if (size < c.offset) {
    // Truncated or replaced: start again from its beginning.
    c.offset = 0;
    c.partial = "";
  }
  if (size === c.offset) return [];
  const fh = await open(c.file.path, "r");
  try {
    const len = size - c.offset;
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, c.offset);
    c.offset += bytesRead;
    const parts = (c.partial + buf.subarray(0, bytesRead).toString("utf8")).split("\n");
    c.partial = parts.pop() ?? "";
    if (c.partial.length > MAX_LINE) {
      parts.push(c.partial);
      c.partial = "";
    }
    return parts.map(cut);
  } finally {
    await fh.close();
  }
}

/** The last `tail` lines of every file, then, while `follow`, what they (and files that appear) gain. */
export async function* followLogFiles(list: () => Promise<LogFile[]>, query: LogQuery): AsyncGenerator<LogLine> {
  const cursors = new Map<string, Cursor>();
  for (const file of await list()) {
    let tail: { lines: string[]; size: number };
    try {
      tail = await tailLines(file.path, query.tail);
    } catch {
      continue; // removed since it was listed
    }
    cursors.set(file.path, { file, offset: tail.size, partial: "" });
    for (const line of tail.lines) yield { replicaId: file.replicaId, source: file.source, line };
    if (query.signal.aborted) return;
  }
  if (!query.follow) return;
  let listedAt = Date.now();
  while (!query.signal.aborted) {
    try {
      await sleep(POLL_MS, undefined, { signal: query.signal });
    } catch {
      return; // aborted
    }
    if (Date.now() - listedAt >= RELIST_MS) {
      listedAt = Date.now();
      // A file that appears now belongs to a replica started meanwhile: all of it is new.
      for (const file of await list()) if (!cursors.has(file.path)) cursors.set(file.path, { file, offset: 0, partial: "" });
    }
    for (const c of cursors.values()) {
      for (const line of await readNew(c)) {
        yield { replicaId: c.file.replicaId, source: c.file.source, line };
        if (query.signal.aborted) return;
      }
    }
  }
}
