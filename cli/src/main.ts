/**
 * `infera`: the operator's command line. Commands (commander) for login, deployments
 * (create, list, get, update, stop, start, delete, events, logs, watch, replicas, stats),
 * models, tenants, API keys and usage. Every command prints tables for people or, with
 * `--json`, the API's own JSON; errors go to stderr with the API's message and the field it
 * named; the exit code says what happened (exit-codes.ts). A key is shown only when it is
 * created, never afterwards.
 */
import { Command, CommanderError, Option } from "commander";
import { Client } from "./client.ts";
import { resolveLogin } from "./config.ts";
import { CliError, EXIT, type ExitCode } from "./exit-codes.ts";
import { createOutput } from "./output.ts";
import { registerAccountCommands } from "./commands/account.ts";
import { registerDeployCommands } from "./commands/deploy.ts";
import { registerKeyCommands } from "./commands/keys.ts";
import type { Context, GlobalOptions } from "./context.ts";

const EXIT_HELP = `
Exit codes:
  0  done
  1  the API refused the request (its message and the field it named are printed)
  2  bad flags or arguments (nothing was sent)
  3  not logged in, or the key was refused or lacks a scope
  4  not found (or another tenant's)
  5  the platform could not be reached, or is busy or failing (429, 5xx): try again
  6  watch: the deployment failed, or was stopped or deleted
  7  watch: not running before --timeout

Environment: INFERA_URL and INFERA_TOKEN override what 'infera login' saved.`;

export function buildProgram(ctxFor: (g: GlobalOptions) => Context): Command {
  const program = new Command("infera")
    .description("Operate an Infera platform: deploy models, watch them come up, read their logs and stats, manage keys and usage.")
    .version("0.1.0")
    .option("--json", "print the API's JSON (NDJSON for streams) instead of tables")
    .addOption(new Option("--url <url>", "the gateway's base URL (default: INFERA_URL, else the one saved by login)"))
    .addHelpText("after", EXIT_HELP)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  const ctx = (cmd: Command) => ctxFor(cmd.optsWithGlobals<GlobalOptions>());
  registerAccountCommands(program, ctx);
  registerDeployCommands(program, ctx);
  registerKeyCommands(program, ctx);
  // Subcommands throw too, instead of exiting the process.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) c.exitOverride().showHelpAfterError("(run with --help for usage)");
  return program;
}

/** Runs one command line; resolves to the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let json = argv.includes("--json");
  let code: ExitCode = EXIT.ok;
  const program = buildProgram((g) => {
    json = g.json === true;
    const out = createOutput(json);
    let client: Client | undefined;
    return {
      out,
      setExit: (c) => {
        code = c;
      },
      globals: g,
      env,
      client: () => {
        client ??= new Client(resolveLogin({ url: g.url }, env));
        return client;
      },
    };
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; anything else commander refused is a usage error (it printed why).
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help" ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      if (json) process.stderr.write(`${JSON.stringify(err.body ?? { error: { message: err.message } })}\n`);
      else process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return EXIT.refused;
  }
}
