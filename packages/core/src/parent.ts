/**
 * Children started by local mode exit when the process that started them is gone,
 * even if it was SIGKILLed and could not stop them: no process is left behind.
 */
export function exitWithParent(onGone: () => void = () => process.exit(0), intervalMs = 1000): void {
  const ppid = Number(process.env.INFERA_PARENT_PID);
  if (!Number.isInteger(ppid) || ppid <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(ppid, 0);
    } catch {
      clearInterval(timer);
      onGone();
    }
  }, intervalMs);
  timer.unref();
}
