import { pino, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/** Paths pino blanks on every line: API keys, HF tokens, prompts. */
export const REDACT_PATHS = [
  "authorization",
  "apiKey",
  "secret",
  "token",
  "hfToken",
  "*.authorization",
  "*.apiKey",
  "*.secret",
  "*.token",
  "*.hfToken",
  "req.headers.authorization",
  "headers.authorization",
  "body.messages",
  "body.prompt",
  "body.input",
  "hf.token",
  "*.hf.token",
  // Prompts and key material wherever a body or header set is logged.
  "*.body.messages",
  "*.body.prompt",
  "*.body.input",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  "messages",
  "prompt",
  "input",
];

export interface LoggerConfig {
  service: string;
  level?: string;
  /** Where lines go; a test passes a stream to read them back. */
  destination?: pino.DestinationStream;
}

export function createLogger(config: LoggerConfig): Logger {
  const options: LoggerOptions = {
    level: config.level ?? "info",
    base: { service: config.service },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return config.destination ? pino(options, config.destination) : pino(options);
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

/**
 * A child logger made the first time it writes a line: pino's `child()` serialises (and
 * redacts) its bindings when it is called, and a request's logger (its id bound) rarely logs
 * anything at the running level. Lines it writes are the child's exactly.
 */
class LazyChild {
  private made?: Logger;

  constructor(
    readonly parent: Logger,
    private readonly bound: pino.Bindings,
  ) {}

  real(): Logger {
    this.made ??= this.parent.child(this.bound);
    return this.made;
  }

  get level(): string {
    return this.parent.level;
  }

  isLevelEnabled(level: string): boolean {
    return this.parent.isLevelEnabled(level);
  }

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.real().child(bindings, options);
  }

  bindings(): pino.Bindings {
    return this.real().bindings();
  }
}
for (const level of LEVELS) {
  Object.defineProperty(LazyChild.prototype, level, {
    value(this: LazyChild, ...args: unknown[]) {
      if (this.parent.isLevelEnabled(level)) (this.real()[level] as (...a: unknown[]) => void)(...args);
    },
  });
}

/** `parent.child(bindings)`, made only when it first logs at an enabled level (per-request loggers). */
export function lazyChild(parent: Logger, bindings: pino.Bindings): Logger {
  return new LazyChild(parent, bindings) as unknown as Logger;
}
