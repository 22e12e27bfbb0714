import type { Tenant } from "./schema.ts";
import type { Db } from "./db.ts";
import { newId } from "./ids.ts";

export async function createTenant(db: Db, name: string): Promise<Tenant> {
  return db
    .insertInto("tenants")
    .values({ id: newId("ten"), name })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findTenantByName(db: Db, name: string): Promise<Tenant | undefined> {
  return db.selectFrom("tenants").selectAll().where("name", "=", name).executeTakeFirst();
}

export async function getTenant(db: Db, id: string): Promise<Tenant | undefined> {
  return db.selectFrom("tenants").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function listTenants(db: Db): Promise<Tenant[]> {
  return db.selectFrom("tenants").selectAll().orderBy("created_at").execute();
}

export async function ensureTenant(db: Db, name: string): Promise<Tenant> {
  await db
    .insertInto("tenants")
    .values({ id: newId("ten"), name })
    .onConflict((oc) => oc.column("name").doNothing())
    .execute();
  const t = await findTenantByName(db, name);
  if (!t) throw new Error(`tenant ${name} vanished`);
  return t;
}
