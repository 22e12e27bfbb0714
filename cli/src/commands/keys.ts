/**
 * `keys create|list|revoke` (admin keys): the secret of a new key is printed once, when it
 * is created; lists show only its display prefix.
 */
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import pc from "picocolors";
import type { ApiKey, Tenant } from "../api-types.ts";
import { ago, fields, table } from "../output.ts";
import { commaList, intIn, type Context } from "../context.ts";

const SCOPES = ["admin", "deploy", "inference"];

/** A tenant id as given, or the id of the tenant with that name. */
async function tenantId(c: Context, tenant: string): Promise<string> {
  if (tenant.startsWith("ten_")) return tenant;
  const list = await c.client().request<{ data: Tenant[] }>("GET", "/admin/tenants");
  return list.data.find((t) => t.name === tenant)?.id ?? tenant;
}

export function registerKeyCommands(program: Command, ctx: (cmd: Command) => Context): void {
  const keys = program.command("keys").description("API keys (admin keys).");

  keys
    .command("create")
    .description("A new API key; its secret is printed this once.")
    .requiredOption("--tenant <id|name>", "the tenant it belongs to")
    .requiredOption("--name <name>", "what it is for")
    .addOption(
      new Option("--scopes <list>", `comma list of ${SCOPES.join(", ")}`).default(["inference"], "inference").argParser((v) => {
        const list = commaList(v);
        for (const s of list) if (!SCOPES.includes(s)) throw new InvalidArgumentError(`'${s}' is not a scope (${SCOPES.join(", ")}).`);
        return list;
      }),
    )
    .addOption(new Option("--tier <tier>", "queue priority of its requests").choices(["priority", "standard", "batch"]))
    .option("--rpm <n>", "requests per minute", intIn(1, 1_000_000_000))
    .option("--tpm <n>", "tokens per minute", intIn(1, 1_000_000_000))
    .option("--max-concurrent <n>", "requests open at once", intIn(1, 1_000_000_000))
    .action(
      async (opts: { tenant: string; name: string; scopes: string[]; tier?: string; rpm?: number; tpm?: number; maxConcurrent?: number }, cmd: Command) => {
        const c = ctx(cmd);
        const body = {
          tenant_id: await tenantId(c, opts.tenant),
          name: opts.name,
          scopes: opts.scopes,
          tier: opts.tier,
          rpm: opts.rpm,
          tpm: opts.tpm,
          max_concurrent: opts.maxConcurrent,
        };
        const k = await c.client().request<ApiKey>("POST", "/admin/api-keys", body);
        c.out.result(
          k,
          () =>
            `${fields([
              ["id", k.id],
              ["tenant", k.tenant_id],
              ["name", k.name],
              ["scopes", k.scopes.join(",")],
              ["tier", k.tier],
            ])}\n\n${pc.bold("secret")}  ${k.secret}\n${pc.yellow("Store it now: it is not shown again.")}`,
        );
      },
    );

  keys
    .command("list")
    .description("API keys, with their display prefix (never the secret).")
    .option("--tenant <id|name>", "one tenant's keys")
    .action(async (opts: { tenant?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const list = await c
        .client()
        .request<{ data: ApiKey[] }>("GET", "/admin/api-keys", undefined, { tenant_id: opts.tenant ? await tenantId(c, opts.tenant) : undefined });
      c.out.result(list, () =>
        table(
          ["ID", "NAME", "TENANT", "PREFIX", "SCOPES", "TIER", "CREATED", "REVOKED"],
          list.data.map((k) => [k.id, k.name, k.tenant_id, k.prefix, k.scopes.join(","), k.tier, ago(k.created_at), k.revoked_at ? ago(k.revoked_at) : null]),
        ),
      );
    });

  keys
    .command("revoke")
    .description("Revoke a key: every gateway refuses it within a second.")
    .argument("<id>", "the key's id (from 'keys list')")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const r = await c.client().request<{ id: string; deleted: boolean }>("DELETE", `/admin/api-keys/${encodeURIComponent(id)}`);
      c.out.result(r, () => `Revoked ${r.id}.`);
    });
}
