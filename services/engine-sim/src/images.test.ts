import { crc32, inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineSim } from "./server.ts";
import { postJson, startSim } from "./test-client.ts";

interface ImagesResponse {
  created: number;
  data: { b64_json: string }[];
}

/** Parses a PNG's chunks, checking the signature, chunk order and every chunk's CRC as a decoder would. */
function readPng(png: Buffer): { width: number; height: number; bitDepth: number; colorType: number; pixels: Buffer } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  let at = 8;
  const idat: Buffer[] = [];
  let ihdr: Buffer | null = null;
  const types: string[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString("ascii", at + 4, at + 8);
    types.push(type);
    const data = png.subarray(at + 8, at + 8 + len);
    expect(png.readUInt32BE(at + 8 + len)).toBe(crc32(png.subarray(at + 4, at + 8 + len)));
    if (type === "IHDR") ihdr = data;
    if (type === "IDAT") idat.push(data);
    at += 12 + len;
  }
  expect(types[0]).toBe("IHDR");
  expect(types[types.length - 1]).toBe("IEND");
  if (ihdr === null) throw new Error("no IHDR");
  return {
    width: ihdr.readUInt32BE(0),
    height: ihdr.readUInt32BE(4),
    bitDepth: ihdr[8] ?? 0,
    colorType: ihdr[9] ?? 0,
    pixels: inflateSync(Buffer.concat(idat)),
  };
}

let sim: EngineSim;
beforeAll(async () => {
  sim = await startSim({ mode: "image" });
});
afterAll(async () => {
  await sim.stop();
});

describe("image generations", () => {
  it("returns real PNGs of exactly the asked size, deterministic for the prompt and seed", async () => {
    const ask = { prompt: "a lighthouse at dusk", size: "1024x768", n: 2, response_format: "b64_json", seed: 4 };
    const res = await postJson(`${sim.url}/v1/images/generations`, ask);
    expect(res.status).toBe(200);
    const body = (await res.json()) as ImagesResponse;
    expect(body.data).toHaveLength(2);
    const png = Buffer.from(body.data[0]?.b64_json ?? "", "base64");
    const img = readPng(png);
    expect(img).toMatchObject({ width: 1024, height: 768, bitDepth: 8, colorType: 2 });
    expect(img.pixels.length).toBe((1024 * 3 + 1) * 768);
    const again = (await (await postJson(`${sim.url}/v1/images/generations`, ask)).json()) as ImagesResponse;
    expect(again.data[0]?.b64_json).toBe(body.data[0]?.b64_json);
    expect(body.data[1]?.b64_json).not.toBe(body.data[0]?.b64_json);
    const other = (await (await postJson(`${sim.url}/v1/images/generations`, { ...ask, prompt: "a cat" })).json()) as ImagesResponse;
    expect(other.data[0]?.b64_json).not.toBe(body.data[0]?.b64_json);
    const small = (await (await postJson(`${sim.url}/v1/images/generations`, { prompt: "x", size: "256x256" })).json()) as ImagesResponse;
    expect(readPng(Buffer.from(small.data[0]?.b64_json ?? "", "base64"))).toMatchObject({ width: 256, height: 256 });
  });

  it("rejects an unsupported size or a missing prompt with 400", async () => {
    const res = await postJson(`${sim.url}/v1/images/generations`, { prompt: "x", size: "1000x1000" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe("size");
    expect((await postJson(`${sim.url}/v1/images/generations`, { size: "256x256" })).status).toBe(400);
  });
});
