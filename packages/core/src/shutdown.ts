import type { Logger } from "./logger.ts";

export interface Stoppable {
  name: string;
  stop(): Promise<void> | void;
}

/**
 * Stops each component in order, the next one even when one before it failed (that failure
 * is logged with its stack). A service's `stop()` is this over its ordered stop list.
 */
export async function stopInOrder(logger: Logger, stoppers: readonly Stoppable[], onStopping?: (name: string) => void): Promise<void> {
  for (const s of stoppers) {
    onStopping?.(s.name);
    try {
      await s.stop();
    } catch (err) {
      quietly(() => logger.error({ err, component: s.name }, "error while stopping"));
    }
  }
}

/**
 * The one shutdown helper every service's main.ts hands its ordered stop list to: runs
 * `stoppers` in order on SIGTERM/SIGINT (callers list them in reverse start order:
 * not ready → stop intake → drain → close workers → close gRPC → quit Redis → pool),
 * and exits non-zero if they overrun `deadlineMs` (the log line names the component that was
 * stopping and how long each before it took). Returns the same shutdown to call
 * directly; `quiet` (the parent is gone) writes no log line: stdout is then most likely a
 * pipe nobody reads, and a logger that cannot write can keep the process from exiting.
 */
export function onShutdown(logger: Logger, deadlineMs: number, stoppers: () => readonly Stoppable[]): (reason: string, options?: { quiet?: boolean }) => void {
  let stopping = false;
  const run = async (reason: string, quiet: boolean) => {
    if (stopping) return;
    stopping = true;
    // The deadline first: nothing below may keep the process from exiting.
    let current = { name: "", at: Date.now() };
    const took: Record<string, number> = {};
    const timer = setTimeout(() => {
      const stoppingMs = Date.now() - current.at;
      if (!quiet) quietly(() => logger.error({ deadlineMs, stopping: current.name, stoppingMs, took }, "shutdown overran its deadline; exiting"));
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    const log = quiet ? logger.child({}, { level: "silent" }) : logger;
    quietly(() => log.info({ signal: reason }, "shutting down"));
    await stopInOrder(log, stoppers(), (name) => {
      const now = Date.now();
      if (current.name) took[current.name] = now - current.at;
      current = { name, at: now };
    });
    quietly(() => log.info("stopped"));
    process.exit(0);
  };
  // `on`, not `once`: Ctrl-C in a terminal signals the whole process group and the parent
  // passes a signal on too, so a second one must not kill a process in the middle of its drain.
  process.on("SIGTERM", () => void run("SIGTERM", false));
  process.on("SIGINT", () => void run("SIGINT", false));
  return (reason, options = {}) => void run(reason, options.quiet ?? false);
}

/**
 * A log line that may not be written: a process whose parent was SIGKILLed writes to a pipe
 * nobody reads (EPIPE), and that must not stop it from shutting down.
 */
function quietly(log: () => void): void {
  try {
    log();
  } catch {
    // the line is lost; the shutdown goes on
  }
}
