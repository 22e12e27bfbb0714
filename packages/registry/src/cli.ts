/**
 * `pnpm migrate` and the migrate image: applies every pending migration to DATABASE_URL.
 * With SEED_CATALOG (`all`, or a comma list of names, tasks or engines, as local mode's
 * CATALOG) it then makes sure those demo catalog models have a live deployment (idempotent).
 */
import { createDb, migrateToLatest } from "./db.ts";
import { DEMO_CATALOG, seedCatalog, selectCatalog } from "./catalog.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is required (e.g. postgres://postgres@127.0.0.1:5432/infera)");
  process.exit(2);
}
const wanted = (process.env.SEED_CATALOG ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "");
const entries = selectCatalog(wanted);
if (wanted.length > 0 && entries.length === 0) {
  console.error(
    `SEED_CATALOG=${process.env.SEED_CATALOG} names no catalog model: use all, chat, embeddings, images, an engine or one of ${DEMO_CATALOG.map((e) => e.name).join(", ")}`,
  );
  process.exit(2);
}
const db = createDb(url, { max: 1 });
try {
  const { results } = await migrateToLatest(db);
  for (const r of results ?? []) console.log(`${r.status.toLowerCase()}: ${r.migrationName}`);
  if (!results?.length) console.log("up to date");
  if (entries.length > 0) {
    await seedCatalog(db, entries);
    console.log(`catalog seeded: ${entries.map((e) => e.name).join(", ")}`);
  }
} catch (err) {
  console.error("migrate failed:", err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
