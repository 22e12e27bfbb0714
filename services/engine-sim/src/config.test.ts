import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("fills the defaults of a Llama 3 8B vLLM on one GPU", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8000,
      host: "127.0.0.1",
      mode: "vllm",
      task: "chat",
      models: ["meta-llama/Meta-Llama-3-8B-Instruct"],
      maxNumSeqs: 256,
      maxWaiting: 1024,
      maxModelLen: 8192,
      embeddingDim: 1024,
      failureRate: 0,
    });
  });

  it("reads every variable, and serves several names from SIM_MODEL", () => {
    const c = loadConfig({
      PORT: "9000",
      SIM_MODE: "tei",
      SIM_MODEL: "BAAI/bge-large-en-v1.5,bge",
      SIM_TTFT_MS: "0",
      SIM_ITL_MS: "0",
      SIM_FAILURE_RATE: "0.5",
      SIM_FAILURE_KINDS: "disconnect,stall",
    });
    expect(c).toMatchObject({
      port: 9000,
      mode: "tei",
      task: "embeddings",
      models: ["BAAI/bge-large-en-v1.5", "bge"],
      ttftMs: 0,
      itlMs: 0,
      failureRate: 0.5,
      failureKinds: ["disconnect", "stall"],
      maxModelLen: 512,
    });
  });

  it("fails on a bad value, naming the variable", () => {
    expect(() => loadConfig({ SIM_MODE: "triton" })).toThrow(/SIM_MODE/);
    expect(() => loadConfig({ SIM_JITTER: "2" })).toThrow(/SIM_JITTER/);
    expect(() => loadConfig({ SIM_FAILURE_KINDS: "server_error,boom" })).toThrow(/SIM_FAILURE_KINDS.*boom/);
    expect(() => loadConfig({ SIM_MODE: "tei", SIM_TASK: "chat" })).toThrow(/SIM_TASK/);
    expect(() => loadConfig({ SIM_MAX_NUM_SEQS: "0" })).toThrow(/SIM_MAX_NUM_SEQS/);
  });
});
