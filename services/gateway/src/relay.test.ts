/**
 * The SSE writer on a real HTTP/1.1 connection, read as raw bytes: the frames after the first
 * go to the socket framed by the relay itself, so the chunked encoding, the order of frames and
 * the connection's reuse for the next request are checked on the wire.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SseRelay } from "./relay.ts";

const chunk = (i: number, finish: string | null) =>
  Buffer.from(
    `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"t${i}"},"logprobs":null,"finish_reason":${finish === null ? "null" : `"${finish}"`}}]}`,
  );

let server: Server | undefined;
afterEach(() => server?.close());

/** A server whose every request is a stream of `n` chunks, one per event-loop turn (and two in one turn), then usage. */
async function start(n: number, includeUsage: boolean): Promise<number> {
  server = createServer((req, res) => {
    req.resume();
    const relay = new SseRelay(res, { "x-request-id": "r1" }, includeUsage, () => {});
    let i = 0;
    const next = () => {
      if (i < n) {
        relay.chunk(chunk(i, i === n - 1 ? "stop" : null));
        i++;
        // Two chunks in one turn: they leave in one frame.
        if (i === 2 && i < n) relay.chunk(chunk(i++, i === n ? "stop" : null));
        setTimeout(next, 2);
        return;
      }
      relay.usage({ prompt_tokens: 3, completion_tokens: n, total_tokens: 3 + n, estimated_cost: 0 });
    };
    next();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** Reads one chunked response from the socket: its head and its body with the chunked framing removed. */
function readResponse(socket: Socket): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    const onData = (b: Buffer) => {
      raw = Buffer.concat([raw, b]);
      const headEnd = raw.indexOf("\r\n\r\n");
      if (headEnd === -1) return;
      let pos = headEnd + 4;
      const body: Buffer[] = [];
      for (;;) {
        const line = raw.indexOf("\r\n", pos);
        if (line === -1) return;
        const size = Number.parseInt(raw.subarray(pos, line).toString("latin1"), 16);
        if (Number.isNaN(size)) return reject(new Error(`bad chunk size at ${pos}`));
        if (raw.length < line + 2 + size + 2) return;
        if (raw.subarray(line + 2 + size, line + 4 + size).toString() !== "\r\n") return reject(new Error("chunk not followed by CRLF"));
        if (size === 0) {
          socket.off("data", onData);
          resolve({ head: raw.subarray(0, headEnd).toString(), body: Buffer.concat(body).toString() });
          return;
        }
        body.push(raw.subarray(line + 2, line + 2 + size));
        pos = line + 4 + size;
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

describe("SseRelay on the wire", () => {
  it("writes every event in order in valid chunked encoding, holds the finish chunk for the usage, and keeps the connection for the next request", async () => {
    const n = 6;
    const port = await start(n, false);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    const expected =
      Array.from({ length: n - 1 }, (_, i) => `data: ${chunk(i, null)}\n\n`).join("") +
      `data: ${JSON.stringify({ ...JSON.parse(chunk(n - 1, "stop").toString()), usage: { prompt_tokens: 3, completion_tokens: n, total_tokens: 3 + n, estimated_cost: 0 } })}\n\n` +
      "data: [DONE]\n\n";
    for (let round = 0; round < 2; round++) {
      const reading = readResponse(socket);
      socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      const { head, body } = await reading;
      expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(head.toLowerCase()).toContain("transfer-encoding: chunked");
      expect(head.toLowerCase()).toContain("content-type: text/event-stream; charset=utf-8");
      expect(body).toBe(expected);
    }
    socket.destroy();
  });

  it("with include_usage, the usage-only chunk after the last choice chunk, then [DONE]", async () => {
    const port = await start(3, true);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    const reading = readResponse(socket);
    socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    const { body } = await reading;
    const events = body.split("\n\n").filter(Boolean);
    expect(events).toHaveLength(5);
    expect(events[2]).toBe(`data: ${chunk(2, "stop")}`);
    expect(JSON.parse(events[3]!.slice(6))).toEqual({
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6, estimated_cost: 0 },
    });
    expect(events[4]).toBe("data: [DONE]");
    socket.destroy();
  });
});
