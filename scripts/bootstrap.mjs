#!/usr/bin/env node
// `npm start` and `npm test` on a machine with only Node.js 20: make sure the pinned
// pnpm and the workspace's dependencies are installed, then run the real command.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const PNPM = "12.4.2";
const [command, ...args] = process.argv.slice(2);

function run(cmd, argv, opts = {}) {
  execFileSync(cmd, argv, { stdio: "inherit", cwd: root, ...opts });
}

function pnpmVersion() {
  try {
    return execFileSync("pnpm", ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

let pnpm = ["pnpm"];
if (pnpmVersion() !== PNPM) {
  try {
    console.log(`[infera] installing pnpm ${PNPM} (npm i -g)…`);
    run("npm", ["i", "-g", `pnpm@${PNPM}`]);
  } catch {
    // No permission for a global install: run it through npx instead.
    pnpm = ["npx", "-y", `pnpm@${PNPM}`];
  }
}

const marker = join(root, "node_modules", ".modules.yaml");
const lock = join(root, "pnpm-lock.yaml");
if (!existsSync(marker) || statSync(lock).mtimeMs > statSync(marker).mtimeMs) {
  console.log("[infera] installing dependencies (pnpm install --frozen-lockfile)…");
  run(pnpm[0], [...pnpm.slice(1), "install", "--frozen-lockfile"]);
}

const commands = {
  start: [process.execPath, ["--import", "tsx", "deploy/local/src/main.ts", ...args]],
  test: [join(root, "node_modules", ".bin", "vitest"), ["run", ...args]],
};
const entry = commands[command];
if (!entry) {
  console.error(`usage: bootstrap.mjs ${Object.keys(commands).join("|")} [args]`);
  process.exit(2);
}
const child = spawn(entry[0], entry[1], { stdio: "inherit", cwd: root });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
