/**
 * `pnpm check:duplicates`: the copy-paste budget. jscpd (settings in .jscpd.json) finds the
 * runs of code that stand twice in the tree and writes .tmp/jscpd/jscpd-report.json; this
 * reads it: more clones than BUDGET (the argument, in package.json) fails, and every clone is
 * listed so the new one is easy to find. Lower the budget when you remove one.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

interface Report {
  statistics: { total: { clones: number; duplicatedLines: number; lines: number } };
  duplicates: { lines: number; firstFile: { name: string; start: number; end: number }; secondFile: { name: string; start: number; end: number } }[];
}

const budget = Number(process.argv[2] ?? Number.NaN);
if (!Number.isInteger(budget) || budget < 0) throw new Error("usage: check-duplicates.ts BUDGET (the most clones allowed)");
const report = JSON.parse(readFileSync(resolve(import.meta.dirname, "../.tmp/jscpd/jscpd-report.json"), "utf8")) as Report;
const { clones, duplicatedLines, lines } = report.statistics.total;
for (const d of report.duplicates) {
  console.log(
    `  ${d.firstFile.name}:${d.firstFile.start}-${d.firstFile.end} ~ ${d.secondFile.name}:${d.secondFile.start}-${d.secondFile.end} (${d.lines} lines)`,
  );
}
console.log(`duplicates: ${clones} clones, ${duplicatedLines} of ${lines} lines; budget ${budget}`);
if (clones > budget) {
  console.error(
    `more clones than the budget (${clones} > ${budget}): make the new one shared code, or (if it must stay) raise the budget in package.json with a reason`,
  );
  process.exit(1);
}
