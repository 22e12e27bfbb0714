/** The audit trail (append-only): recorded by the gateway for every admin and deploy action, read by admins. */
import type { AuditEvent, NewAuditEvent } from "./schema.ts";
import type { Db } from "./db.ts";

export async function recordAudit(db: Db, e: NewAuditEvent): Promise<void> {
  await db.insertInto("audit_log").values(e).execute();
}

export interface AuditFilter {
  actorKeyId?: string;
  tenantId?: string;
  action?: string;
  targetId?: string;
  outcome?: "ok" | "denied";
  since?: Date;
  until?: Date;
  /** Older than this id (the previous page's last). */
  before?: string;
  limit: number;
}

/** Newest first; one more than `limit` tells whether another page follows. */
export async function listAudit(db: Db, f: AuditFilter): Promise<{ events: AuditEvent[]; hasMore: boolean }> {
  let q = db
    .selectFrom("audit_log")
    .selectAll()
    .orderBy("id", "desc")
    .limit(f.limit + 1);
  if (f.actorKeyId !== undefined) q = q.where("actor_key_id", "=", f.actorKeyId);
  if (f.tenantId !== undefined) q = q.where("tenant_id", "=", f.tenantId);
  if (f.action !== undefined) q = q.where("action", "=", f.action);
  if (f.targetId !== undefined) q = q.where("target_id", "=", f.targetId);
  if (f.outcome !== undefined) q = q.where("outcome", "=", f.outcome);
  if (f.since !== undefined) q = q.where("at", ">=", f.since);
  if (f.until !== undefined) q = q.where("at", "<", f.until);
  if (f.before !== undefined) q = q.where("id", "<", f.before);
  const rows = await q.execute();
  return { events: rows.slice(0, f.limit), hasMore: rows.length > f.limit };
}
