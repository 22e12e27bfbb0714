/**
 * `tsx test/bench/profile-top.ts <file.cpuprofile>… [--top N]`: the functions that cost
 * the most self time in V8 CPU profiles (as `pnpm bench --profile` writes them), and
 * the same grouped by package, so a hot path can be read without a flame-graph viewer.
 * `--inclusive`: time with callees (each function counted once per sample), which shows
 * what a whole step of the request path costs when the self time is spread thin.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "25" }, skip: { type: "string", default: "0" }, inclusive: { type: "boolean", default: false } },
  allowPositionals: true,
});
const top = Number(values.top);
/** Seconds from the start of each profile to leave out (start-up: module loading, migrations). */
const skipUs = Number(values.skip) * 1e6;

function where(url: string): string {
  const m = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return url;
  const w = /\/work\/[^/]+\/(.*)$/.exec(url);
  return w ? w[1]! : url || "(native)";
}

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  let t = 0;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < skipUs) continue;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  }
  // Busy time only: idle samples say nothing about the hot path.
  for (const n of p.nodes) if (n.callFrame.functionName === "(idle)") self.delete(n.id);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const w = where(n.callFrame.url);
    const k = `${n.callFrame.functionName || "(anonymous)"}  ${w}:${n.callFrame.lineNumber + 1}`;
    fn.set(k, (fn.get(k) ?? 0) + us);
    pkg.set(w, (pkg.get(w) ?? 0) + us);
  }
  if (values.inclusive) {
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const incl = new Map<string, number>();
    for (const [id, us] of self) {
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur)!;
        const k = `${n.callFrame.functionName || "(anonymous)"}  ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
        if (seen.has(k)) continue;
        seen.add(k);
        incl.set(k, (incl.get(k) ?? 0) + us);
      }
    }
    fn.clear();
    for (const [k, us] of incl) fn.set(k, us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s busy after the first ${values.skip} s`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
  console.log("  by file/package:");
  for (const [k, us] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(us)}  ${k}`);
}
