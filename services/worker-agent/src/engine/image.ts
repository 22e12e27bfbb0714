/**
 * An image-generation server in the OpenAI Images API shape (`POST /v1/images/generations`,
 * as LocalAI and other OpenAI-compatible diffusion servers expose it). Not streamed; the
 * usage is the number of images in `data`.
 */
import { normalizeEngineError, notServed, type EngineCall, type EngineSink } from "./adapter.ts";
import { engineHeaders, HttpEngineAdapter, readText } from "./http.ts";
import { relayOpenAIBody } from "./vllm.ts";

export class ImageAdapter extends HttpEngineAdapter {
  readonly kind = "image" as const;

  async run(call: EngineCall, sink: EngineSink): Promise<void> {
    if (call.endpoint !== "image") {
      sink.error(notServed("the image server", call.endpoint));
      return;
    }
    const res = await this.pool.request({ method: "POST", path: "/v1/images/generations", headers: engineHeaders(call), body: call.body, signal: call.signal });
    const text = await readText(res.body);
    if (res.statusCode !== 200) sink.error(normalizeEngineError(res.statusCode, text));
    else relayOpenAIBody(text, sink, true);
  }
}
