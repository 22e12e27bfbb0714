/**
 * An image-generation server in the OpenAI Images API shape (`POST /v1/images/generations`,
 * as LocalAI and other OpenAI-compatible diffusion servers expose it): `{prompt, size: "WxH",
 * n, response_format: "b64_json" | "url", seed}` → `{created, data: [{b64_json, revised_prompt}]}`.
 * Each image is a real PNG of exactly the asked size, a pattern seeded by the prompt and seed.
 */
import type { SimContext } from "./context.ts";
import { SimError } from "./errors.ts";
import { checkModel } from "./openai-request.ts";
import { encodePng } from "./png.ts";
import { createRng, hashString, mix } from "./random.ts";
import { type Body, optInt, optString } from "./validate.ts";

export const IMAGE_SIZES = ["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"] as const;

/** The RGB pixels of the image for `prompt` and `seed`: two gradients and soft rings. */
export function renderImage(prompt: string, seed: number, width: number, height: number): Uint8Array {
  const rng = createRng(mix(hashString(prompt), seed));
  const c = Array.from({ length: 9 }, () => Math.floor(rng() * 256));
  const cx = rng() * width;
  const cy = rng() * height;
  const period = 16 + Math.floor(rng() * 48);
  const px = new Uint8Array(width * height * 3);
  let i = 0;
  for (let y = 0; y < height; y++) {
    const fy = y / height;
    const dy = (y - cy) * (y - cy);
    for (let x = 0; x < width; x++) {
      const fx = x / width;
      const ring = (Math.sqrt((x - cx) * (x - cx) + dy) / period) % 1 < 0.5 ? 24 : 0;
      px[i++] = ((c[0] as number) * (1 - fx) + (c[3] as number) * fx + ring) & 0xff;
      px[i++] = ((c[1] as number) * (1 - fy) + (c[4] as number) * fy + ring) & 0xff;
      px[i++] = ((c[2] as number) * (1 - fx) * fy + (c[5] as number) * fx + (c[6] as number) * (1 - fy) * 0.2) & 0xff;
    }
  }
  return px;
}

export interface ImagesAnswer {
  body: unknown;
  delayMs: number;
}

export function imageGenerations(ctx: SimContext, body: Body): ImagesAnswer {
  checkModel(ctx.config, body);
  const prompt = optString(body, "prompt");
  if (prompt === undefined || prompt.length === 0) throw new SimError("invalid_request", "prompt: Field required", "prompt");
  const n = optInt(body, "n", 1, 10) ?? 1;
  const size = optString(body, "size") ?? "1024x1024";
  if (!(IMAGE_SIZES as readonly string[]).includes(size)) {
    throw new SimError("invalid_request", `Invalid size ${JSON.stringify(size)}; supported sizes: ${IMAGE_SIZES.join(", ")}`, "size");
  }
  const format = optString(body, "response_format") ?? "b64_json";
  if (format !== "b64_json" && format !== "url") {
    throw new SimError("invalid_request", `response_format must be "b64_json" or "url", got ${JSON.stringify(format)}`, "response_format");
  }
  const seed = optInt(body, "seed") ?? 0;
  const [w, h] = size.split("x").map(Number) as [number, number];
  const data = Array.from({ length: n }, (_, i) => {
    const b64 = encodePng(w, h, renderImage(prompt, seed + i, w, h)).toString("base64");
    return format === "url" ? { url: `data:image/png;base64,${b64}`, revised_prompt: prompt } : { b64_json: b64, revised_prompt: prompt };
  });
  ctx.counters.imageCalls++;
  ctx.counters.images += n;
  return { body: { created: Math.floor(Date.now() / 1000), data }, delayMs: ctx.config.imageMs * n };
}
