/**
 * The one way tests wait: poll a check until it holds, never sleep and then assert.
 * `check` may be sync or async; it is done when it returns anything but `undefined`, `null`
 * or `false`, and `waitFor` resolves with that (so a count of 0 can be the answer). A check
 * that throws counts as "not yet"; its last error goes in the timeout's message.
 */
export interface WaitOptions {
  /** Default 30 s: only keeps a broken run from hanging, never a measure of speed. */
  timeoutMs?: number;
  /** Between checks; default 20 ms. */
  intervalMs?: number;
  /** On a timeout, what to add to its message (the state of things, logs): called once. */
  diagnose?: () => string | Promise<string>;
}

export async function waitFor<T>(what: string, check: () => T | Promise<T>, options: WaitOptions = {}): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 20;
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      const why = last === undefined ? "" : ` (last check threw: ${(last as Error).message ?? String(last)})`;
      const state = options.diagnose ? await Promise.resolve(options.diagnose()).catch((err: unknown) => `(diagnose failed: ${String(err)})`) : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${state ? `\n${state}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * For what must not happen: checks `check` throughout `forMs` (every `intervalMs`) and
 * throws the moment it fails, naming `what`. Not a sleep: it watches the whole window.
 */
export async function keepsHolding(what: string, check: () => boolean | Promise<boolean>, options: { forMs: number; intervalMs?: number }): Promise<void> {
  const until = Date.now() + options.forMs;
  for (;;) {
    if (!(await check())) throw new Error(`stopped holding: ${what}`);
    if (Date.now() >= until) return;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}
