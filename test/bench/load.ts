/**
 * The open-loop load generator: requests start on a fixed schedule (rate × time), not
 * when earlier ones finish, so a slow system cannot slow the offered load down. Plain
 * undici pools (one per origin, keep-alive) and a hand-rolled SSE event counter: the
 * client does as little per byte as it can, so it is not what is measured.
 */
import { Pool } from "undici";

export interface Target {
  label: string;
  pool: Pool;
  path: string;
  headers: Record<string, string>;
}

/** A request that waits longer than this for its headers or between body bytes fails (bounds a run). */
let timeoutMs = 60_000;
export function setRequestTimeout(ms: number): void {
  timeoutMs = ms;
}

export function pool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
}

export interface CallResult {
  ok: boolean;
  status: number;
  /** ms from sending to the first SSE event (streams) or to the whole answer (non-streaming). */
  firstMs: number;
  totalMs: number;
  /** SSE events received (streams: chunks + [DONE]). */
  events: number;
  /** ms between successive SSE events (events read in one socket read count 0). */
  gaps?: number[];
  maxGapMs: number;
  error?: string;
}

const NL = 0x0a;

/** Counts SSE event ends (a blank line) across chunk boundaries. */
class EventCounter {
  private lastWasNl = false;
  count(buf: Buffer): number {
    let n = 0;
    let i = 0;
    if (this.lastWasNl && buf[0] === NL) {
      n++;
      i = 1;
    }
    for (;;) {
      const j = buf.indexOf("\n\n", i);
      if (j === -1) break;
      n++;
      i = j + 2;
    }
    // A trailing "\n" not consumed as the end of an event may start the next chunk's "\n\n".
    this.lastWasNl = buf.length > 0 && buf[buf.length - 1] === NL && i !== buf.length;
    return n;
  }
}

export interface CallOptions {
  stream: boolean;
  /** Keep every gap (latency phases); the 2,000-stream phase keeps only the largest. */
  keepGaps?: boolean;
  extraHeaders?: Record<string, string>;
  /** Called with the number of events each socket read brought (live token counting). */
  onEvents?: (n: number) => void;
}

/** One response's events as they arrive: time to the first, the gaps between reads (events that arrive in one read count 0). */
export class EventClock {
  events = 0;
  first = 0;
  maxGap = 0;
  private last = 0;

  constructor(
    private readonly t0: number,
    readonly gaps: number[] | undefined,
  ) {}

  seen(n: number, now = performance.now()): void {
    if (this.events === 0) this.first = now - this.t0;
    else {
      const g = now - this.last;
      if (g > this.maxGap) this.maxGap = g;
      this.gaps?.push(g);
    }
    for (let k = 1; k < n; k++) this.gaps?.push(0);
    this.events += n;
    this.last = now;
  }
}

export async function call(t: Target, body: string, o: CallOptions): Promise<CallResult> {
  const { stream, keepGaps = false, extraHeaders, onEvents } = o;
  const t0 = performance.now();
  try {
    const res = await t.pool.request({ method: "POST", path: t.path, headers: extraHeaders ? { ...t.headers, ...extraHeaders } : t.headers, body });
    if (!stream) {
      await res.body.arrayBuffer();
      const ms = performance.now() - t0;
      return { ok: res.statusCode === 200, status: res.statusCode, firstMs: ms, totalMs: ms, events: 0, maxGapMs: 0 };
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      return { ok: false, status: res.statusCode, firstMs: 0, totalMs: performance.now() - t0, events: 0, maxGapMs: 0, error: text.slice(0, 300) };
    }
    const counter = new EventCounter();
    const clock = new EventClock(t0, keepGaps ? [] : undefined);
    let tail = "";
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      const now = performance.now();
      const n = counter.count(chunk);
      if (n === 0) continue;
      onEvents?.(n);
      clock.seen(n, now);
      tail = chunk.length >= 16 ? chunk.toString("latin1", chunk.length - 16) : tail + chunk.toString("latin1");
    }
    const ok = tail.includes("[DONE]");
    return {
      ok,
      status: 200,
      firstMs: clock.first,
      totalMs: performance.now() - t0,
      events: clock.events,
      gaps: clock.gaps,
      maxGapMs: clock.maxGap,
      error: ok ? undefined : `stream ended without [DONE]: …${tail}`,
    };
  } catch (err) {
    return { ok: false, status: 0, firstMs: 0, totalMs: performance.now() - t0, events: 0, maxGapMs: 0, error: (err as Error).message };
  }
}

export interface OpenLoopResult<T> {
  results: T[];
  /** Requests not sent because maxInFlight were open (the system fell behind). */
  dropped: number;
  elapsedMs: number;
  /** How late the generator started requests, p99 (ms): its own noise floor. */
  lateP99Ms: number;
  maxInFlight: number;
}

/** Starts `count` requests at `rate` per second, evenly spaced, whatever the answers do. */
export async function openLoop<T>(o: { rate: number; count: number; maxInFlight: number; fire: (i: number) => Promise<T> }): Promise<OpenLoopResult<T>> {
  const results: T[] = [];
  const pending: Promise<void>[] = [];
  const lates: number[] = [];
  let inFlight = 0;
  let peak = 0;
  let dropped = 0;
  let next = 0;
  const t0 = performance.now();
  const interval = 1000 / o.rate;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < o.count && t0 + next * interval <= now) {
        const due = t0 + next * interval;
        lates.push(now - due);
        const i = next++;
        if (inFlight >= o.maxInFlight) {
          dropped++;
          continue;
        }
        inFlight++;
        if (inFlight > peak) peak = inFlight;
        pending.push(
          o.fire(i).then((r) => {
            inFlight--;
            results.push(r);
          }),
        );
      }
      if (next >= o.count) return resolve();
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(pending);
  lates.sort((a, b) => a - b);
  return { results, dropped, elapsedMs: performance.now() - t0, lateP99Ms: lates[Math.floor(lates.length * 0.99)] ?? 0, maxInFlight: peak };
}
