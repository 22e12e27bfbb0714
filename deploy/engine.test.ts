/**
 * Without a usable container engine, deploy/engine.sh says what to install, and the images
 * test fails (its setup throws with that message) instead of skipping.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const ROOT = new URL("..", import.meta.url).pathname;
const TOOLS = ["bash", "sh", "mkdir", "mktemp", "cat", "cmp", "mv", "rm", "md5sum", "cut", "id", "env"];
const dirs: string[] = [];

/** A PATH holding only the basic tools, plus the fake programs given. */
function pathWith(fakes: Record<string, string>): { PATH: string; INFERA_IMAGES_CACHE: string } {
  const dir = mkdtempSync(join(tmpdir(), "infera-engine-test-"));
  dirs.push(dir);
  const bin = join(dir, "bin");
  mkdirSync(bin);
  for (const tool of TOOLS) {
    const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found) symlinkSync(found, join(bin, tool));
  }
  for (const [name, script] of Object.entries(fakes)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return { PATH: bin, INFERA_IMAGES_CACHE: join(dir, "cache") };
}

function check(env: Record<string, string>) {
  return spawnSync("bash", [join(ROOT, "deploy/engine.sh"), "check"], {
    encoding: "utf8",
    env: { HOME: tmpdir(), ...env },
  });
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("deploy/engine.sh check", () => {
  it("names what to install when there is no container engine", () => {
    const r = check(pathWith({}));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("No usable container engine: podman");
    expect(r.stderr).toMatch(/apt-get install podman runc conmon debootstrap docker-compose/);
    expect(r.stderr).toContain("deploy/engine.sh install");
  });

  it("says why when podman is there but cannot run, and what to try", () => {
    const ok = "exit 0";
    const r = check(
      pathWith({ podman: 'echo "Error: crun: cgroups in hybrid mode not supported" >&2; exit 125', runc: ok, debootstrap: ok, "docker-compose": ok }),
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("podman is installed but cannot run here");
    expect(r.stderr).toContain("cgroups in hybrid mode not supported");
    expect(r.stderr).toContain("INFERA_STORAGE_DRIVER=vfs");
  });
});

describe("the images test without a container engine", () => {
  it("fails with the message instead of skipping", async () => {
    const { default: setup } = await import("../test/images/global-setup.ts");
    const saved = { PATH: process.env.PATH, INFERA_IMAGES_CACHE: process.env.INFERA_IMAGES_CACHE };
    Object.assign(process.env, pathWith({}));
    try {
      // No build is started: the check comes first.
      await expect(setup({ provide: () => {} } as never)).rejects.toThrow(/the images test needs a container engine:\nNo usable container engine: podman/);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.INFERA_IMAGES_CACHE === undefined) delete process.env.INFERA_IMAGES_CACHE;
      else process.env.INFERA_IMAGES_CACHE = saved.INFERA_IMAGES_CACHE;
    }
  });
});
