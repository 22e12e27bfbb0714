/**
 * What `infera` prints: tables (cli-table3) and short lines for people, JSON for scripts
 * (`--json`: exactly the API's answer, one document on stdout, or NDJSON for streams).
 * Colour only on a terminal (picocolors honours NO_COLOR and FORCE_COLOR).
 */
import Table from "cli-table3";
import pc from "picocolors";

export interface Output {
  json: boolean;
  /** One result: JSON as is, or what `human` prints. */
  result(data: unknown, human: () => string): void;
  line(text: string): void;
  warn(text: string): void;
}

export function createOutput(json: boolean, stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): Output {
  return {
    json,
    result(data, human) {
      stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
    },
    line(text) {
      stdout.write(`${text}\n`);
    },
    warn(text) {
      stderr.write(`${text}\n`);
    },
  };
}

export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  if (rows.length === 0) return pc.dim("(none)");
  // Borderless, columns two spaces apart (kubectl's look): easy to read and to grep.
  const none = { top: "", "top-mid": "", "top-left": "", "top-right": "", bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "" };
  const t = new Table({
    head: head.map((h) => pc.bold(h)),
    style: { head: [], border: [], compact: true, "padding-left": 0, "padding-right": 0 },
    chars: { ...none, left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  " },
  });
  for (const r of rows) t.push(r.map((c) => (c === null || c === undefined ? pc.dim("-") : String(c))));
  return t.toString();
}

/** `key  value` lines, keys padded. */
export function fields(pairs: [string, string | number | null | undefined][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${pc.dim(k.padEnd(w))}  ${v === null || v === undefined || v === "" ? pc.dim("-") : String(v)}`).join("\n");
}

/** `12s`, `5m`, `3h`, `2d` since an ISO time or epoch seconds. */
export function ago(t: string | number | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined) return "-";
  const ms = now - (typeof t === "number" ? t * 1000 : Date.parse(t));
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 129_600) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

const STATUS_COLOUR: Record<string, (s: string) => string> = {
  running: pc.green,
  failed: pc.red,
  stopped: pc.yellow,
  deleted: pc.dim,
  ready: pc.green,
  draining: pc.yellow,
};

export function status(s: string): string {
  return (STATUS_COLOUR[s] ?? pc.cyan)(s);
}

export function clock(iso: string): string {
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)}`;
}
