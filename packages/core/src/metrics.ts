import { createServer } from "node:http";
import { Registry, collectDefaultMetrics } from "prom-client";

/** One prom-client Registry per process, with Node's default metrics under the service prefix. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: `${service.replace(/-/g, "_")}_` });
  return registry;
}

export interface MetricsServer {
  port: number;
  close(): void;
}

const READY_TIMEOUT_MS = 2_000;

/** What a service's readiness check says: ready, or not and why. */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** An extra GET route of the metrics port: what it answers. */
export type MetricsRoute = () => Promise<{ status: number; contentType?: string; body: string }>;

/**
 * `/metrics`, `/healthz` and `/readyz` on their own port, for services without an HTTP API
 * (and `routes`, exact paths, for what else a service shows there).
 * `/healthz` is 200 while the process answers; `/readyz` is 200 `{"status":"ready"}` when
 * `ready()` says so, else 503 `{"status":"unavailable","reason":…}` (a check that throws is
 * not ready, with its message as the reason; one that takes longer than 2 s is not ready).
 */
export async function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
  ready: () => Promise<Readiness>,
  routes: Record<string, MetricsRoute> = {},
): Promise<MetricsServer> {
  const server = createServer(async (req, res) => {
    const route = Object.hasOwn(routes, req.url ?? "") ? routes[req.url ?? ""] : undefined;
    if (route) {
      const r = await route().catch((err: unknown) => ({ status: 503, contentType: "text/plain", body: (err as Error).message ?? String(err) }));
      res.statusCode = r.status;
      if (r.contentType) res.setHeader("content-type", r.contentType);
      res.end(r.body);
    } else if (req.url === "/metrics") {
      res.setHeader("content-type", registry.contentType);
      res.end(await registry.metrics());
    } else if (req.url === "/healthz") {
      res.end("ok");
    } else if (req.url === "/readyz") {
      // A store that does not answer makes the check hang (clients queue commands while they reconnect): bounded.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<Readiness>((resolve) => {
        timer = setTimeout(() => resolve({ ready: false, reason: `the readiness check took longer than ${READY_TIMEOUT_MS} ms` }), READY_TIMEOUT_MS);
      });
      const checked = ready().catch((err: unknown): Readiness => ({ ready: false, reason: (err as Error).message ?? String(err) }));
      const r = await Promise.race([checked, late]);
      clearTimeout(timer);
      res.statusCode = r.ready ? 200 : 503;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(r.ready ? { status: "ready" } : { status: "unavailable", reason: r.reason }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
  return { port: bound, close: () => server.close() };
}
