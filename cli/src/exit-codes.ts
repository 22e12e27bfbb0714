/**
 * `infera`'s exit codes: scripts may rely on them (README, `infera --help`).
 */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The API refused the request (a 4xx other than those below): its message and the field it named are printed. */
  refused: 1,
  /** Bad flags or arguments: nothing was sent. */
  usage: 2,
  /** Not logged in, or the key was refused (401) or lacks a scope (403). */
  auth: 3,
  /** The deployment, key or model does not exist (or is another tenant's). */
  notFound: 4,
  /** The platform could not be reached, or answered 5xx / 429: try again. */
  unavailable: 5,
  /** `watch`: the deployment failed, or was stopped or deleted while watched. */
  deploymentFailed: 6,
  /** `watch`: it was not running before --timeout. */
  timeout: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that ends the command with its code (its message already says what happened). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** The API's error body, printed as JSON with --json. */
    readonly body?: unknown,
  ) {
    super(message);
  }
}
