import type { Logger } from "./logger.ts";

export interface Stoppable {
  name: string;
  stop(): Promise<void> | void;
}

/**
 * Stops each component in order, the next one even when one before it failed (that failure
 * is logged with its stack). A service's `stop()` is this over its ordered stop list.
 */
export async function stopInOrder(logger: Logger, stoppers: readonly Stoppable[]): Promise<void> {
  for (const s of stoppers) {
    try {
      await s.stop();
    } catch (err) {
      logger.error({ err, component: s.name }, "error while stopping");
    }
  }
}

/**
 * The one shutdown helper every service's main.ts hands its ordered stop list to: runs
 * `stoppers` in order on SIGTERM/SIGINT (callers list them in reverse start order:
 * not ready → stop intake → drain → close workers → close gRPC → quit Redis → pool),
 * and exits non-zero if they overrun `deadlineMs`.
 */
export function onShutdown(logger: Logger, deadlineMs: number, stoppers: () => readonly Stoppable[]): void {
  let stopping = false;
  const run = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      logger.error({ deadlineMs }, "shutdown overran its deadline; exiting");
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    await stopInOrder(logger, stoppers());
    logger.info("stopped");
    process.exit(0);
  };
  // `on`, not `once`: Ctrl-C in a terminal signals the whole process group and the parent
  // passes a signal on too, so a second one must not kill a process in the middle of its drain.
  process.on("SIGTERM", () => void run("SIGTERM"));
  process.on("SIGINT", () => void run("SIGINT"));
}
