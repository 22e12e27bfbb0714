#!/usr/bin/env node
// `npm start` and `npm test` on a machine with only Node.js 20: make sure the pinned
// pnpm and the workspace's dependencies are installed, then run the real command.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// Node.js 20.18 or newer (package.json "engines"); say what to install rather than fail later.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 18)) {
  console.error(
    `[infera] Node.js ${process.versions.node} is too old: Infera needs Node.js 20.18 or newer (20 LTS is what it is tested on).\n` +
      "[infera] Install it from https://nodejs.org/en/download, or with nvm: nvm install 20 && nvm use 20",
  );
  process.exit(1);
}
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

const vitest = join(root, "node_modules", ".bin", "vitest");
// The fault, fuzz and soak suites kill and restart processes and measure memory, and the kube
// suites each run a Kubernetes control plane: they run
// after the rest, one file at a time, so they never compete with each other for the 2 cores.
const SERIAL = ["test/faults", "test/fuzz", "test/soak", "test/kube"];
const steps = {
  start: [[process.execPath, ["--import", "tsx", "deploy/local/src/main.ts", ...args]]],
  test:
    args.length > 0
      ? [[vitest, ["run", ...args]]]
      : [
          [vitest, ["run", ...SERIAL.flatMap((d) => ["--exclude", `${d}/**`])]],
          [vitest, ["run", ...SERIAL, "--maxWorkers=1"]],
        ],
}[command];
if (!steps) {
  console.error("usage: bootstrap.mjs start|test [args]");
  process.exit(2);
}

let current;
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => current?.kill(sig));
let failed = 0;
const summary = join(mkdtempSync(join(tmpdir(), "infera-test-")), "summary");
for (const [cmd, argv] of steps) {
  current = spawn(cmd, argv, { stdio: "inherit", cwd: root, env: { ...process.env, INFERA_SUMMARY_FILE: summary } });
  const code = await new Promise((resolve) => current.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
  if (code !== 0) failed = code;
}
if (command === "test" && steps.length > 1 && existsSync(summary)) {
  const [p, f, s] = readFileSync(summary, "utf8")
    .trim()
    .split("\n")
    .map((l) => l.split(" ").map(Number))
    .reduce((a, b) => a.map((x, i) => x + (b[i] ?? 0)), [0, 0, 0]);
  console.log(`\nall suites: ${p} passed, ${f} failed${s ? `, ${s} skipped` : ""}`);
}
process.exit(failed);
