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

/** `/metrics`, `/healthz` and `/readyz` on their own port, for services without an HTTP API. */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = createServer(async (req, res) => {
    if (req.url === "/metrics") {
      res.setHeader("content-type", registry.contentType);
      res.end(await registry.metrics());
    } else if (req.url === "/healthz" || req.url === "/readyz") {
      res.end("ok");
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
