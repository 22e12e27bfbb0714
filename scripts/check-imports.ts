/**
 * `pnpm check:imports`: the import boundaries, checked over the real import graph (every
 * import and export-from of every TypeScript file git knows, resolved as tsc resolves it,
 * workspace packages through their package.json `exports` to their sources):
 *
 *   - a service imports packages, never another service;
 *   - a package never imports a service;
 *   - no import cycles (type-only imports count: a cycle of types is still a cycle of ideas);
 *   - every relative or workspace (`@infera/…`) import resolves.
 *
 * Prints each violation (for a cycle, its files in order) and exits 1 if there is any.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import ts from "typescript";

const root = resolve(import.meta.dirname, "..");
const config = ts.getParsedCommandLineOfConfigFile(resolve(root, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
if (!config) throw new Error("cannot read tsconfig.json");
const options = config.options;

const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts", "*.mts"], { cwd: root, encoding: "utf8" })
  .split("\n")
  .filter((f) => f && !f.startsWith("packages/contracts/src/gen/") && !f.includes("node_modules/"));

/** The files one file imports (resolved, inside the repository), from its import and export declarations. */
function importsOf(file: string): string[] {
  const path = resolve(root, file);
  const source = ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, false);
  const out: string[] = [];
  const add = (spec: ts.Expression | undefined) => {
    if (!spec || !ts.isStringLiteral(spec)) return;
    const r = ts.resolveModuleName(spec.text, path, options, ts.sys).resolvedModule;
    // Ours (relative, or a workspace package) must resolve: an undeclared workspace dependency does not.
    if (!r && (spec.text.startsWith(".") || spec.text.startsWith("@infera/")))
      unresolved.push(`${file} imports ${spec.text}, which does not resolve (a workspace package it does not declare?)`);
    if (!r || r.isExternalLibraryImport) return;
    const to = relative(root, r.resolvedFileName);
    if (!to.startsWith("..") && !to.includes("node_modules/")) out.push(to);
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal as ts.Expression);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const unresolved: string[] = [];
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const problems: string[] = [...unresolved];

const serviceOf = (f: string) => /^services\/([^/]+)\//.exec(f)?.[1];
for (const [from, tos] of graph) {
  for (const to of new Set(tos)) {
    const a = serviceOf(from);
    const b = serviceOf(to);
    if (a && b && a !== b) problems.push(`${from} imports ${to}: a service imports packages, never another service`);
    if (from.startsWith("packages/") && b) problems.push(`${from} imports ${to}: a package never imports a service`);
  }
}

// Cycles: the strongly connected components of more than one file (or a file importing itself), Tarjan's.
let index = 0;
const idx = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
function connect(v: string): void {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
  }
  if (low.get(v) !== idx.get(v)) return;
  const scc: string[] = [];
  for (let w = stack.pop()!; ; w = stack.pop()!) {
    onStack.delete(w);
    scc.push(w);
    if (w === v) break;
  }
  if (scc.length > 1 || graph.get(v)?.includes(v)) problems.push(`import cycle: ${scc.reverse().join(" → ")}`);
}
for (const f of graph.keys()) if (!idx.has(f)) connect(f);

const edges = [...graph.values()].reduce((n, t) => n + t.length, 0);
if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`\n${problems.length} import-boundary problem(s) in ${graph.size} files`);
  process.exit(1);
}
console.log(`imports: ${graph.size} files, ${edges} internal imports; no service imports another, no package imports a service, no cycles`);
