/**
 * An OTLP/HTTP endpoint in a process of its own that accepts every export and discards it
 * (counting bytes), so a bench measures what exporting costs the platform, not what decoding
 * costs, and the load generator's process is not slowed by it.
 */
import { spawn } from "node:child_process";

const SINK = `const http=require("http");let n=0;const s=http.createServer((q,r)=>{q.on("data",(c)=>{n+=c.length});q.on("end",()=>{r.writeHead(200,{"content-type":"application/x-protobuf"});r.end()})});
s.listen(0,"127.0.0.1",()=>console.log(s.address().port));process.on("SIGTERM",()=>{console.log(n);process.exit(0)});`;

export interface OtlpSink {
  endpoint: string;
  /** Stops it; the bytes it received. */
  stop(): Promise<number>;
}

export async function startOtlpSink(): Promise<OtlpSink> {
  const child = spawn(process.execPath, ["-e", SINK], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      const bytes = new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
      child.kill("SIGTERM");
      return bytes;
    },
  };
}
