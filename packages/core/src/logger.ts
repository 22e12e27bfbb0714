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
