/** `pnpm migrate`: applies every pending migration to DATABASE_URL. */
import { createDb, migrateToLatest } from "./db.ts";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is required (e.g. postgres://postgres@127.0.0.1:5432/infera)");
  process.exit(2);
}
const db = createDb(url, { max: 1 });
try {
  const { results } = await migrateToLatest(db);
  for (const r of results ?? []) console.log(`${r.status.toLowerCase()}: ${r.migrationName}`);
  if (!results?.length) console.log("up to date");
} catch (err) {
  console.error("migration failed:", err instanceof Error ? err.message : err);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
