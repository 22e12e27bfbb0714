/**
 * The web console's build for local mode: `vite build` of `console/`, made once per version
 * of its sources and kept in the per-machine cache (`$XDG_CACHE_HOME/infera/console/<hash>`,
 * `~/.cache/…` by default), so a fresh clone's `npm start` serves it without a manual step and
 * later starts (any worktree, CI) reuse it. The hash covers the console's sources, its config
 * and the lockfile. A build that fails leaves the platform running without the console.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative } from "node:path";

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

/** What the build depends on. */
export function consoleSourceHash(root: string): string {
  const dir = join(root, "console");
  const h = createHash("sha256");
  for (const f of [join(dir, "package.json"), join(dir, "index.html"), join(dir, "vite.config.ts"), join(root, "pnpm-lock.yaml"), ...files(join(dir, "src"))]) {
    h.update(relative(root, f));
    h.update("\0");
    h.update(readFileSync(f));
    h.update("\0");
  }
  return h.digest("hex").slice(0, 16);
}

export function consoleCacheRoot(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "infera", "console");
}

/** The directory holding the console's build: cached, or built now. Undefined when it cannot be built. */
export async function ensureConsole(root: string, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<string | undefined> {
  if (env.CONSOLE_DIR) return env.CONSOLE_DIR;
  const hash = consoleSourceHash(root);
  const cache = consoleCacheRoot(env);
  const dir = join(cache, hash);
  if (existsSync(join(dir, "index.html"))) return dir;
  const vite = join(root, "console", "node_modules", "vite", "bin", "vite.js");
  if (!existsSync(vite)) {
    log("the console is not built: its dependencies are missing (run pnpm install); /console will say so");
    return undefined;
  }
  mkdirSync(cache, { recursive: true });
  // Built beside its final place, then renamed: a start that runs at the same time never serves half a build.
  const tmp = join(cache, `.${hash}-${process.pid}-${Date.now()}`);
  const started = Date.now();
  log("building the web console (once for this version of it)…");
  const out: string[] = [];
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [vite, "build", "--logLevel", "warn"], {
      cwd: join(root, "console"),
      env: { ...env, CONSOLE_OUT_DIR: tmp },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (d: Buffer) => out.push(d.toString()));
    child.stderr.on("data", (d: Buffer) => out.push(d.toString()));
    child.on("error", () => resolve(1));
    child.on("close", (c) => resolve(c ?? 1));
  });
  if (code !== 0 || !existsSync(join(tmp, "index.html"))) {
    rmSync(tmp, { recursive: true, force: true });
    log(`the web console could not be built (vite exited ${code}): ${out.join("").trim().slice(-500)}`);
    return undefined;
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another start built it at the same moment: keep theirs.
    rmSync(tmp, { recursive: true, force: true });
  }
  log(`built the web console in ${((Date.now() - started) / 1000).toFixed(1)} s (cached in ${dir})`);
  prune(cache, hash);
  return dir;
}

/** Keeps the newest few builds. */
function prune(cache: string, keep: string): void {
  const builds = readdirSync(cache)
    .filter((n) => /^[0-9a-f]{16}$/.test(n) && n !== keep)
    .map((n) => ({ n, t: statSync(join(cache, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const b of builds.slice(4)) rmSync(join(cache, b.n), { recursive: true, force: true });
}
