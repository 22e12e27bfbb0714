/**
 * `login`, `logout`, `models`, `usage` and `tenants`: who you are to the platform and what
 * it serves and counts for you.
 */
import type { Command } from "commander";
import { Option } from "commander";
import pc from "picocolors";
import { Client } from "../client.ts";
import { configFile, normalizeUrl, removeLogin, saveLogin } from "../config.ts";
import { CliError, EXIT } from "../exit-codes.ts";
import { ago, table } from "../output.ts";
import type { Tenant } from "../api-types.ts";
import type { Context } from "../context.ts";

/** The key for `login`: INFERA_TOKEN, else one line from stdin (typed without echo on a terminal). */
async function readKey(env: NodeJS.ProcessEnv): Promise<string> {
  if (env.INFERA_TOKEN) return env.INFERA_TOKEN.trim();
  const stdin = process.stdin;
  if (stdin.isTTY) {
    process.stderr.write("API key: ");
    stdin.setRawMode(true);
    stdin.resume();
    let key = "";
    try {
      await new Promise<void>((resolve, reject) => {
        stdin.on("data", (b: Buffer) => {
          for (const ch of b.toString("utf8")) {
            if (ch === "\r" || ch === "\n") return resolve();
            if (ch === "\u0003") return reject(new CliError("cancelled", EXIT.usage));
            if (ch === "\u007f") key = key.slice(0, -1);
            else key += ch;
          }
        });
      });
    } finally {
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
    }
    return key.trim();
  }
  let text = "";
  for await (const chunk of stdin) text += String(chunk);
  return text.split("\n")[0]?.trim() ?? "";
}

export function registerAccountCommands(program: Command, ctx: (cmd: Command) => Context): void {
  program
    .command("login")
    .description("Check an API key against the platform and save it with the base URL (in your config directory, mode 0600).")
    .addHelpText(
      "after",
      "\nThe base URL is --url, else INFERA_URL, else http://localhost:8080. The key is read from INFERA_TOKEN, else from stdin\n(typed without echo on a terminal); it is never printed.",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const url = normalizeUrl(c.globals.url ?? c.env.INFERA_URL ?? "http://localhost:8080");
      const key = await readKey(c.env);
      if (!/^sk-[\w-]{8,}$/.test(key)) throw new CliError("That is not an API key (they start with 'sk-').", EXIT.usage);
      // Any key may list models: a refused key is a 401 here, before anything is saved.
      await new Client({ url, key }).request("GET", "/v1/openai/models");
      const file = saveLogin({ url, key }, c.env);
      c.out.result({ url, config: file }, () => `Logged in to ${url}; saved in ${file} (readable only by you).`);
    });

  program
    .command("logout")
    .description("Forget the saved base URL and key.")
    .action(async (_opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const removed = removeLogin(c.env);
      c.out.result({ removed, config: configFile(c.env) }, () => (removed ? `Removed ${configFile(c.env)}.` : "Not logged in."));
    });

  program
    .command("models")
    .description("The models your key can call (the OpenAI API's model list).")
    .action(async (_opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const list = await c.client().request<{ data: { id: string; owned_by: string; created: number }[] }>("GET", "/v1/openai/models");
      c.out.result(list, () =>
        table(
          ["MODEL", "OWNED BY", "CREATED"],
          list.data.map((m) => [m.id, m.owned_by, ago(m.created)]),
        ),
      );
    });

  program
    .command("usage")
    .description("Requests, tokens and cost per model, day or key.")
    .addOption(new Option("--group-by <group>", "what each row sums").choices(["model", "day", "key"]).default("model"))
    .option("--from <time>", "start: unix seconds or an ISO 8601 date (default 30 days ago)")
    .option("--to <time>", "end (default now)")
    .option("--tenant <id>", "another tenant's usage (admin keys)")
    .action(async (opts: { groupBy: string; from?: string; to?: string; tenant?: string }, cmd: Command) => {
      const c = ctx(cmd);
      const u = await c.client().request<{
        from: string;
        to: string;
        group_by: string;
        data: Record<string, string | number>[];
        total: Record<string, number>;
      }>("GET", "/v1/usage", undefined, { group_by: opts.groupBy, from: opts.from, to: opts.to, tenant_id: opts.tenant });
      const field = opts.groupBy === "key" ? "key_id" : opts.groupBy;
      c.out.result(u, () => {
        const rows = u.data.map((r) => [r[field], r.requests, r.prompt_tokens, r.completion_tokens, r.images, `$${Number(r.cost_usd).toFixed(6)}`]);
        rows.push([
          pc.bold("total"),
          u.total.requests,
          u.total.prompt_tokens,
          u.total.completion_tokens,
          u.total.images,
          `$${Number(u.total.cost_usd).toFixed(6)}`,
        ]);
        return `${pc.dim(`${u.from} → ${u.to}`)}\n${table([field.toUpperCase(), "REQUESTS", "PROMPT", "COMPLETION", "IMAGES", "COST"], rows)}`;
      });
    });

  const tenants = program.command("tenants").description("Tenants (admin keys).");
  tenants
    .command("list")
    .description("Every tenant.")
    .action(async (_opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const list = await c.client().request<{ data: Tenant[] }>("GET", "/admin/tenants");
      c.out.result(list, () =>
        table(
          ["ID", "NAME", "CREATED"],
          list.data.map((t) => [t.id, t.name, ago(t.created_at)]),
        ),
      );
    });
  tenants
    .command("create")
    .description("A new tenant.")
    .argument("<name>", "letters, digits, '.', '_', '-'")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const t = await c.client().request<Tenant>("POST", "/admin/tenants", { name });
      c.out.result(t, () => `Created tenant ${t.name} (${t.id}).`);
    });
}
