/**
 * Usage records, written to Postgres in batches. A failed write keeps the batch and
 * retries (Postgres restarting loses nothing); stop() flushes what is held. Each
 * record's request id is unique in the table, so a retried batch counts once.
 */
import type { Kysely } from "kysely";
import type { Logger } from "@infera/core";
import { insertUsage, type DB, type NewUsageRecord } from "@infera/registry";
import type { GatewayMetrics } from "./metrics.ts";

export class UsageRecorder {
  private buffer: NewUsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** Requests running whose record is still to come. */
  private running = 0;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
    private readonly options: { intervalMs: number; maxBatch: number; maxHeld: number } = { intervalMs: 250, maxBatch: 500, maxHeld: 1_000_000 },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.intervalMs);
  }

  record(r: NewUsageRecord): void {
    if (this.buffer.length >= this.options.maxHeld) {
      this.logger.error("usage buffer full; dropping the oldest record");
      this.buffer.shift();
    }
    this.buffer.push(r);
    this.metrics.usagePending.set(this.buffer.length);
    if (this.buffer.length >= this.options.maxBatch) void this.flush();
  }

  /** A request has started that will record (or finish without a record): stop() waits for its `finished()`. */
  started(): void {
    this.running++;
  }

  finished(): void {
    this.running--;
  }

  get pending(): number {
    return this.buffer.length;
  }

  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      while (this.buffer.length > 0) {
        const batch = this.buffer.slice(0, this.options.maxBatch);
        try {
          await insertUsage(this.db, batch);
          this.buffer.splice(0, batch.length);
        } catch (err) {
          this.logger.warn({ err, pending: this.buffer.length }, "could not write usage; will retry");
          break;
        }
      }
      this.metrics.usagePending.set(this.buffer.length);
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Flush until empty, with no request still to record, or until the deadline passes. */
  async stop(deadlineMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const until = Date.now() + deadlineMs;
    while ((this.buffer.length > 0 || this.running > 0) && Date.now() < until) {
      await this.flush();
      // A request cut a moment ago records within milliseconds; a failed write is retried less often.
      if (this.buffer.length > 0) await new Promise((r) => setTimeout(r, 200));
      else if (this.running > 0) await new Promise((r) => setTimeout(r, 10));
    }
    if (this.buffer.length > 0 || this.running > 0)
      this.logger.error({ lost: this.buffer.length, unrecorded: this.running }, "stopping with usage records not written");
  }
}
