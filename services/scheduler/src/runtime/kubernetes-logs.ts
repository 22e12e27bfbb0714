/**
 * Reads engine pods' logs through the API server's `pods/log` subresource
 * (`GET /api/v1/namespaces/{ns}/pods/{pod}/log?container=&tailLines=&follow=`, which the API
 * server answers from the pod's kubelet): the `engine` and `agent` container of each pod. Not
 * following: the last `tail` lines of each, pod by pod, engine before agent. Following: every
 * container's stream at once, merged as lines arrive, and the pod list read again every few
 * seconds so that pods started meanwhile (a replacement, a scale-up) are followed from their
 * first line. A container with nothing to read yet (the API server or kubelet answers 400:
 * waiting to start) is skipped, and tried again at the next listing while following; a pod
 * that is gone (404, or no longer listed) is left.
 */
import { request as httpsRequest, type RequestOptions } from "node:https";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiException, type KubeConfig } from "@kubernetes/client-node";
import type { LogSource } from "@infera/contracts";
import type { LogLine, LogQuery } from "./driver.ts";
import { MAX_LINE } from "./local-logs.ts";

const CONTAINERS: readonly LogSource[] = ["engine", "agent"];
/** While following: how often the pods are listed again. */
const RELIST_MS = 2_000;
/** While following: lines held for a slow reader before the streams are paused. */
const HIGH_WATER = 1_000;

export interface PodLogsOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The pods to read (names), in the order their logs are read. */
  pods: () => Promise<string[]>;
  query: LogQuery;
  /** The driver's error mapping (`kubernetes: <what>: HTTP 403: …`). */
  error: (what: string, err: unknown) => Error;
}

function cut(line: string): string {
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
}

/** The URL of one container's log: what `kubectl logs <pod> -c <container> [--tail] [-f]` asks for. */
export function podLogPath(namespace: string, pod: string, container: string, o: { tailLines?: number; follow: boolean }): string {
  const q = new URLSearchParams({ container });
  if (o.tailLines !== undefined) q.set("tailLines", String(Math.max(0, Math.floor(o.tailLines))));
  if (o.follow) q.set("follow", "true");
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log?${q.toString()}`;
}

/**
 * One container's log as a response stream; undefined when it has none to give yet (400).
 * Throws an ApiException (with the API server's Status body) for anything else but 200.
 */
async function openLog(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  container: string,
  o: { tailLines?: number; follow: boolean; signal: AbortSignal },
): Promise<IncomingMessage | undefined> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(podLogPath(namespace, pod, container, o), cluster.server);
  const opts: RequestOptions = { method: "GET", headers: { accept: "*/*" } };
  // The kubeconfig's CA, client certificate or token (as the generated API clients use).
  await kc.applyToHTTPSOptions(opts);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === "http:" ? httpRequest : httpsRequest)(url, { ...opts, signal: o.signal }, resolve);
    req.on("error", reject);
    req.end();
  });
  if (res.statusCode === 200) return res;
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks).toString("utf8");
  // 400: nothing to read yet (waiting to start; kwok: no log for it); 404: the pod went meanwhile.
  if (res.statusCode === 400 || res.statusCode === 404) return undefined;
  throw new ApiException(res.statusCode ?? 0, `pods/log of ${pod}`, body, {});
}

export async function* readPodLogs(o: PodLogsOptions): AsyncGenerator<LogLine> {
  const { query } = o;
  // Ended by the reader (abort) or by the iteration's end (a reader that stops iterating).
  const done = new AbortController();
  const signal = AbortSignal.any([query.signal, done.signal]);
  const open = async (pod: string, container: LogSource, tailLines: number | undefined, follow: boolean) => {
    try {
      return await openLog(o.kubeConfig, o.namespace, pod, container, { tailLines, follow, signal });
    } catch (err) {
      if (signal.aborted) return undefined;
      throw o.error(`reading the ${container} log of pod ${pod}`, err);
    }
  };

  if (!query.follow) {
    try {
      for (const pod of await o.pods()) {
        for (const source of CONTAINERS) {
          const res = await open(pod, source, query.tail, false);
          if (!res) continue;
          for await (const line of createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY })) {
            yield { replicaId: pod, source, line: cut(line) };
            if (signal.aborted) return;
          }
        }
      }
    } finally {
      done.abort();
    }
    return;
  }

  // Following: every container's stream feeds one queue.
  const queue: LogLine[] = [];
  const streams = new Map<string, IncomingMessage>();
  /** Streams opened before: a pod seen again after its stream ended is not re-read from the start. */
  const seen = new Set<string>();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  /** Requests sent whose answer has not come: a follow is answered at the container's first line. */
  const opening = new Set<string>();
  const follow = async (pod: string, source: LogSource, first: boolean) => {
    const key = `${pod}/${source}`;
    // A pod listed at the start: its last `tail` lines; one that appears later: all of it is new.
    const res = await open(pod, source, first ? query.tail : undefined, true);
    if (!res) return;
    if (signal.aborted) {
      res.destroy();
      return;
    }
    seen.add(key);
    streams.set(key, res);
    const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (line) => {
      queue.push({ replicaId: pod, source, line: cut(line) });
      if (queue.length >= HIGH_WATER) for (const s of streams.values()) s.pause();
      notify();
    });
    lines.on("close", () => {
      streams.delete(key);
      notify();
    });
  };
  const sync = async (first: boolean) => {
    const pods = await o.pods();
    // A pod that is gone: its stream is ended here (the kubelet's side may not end it).
    for (const [key, res] of streams) if (!pods.includes(key.slice(0, key.lastIndexOf("/")))) res.destroy();
    for (const pod of pods) {
      for (const source of CONTAINERS) {
        const key = `${pod}/${source}`;
        if (seen.has(key) || opening.has(key)) continue;
        // Not awaited: the API server answers a follow only once the container writes a line.
        opening.add(key);
        void follow(pod, source, first)
          .catch((err: unknown) => {
            failure ??= err instanceof Error ? err : new Error(String(err));
            notify();
          })
          .finally(() => opening.delete(key));
      }
    }
  };
  const onAbort = () => {
    for (const s of streams.values()) s.destroy();
    notify();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const relist = (async () => {
    try {
      await sync(true);
      while (!signal.aborted) {
        await sleep(RELIST_MS, undefined, { signal });
        await sync(false);
      }
    } catch (err) {
      if (!signal.aborted) failure ??= err instanceof Error ? err : new Error(String(err));
      notify();
    }
  })();
  try {
    while (!signal.aborted) {
      const line = queue.shift();
      if (line) {
        if (queue.length < HIGH_WATER / 2) for (const s of streams.values()) s.resume();
        yield line;
        continue;
      }
      if (failure) throw failure;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    done.abort();
    signal.removeEventListener("abort", onAbort);
    await relist;
  }
}
