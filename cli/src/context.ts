/**
 * What every command gets (the output, the exit code to end with, the global options, the
 * API client) and the option parsers the commands share; apart from main.ts so that the
 * commands and the program that registers them do not import each other.
 */
import { InvalidArgumentError } from "commander";
import type { Client } from "./client.ts";
import type { ExitCode } from "./exit-codes.ts";
import type { Output } from "./output.ts";

export interface Context {
  out: Output;
  /** The exit code when the command ends without an error (watch: how the deployment ended). */
  setExit(code: ExitCode): void;
  globals: GlobalOptions;
  client(): Client;
  env: NodeJS.ProcessEnv;
}

export interface GlobalOptions {
  json?: boolean;
  url?: string;
}

/** A whole number in [min, max], for an option's parser: a bad value is a usage error naming the flag. */
export function intIn(min: number, max: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`'${v}' is not a whole number.`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${n} is not between ${min} and ${max}.`);
    return n;
  };
}

export function commaList(v: string): string[] {
  const list = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (list.length === 0) throw new InvalidArgumentError("give at least one value.");
  return list;
}
