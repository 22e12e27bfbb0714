/**
 * Portkey's open-source AI gateway (`@portkey-ai/gateway`, the npm package's own
 * server build) as the peer: its own Node process, headless, pointed at the same
 * engine-sim processes as an OpenAI-compatible provider with a custom host.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "@infera/testkit";

const SERVER = fileURLToPath(new URL("../node_modules/@portkey-ai/gateway/build/start-server.js", import.meta.url));

/**
 * Portkey's streaming path does `new Response(stream, upstreamResponse)` and then appends
 * headers; under @hono/node-server 1.19's lightweight Response that reuses the upstream
 * fetch response's (immutable) Headers, and every stream fails with "immutable" on
 * Node 20. Preloaded: upstream responses get mutable headers (same body stream, no copy).
 */
const NODE20_SHIM =
  "data:text/javascript,const f=globalThis.fetch,R=Response,H=Headers;" +
  "globalThis.fetch=async(...a)=>{const r=await f(...a);return new R(r.body,{status:r.status,statusText:r.statusText,headers:new H(r.headers)})};";

export interface Peer {
  baseURL: string;
  pid: number;
  /** Headers that route one request to an engine (`http://127.0.0.1:<port>`). */
  headersFor(engineUrl: string): Record<string, string>;
  stop(): Promise<void>;
}

export async function startPortkey(): Promise<Peer> {
  const port = await freePort();
  let out = "";
  const child: ChildProcess = spawn(process.execPath, ["--import", NODE20_SHIM, SERVER, `--port=${port}`, "--headless"], {
    env: { ...process.env, NODE_ENV: "production" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr?.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const baseURL = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Portkey's gateway exited: ${out}`);
    try {
      await fetch(`${baseURL}/`);
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`Portkey's gateway did not listen in time: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    baseURL,
    pid: child.pid!,
    headersFor: (engineUrl) => ({
      "content-type": "application/json",
      authorization: "Bearer sk-none",
      "x-portkey-provider": "openai",
      "x-portkey-custom-host": `${engineUrl}/v1`,
    }),
    stop,
  };
}
