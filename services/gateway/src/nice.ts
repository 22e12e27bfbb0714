/**
 * BATCH_NICE: a batch gateway lowers its own OS CPU priority, so on shared cores the interactive
 * gateways, scheduler, agents and Redis run first and batch lines take what CPU is left.
 */
import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Lowers this process's CPU priority by `by` (nice, at most 19), on every thread it has now: on
 * Linux a nice value is a thread's, and V8's and libuv's threads already run; the threads made
 * later inherit it from the thread that makes them. Raising it again would need privileges, so
 * this is for good. Returns the nice value now (what `getPriority()` reads).
 */
export function lowerPriority(by: number): number {
  if (by <= 0) return getPriority();
  const nice = Math.min(19, getPriority() + by);
  let tids: number[] = [];
  try {
    tids = readdirSync("/proc/self/task").map(Number);
  } catch {
    // not Linux: the process's priority is the one there is
  }
  if (tids.length === 0) setPriority(nice);
  for (const tid of tids) {
    try {
      setPriority(tid, nice);
    } catch {
      // a thread that ended in between
    }
  }
  return getPriority();
}
