/**
 * Where `infera login` keeps the base URL and key: `config.json` in the user's config
 * directory (`$XDG_CONFIG_HOME/infera`, `~/.config/infera` on Linux; the platform's own
 * elsewhere, by env-paths), readable by its owner only (0600, in a 0700 directory).
 * INFERA_URL and INFERA_TOKEN, when set, win over the file.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import envPaths from "env-paths";
import { CliError, EXIT } from "./exit-codes.ts";

export interface Login {
  url: string;
  key: string;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  // env-paths reads XDG_CONFIG_HOME at import; read it here too so tests and users can point it anywhere.
  return env.XDG_CONFIG_HOME ? join(env.XDG_CONFIG_HOME, "infera") : envPaths("infera", { suffix: "" }).config;
}

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), "config.json");
}

export function saveLogin(login: Login, env: NodeJS.ProcessEnv = process.env): string {
  const dir = configDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = configFile(env);
  // Written 0600 from the start (never readable by others, even for a moment), then made so if it existed.
  writeFileSync(file, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

export function removeLogin(env: NodeJS.ProcessEnv = process.env): boolean {
  const file = configFile(env);
  if (!existsSync(file)) return false;
  rmSync(file);
  return true;
}

function readSaved(env: NodeJS.ProcessEnv): Partial<Login> {
  const file = configFile(env);
  if (!existsSync(file)) return {};
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as Partial<Login>;
    return { url: typeof v.url === "string" ? v.url : undefined, key: typeof v.key === "string" ? v.key : undefined };
  } catch {
    throw new CliError(`${file} is not valid JSON: run 'infera login' again.`, EXIT.auth);
  }
}

/** The base URL and key to use: flags, then INFERA_URL / INFERA_TOKEN, then the saved login. */
export function resolveLogin(flags: { url?: string }, env: NodeJS.ProcessEnv = process.env): Login {
  const saved = readSaved(env);
  const url = flags.url ?? env.INFERA_URL ?? saved.url;
  const key = env.INFERA_TOKEN ?? saved.key;
  if (!url || !key) throw new CliError("Not logged in: run 'infera login --url <gateway URL>' (or set INFERA_URL and INFERA_TOKEN).", EXIT.auth);
  return { url: normalizeUrl(url), key };
}

export function normalizeUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`Invalid value for --url: '${url}' is not a URL (e.g. http://localhost:8080).`, EXIT.usage);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new CliError(`Invalid value for --url: '${url}' must be http:// or https://.`, EXIT.usage);
  return u.toString().replace(/\/+$/, "");
}
