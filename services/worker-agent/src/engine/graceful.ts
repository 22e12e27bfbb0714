/**
 * Generation calls that can be stopped without losing the count of what the engine made.
 *
 * Aborting an HTTP request (closing the connection) frees the engine's slot, but the
 * tokens the engine wrote after our last read are lost with the socket, though the
 * engine counted them. A graceful stop half-closes instead: we send FIN and keep
 * reading. The engine sees the client gone and aborts the request (vLLM and engine-sim
 * both treat EOF as a disconnect), then closes its side after flushing what it wrote;
 * reading to EOF we see every chunk the engine produced, and with
 * `stream_options.continuous_usage_stats` the last one carries the engine's own count.
 */
import { Agent, request, type IncomingMessage } from "node:http";

export interface GracefulResponse {
  statusCode: number;
  body: IncomingMessage;
}

export class GracefulClient {
  private readonly agent = new Agent({ keepAlive: true, keepAliveMsecs: 30_000, maxSockets: Infinity, maxFreeSockets: 256 });
  private readonly url: URL;

  constructor(engineUrl: string) {
    this.url = new URL(engineUrl);
  }

  /** POSTs a JSON body with these headers (`engineHeaders`); `signal` aborts hard (connection closed), `stop` half-closes. */
  post(path: string, body: Uint8Array, signal: AbortSignal, stop: AbortSignal, headers: Record<string, string>): Promise<GracefulResponse> {
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.url.hostname,
        port: this.url.port,
        path,
        method: "POST",
        agent: this.agent,
        headers: { ...headers, "content-length": body.byteLength },
      });
      // `signal` is listened to here rather than given to http.request, which would attach an
      // end-of-stream watcher (a dozen listeners) to every request to remove its own listener.
      const abort = (): void => {
        const err = new Error("The operation was aborted", { cause: signal.reason });
        err.name = "AbortError";
        req.destroy(err);
      };
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
      req.once("close", () => signal.removeEventListener("abort", abort));
      const halfClose = (): void => {
        const s = req.socket;
        // Not connected yet: nothing reached the engine, so nothing was generated.
        if (!s || s.connecting || s.destroyed) req.destroy(new Error("stopped before the engine was reached"));
        else s.end();
      };
      req.once("error", (err) => {
        stop.removeEventListener("abort", halfClose);
        reject(err);
      });
      req.once("response", (res) => {
        res.once("close", () => stop.removeEventListener("abort", halfClose));
        resolve({ statusCode: res.statusCode ?? 0, body: res });
      });
      if (stop.aborted) halfClose();
      else stop.addEventListener("abort", halfClose, { once: true });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
