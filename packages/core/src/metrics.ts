import { Registry, collectDefaultMetrics } from "prom-client";

/** One prom-client Registry per process, with Node's default metrics under the service prefix. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: `${service.replace(/-/g, "_")}_` });
  return registry;
}
