/**
 * A burst of connections that lands while the gateway's event loop is busy waits in the
 * kernel's accept queue, not on the floor. With Node's default backlog (511) the kernel drops
 * the SYNs past it (the client retries after 1 s, then 3 s, …) or resets connections whose
 * handshake it had completed: the full benchmark saw 237 of 2,000 streams end in ECONNRESET.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "@infera/core";
import { createTestDatabase, flushPrefix, TEST_REDIS_URL, testRedisPrefix, type TestDatabase } from "@infera/testkit";
import { startGateway, type RunningGateway } from "./app.ts";
import { loadConfig } from "./config.ts";

/** Well past Node's default backlog of 511, below the 4,096 the gateway asks for. */
const BURST = 1500;

let db: TestDatabase;
let gateway: RunningGateway;
let port: number;
const prefix = testRedisPrefix("accept-burst");

beforeAll(async () => {
  db = await createTestDatabase("accept_burst");
  const config = loadConfig({ DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, REDIS_PREFIX: prefix, PORT: "0", HOST: "127.0.0.1" });
  gateway = await startGateway(config, createLogger({ service: "test", level: "silent" }));
  port = (gateway.app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await gateway?.stop();
  await flushPrefix(prefix);
  await db?.drop();
});

it(`answers ${BURST} connections opened while its event loop cannot accept, none retried or reset`, async () => {
  const t0 = performance.now();
  const sockets: Socket[] = [];
  const outcomes: Promise<{ connectedMs: number; status: string }>[] = [];
  // All connects are issued before the event loop turns (the gateway runs in this process, so
  // it accepts none of them until the loop is done): the kernel queues every handshake.
  for (let i = 0; i < BURST; i++) {
    const s = connect({ port, host: "127.0.0.1" });
    sockets.push(s);
    outcomes.push(
      new Promise((resolve, reject) => {
        let connectedMs = 0;
        let head = "";
        s.once("connect", () => {
          connectedMs = performance.now() - t0;
          s.write("GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
        });
        s.on("data", (b: Buffer) => (head += b.toString("latin1")));
        s.once("error", reject);
        s.once("close", () => resolve({ connectedMs, status: head.split("\r\n", 1)[0] ?? "" }));
      }),
    );
  }
  try {
    const results = await Promise.all(outcomes);
    expect(results.filter((r) => r.status !== "HTTP/1.1 200 OK")).toEqual([]);
    // A SYN the kernel dropped is sent again after 1 s: every connection was taken on the first.
    const late = results.filter((r) => r.connectedMs >= 1000).length;
    expect(late, "connections that waited for a SYN retransmission").toBe(0);
  } finally {
    for (const s of sockets) s.destroy();
  }
}, 30_000);
