/**
 * Real Postgres for tests: a migrated template database made once per run, and a fresh
 * copy of it per test file. Never skips: an unreachable server fails the run.
 */
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { createDb, migrateToLatest } from "@infera/registry";

export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
// One template per checkout, so test runs in two worktrees on one machine never drop each other's.
const TEMPLATE = `infera_tpl_${createHash("sha256").update(process.cwd()).digest("hex").slice(0, 12)}`;

function urlFor(database: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`Postgres is not reachable at ${ADMIN_URL} (${(err as Error).message}). Start it (pg_ctlcluster 15 main start) or set TEST_DATABASE_URL.`);
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function prepareTemplateDatabase(): Promise<void> {
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${TEMPLATE}`);
  });
  const db = createDb(urlFor(TEMPLATE), { max: 1 });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file. */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  const name = `infera_${label
    .replace(/[^a-z0-9]/gi, "")
    .toLowerCase()
    .slice(0, 20)}_${randomBytes(4).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`));
  return {
    name,
    url: urlFor(name),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
