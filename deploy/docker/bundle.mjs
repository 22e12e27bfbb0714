#!/usr/bin/env node
// Compiles what each image runs into plain JavaScript: dist/<image>/main.mjs, our TypeScript and
// every dependency bundled by esbuild (code split, so the kubernetes client loads only where
// RUNTIME=kubernetes asks for it). An image then holds node, its bundle and nothing else: no
// node_modules, no tsx, no compiler. Why compiled and not tsx: docs/images.md.
//
//   node deploy/docker/bundle.mjs [image ...]     # default: every image; output in dist/
//
// Files the code reads beside itself (`new URL("./lua/x.lua", import.meta.url)`) are found in
// the sources that went into the bundle and copied to the same place beside it. Each image gets
// THIRD-PARTY-LICENSES.txt naming the packages bundled into it, with their license texts.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = join(ROOT, "dist");

/** Image name → entry point. The scheduler image also carries engine-sim and worker-agent (RUNTIME=local). */
const ENTRIES = {
  gateway: "services/gateway/src/main.ts",
  scheduler: "services/scheduler/src/main.ts",
  "worker-agent": "services/worker-agent/src/main.ts",
  "engine-sim": "services/engine-sim/src/main.ts",
  migrate: "packages/registry/src/cli.ts",
};

/** Entry points an image runs besides main (image → name → source): worker threads, found beside main.mjs. */
const WORKERS = {
  gateway: { "tokenizer-worker": "services/gateway/src/tokenizer-worker.ts" },
};

/** Folders of packages that read them by path at run time, copied beside an image's bundle (image → folder → package/subfolder). */
const PACKAGE_FOLDERS = {
  gateway: { "swagger-ui": ["@fastify/swagger-ui", "static"] },
};

// CommonJS dependencies call require() and read __dirname: give the ES module bundle both.
const BANNER = [
  'import { createRequire as __inferaCreateRequire } from "node:module";',
  'import { fileURLToPath as __inferaFileURLToPath } from "node:url";',
  "const require = __inferaCreateRequire(import.meta.url);",
  "const __infera_filename = __inferaFileURLToPath(import.meta.url);",
  'const __infera_dirname = __infera_filename.slice(0, __infera_filename.lastIndexOf("/"));',
].join("\n");

const ASSET = /new URL\(\s*(["'])(\.{1,2}\/[^"']*[^/"'])\1\s*,\s*import\.meta\.url\s*\)/g;

async function bundle(image, entry) {
  const outdir = join(OUT, image);
  rmSync(outdir, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: entry, ...WORKERS[image] },
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    banner: { js: BANNER },
    define: { __dirname: "__infera_dirname", __filename: "__infera_filename" },
    // pg's optional native binding is never used (pg.native is not imported).
    external: ["pg-native"],
    legalComments: "none",
    metafile: true,
    logLevel: "warning",
  });
  const inputs = Object.keys(result.metafile.inputs);

  // Files read beside the code: same relative place beside the bundle.
  const assets = new Map();
  for (const input of inputs) {
    if (input.includes(":")) continue; // esbuild's virtual modules
    const source = readFileSync(join(ROOT, input), "utf8");
    for (const [, , rel] of source.matchAll(ASSET)) {
      const from = resolve(ROOT, dirname(input), rel);
      const to = resolve(outdir, rel);
      if (!to.startsWith(outdir + sep)) throw new Error(`${input}: ${rel} would land outside dist/${image}`);
      if (!existsSync(from)) throw new Error(`${input} reads ${rel}, which does not exist (${relative(ROOT, from)})`);
      const seen = assets.get(to);
      if (seen && seen !== from) throw new Error(`dist/${image}: ${rel} is read by two sources (${relative(ROOT, seen)}, ${relative(ROOT, from)})`);
      assets.set(to, from);
    }
  }
  for (const [to, from] of assets) {
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to);
  }

  const require = createRequire(join(ROOT, entry));
  for (const [folder, [pkg, sub]] of Object.entries(PACKAGE_FOLDERS[image] ?? {})) {
    cpSync(join(dirname(require.resolve(pkg)), sub), join(outdir, folder), { recursive: true });
    assets.set(join(outdir, folder), pkg);
  }

  writeFileSync(join(outdir, "THIRD-PARTY-LICENSES.txt"), licenses(inputs));
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  return { image, bytes, assets: [...assets.keys()].map((a) => relative(outdir, a)) };
}

/** The npm packages whose code went into a bundle, with each one's license text. */
function licenses(inputs) {
  const dirs = new Set();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]);
  }
  const parts = [];
  for (const dir of [...dirs].sort()) {
    const pkg = JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8"));
    const file = readdirSync(join(ROOT, dir)).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = file ? readFileSync(join(ROOT, dir, file), "utf8").trim() : "(no license file in the package)";
    parts.push(`${pkg.name}@${pkg.version} (${pkg.license ?? "license not stated"})\n\n${text}\n`);
  }
  const unique = [...new Set(parts)];
  return `Third-party packages bundled into this image (${unique.length}):\n\n${unique.join("\n" + "-".repeat(72) + "\n\n")}`;
}

const wanted = process.argv.slice(2);
for (const w of wanted) if (!(w in ENTRIES)) throw new Error(`unknown image ${w}: one of ${Object.keys(ENTRIES).join(", ")}`);
const started = Date.now();
for (const image of wanted.length > 0 ? wanted : Object.keys(ENTRIES)) {
  const r = await bundle(image, ENTRIES[image]);
  console.log(`dist/${r.image}: ${(r.bytes / 1e6).toFixed(1)} MB${r.assets.length ? `, with ${r.assets.join(", ")}` : ""}`);
}
console.log(`bundled in ${((Date.now() - started) / 1000).toFixed(1)}s`);
