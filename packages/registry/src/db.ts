import { Kysely, Migrator, PostgresDialect, type MigrationResultSet, type Transaction } from "kysely";
import pg from "pg";
import type { DB } from "./schema.ts";
import { migrations } from "./migrations/index.ts";

/** What repository functions take: the database, or a transaction on it. */
export type Db = Kysely<DB> | Transaction<DB>;

// bigint (bigserial ids, counts) as string, numeric as string: no silent precision loss.
export function createDb(connectionString: string, options: { max?: number } = {}): Kysely<DB> {
  const pool = new pg.Pool({ connectionString, max: options.max ?? 10, idleTimeoutMillis: 10_000 });
  // A pool error (server restarted) must not crash the process; queries will retry on new clients.
  pool.on("error", () => {});
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

export async function migrateToLatest(db: Kysely<DB>): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const result = await migrator.migrateToLatest();
  if (result.error) throw result.error;
  return result;
}
