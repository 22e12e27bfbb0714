/**
 * The images test's setup: fails (never skips) without a usable container engine, then
 * builds every image from this checkout exactly as a user would (deploy/images.sh, on the
 * base image made here: NODE_IMAGE=local), under a tag of this run's own. Teardown removes
 * those images and the build layers no image uses: only the base image (and the package
 * cache) stay, in the per-machine cache.
 */
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { IMAGE_NAMES, ROOT, TEST_REGISTRY, must, run } from "./engine.ts";

declare module "vitest" {
  export interface ProvidedContext {
    imageTag: string;
    buildSeconds: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const check = await run("bash", [join(ROOT, "deploy/engine.sh"), "check"]);
  if (check.code !== 0) throw new Error(`the images test needs a container engine:\n${check.stderr.trim()}`);

  const tag = `run-${randomBytes(4).toString("hex")}`;
  const started = Date.now();
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn("bash", [join(ROOT, "deploy/images.sh")], {
      cwd: ROOT,
      env: { ...process.env, NODE_IMAGE: "local", REGISTRY: TEST_REGISTRY, TAG: tag },
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`deploy/images.sh failed (exit ${code}): the images did not build`);
  project.provide("imageTag", tag);
  project.provide("buildSeconds", (Date.now() - started) / 1000);

  return async () => {
    const refs = IMAGE_NAMES.map((n) => `${TEST_REGISTRY}/${n}:${tag}`);
    await must("bash", [join(ROOT, "deploy/engine.sh"), "rmi", ...refs]);
    await must("bash", [join(ROOT, "deploy/engine.sh"), "prune"], {}, 300_000);
  };
}
