/**
 * Failure injection: with probability `rate` a request fails with one of `kinds`, chosen
 * uniformly. Changeable at runtime (POST /sim/faults) so fault tests can flip it on a
 * running process.
 */
export const FAULT_KINDS = [
  "server_error", // 500 before the stream starts
  "rate_limited", // 429
  "context_length", // 400 (vLLM) / 422 (TGI) / 413 (TEI), the engine's context-length error
  "model_not_found", // 404
  "disconnect", // the connection is closed mid-stream (or before a non-streamed answer)
  "stall", // the stream stops mid-way and never ends (a non-streamed request never answers)
  "stream_error", // an error data frame mid-stream (vLLM then sends [DONE]; TGI just ends)
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultConfig {
  rate: number;
  kinds: readonly FaultKind[];
}

export function isFaultKind(value: string): value is FaultKind {
  return (FAULT_KINDS as readonly string[]).includes(value);
}

/** Parses a comma list of kinds; throws naming the first unknown one. */
export function parseFaultKinds(list: string): FaultKind[] {
  const kinds: FaultKind[] = [];
  for (const raw of list.split(",")) {
    const k = raw.trim();
    if (k === "") continue;
    if (!isFaultKind(k)) throw new Error(`unknown fault kind ${JSON.stringify(k)}; known: ${FAULT_KINDS.join(", ")}`);
    kinds.push(k);
  }
  return kinds;
}

export interface FaultInjector {
  /** The fault to inject into this request, if any. */
  draw(): FaultKind | null;
  get(): FaultConfig;
  set(config: FaultConfig): void;
}

export function createFaultInjector(initial: FaultConfig, random: () => number = Math.random): FaultInjector {
  let config: FaultConfig = { rate: initial.rate, kinds: [...initial.kinds] };
  return {
    draw() {
      if (config.rate <= 0 || config.kinds.length === 0) return null;
      if (config.rate < 1 && random() >= config.rate) return null;
      return config.kinds[Math.floor(random() * config.kinds.length)] ?? null;
    },
    get: () => ({ rate: config.rate, kinds: [...config.kinds] }),
    set(next) {
      config = { rate: Math.min(1, Math.max(0, next.rate)), kinds: [...next.kinds] };
    },
  };
}
