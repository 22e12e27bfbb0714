/**
 * engine-sim's configuration from the environment. `loadConfig(env)` is called only from
 * main.ts; a bad value throws a ConfigError naming the variable.
 */
import { ENGINE_KINDS, type EngineKind, TASKS, type Task } from "@infera/contracts/names";
import { ConfigError, int, num, oneOf, str } from "@infera/core";
import { type FaultKind, parseFaultKinds } from "./faults.ts";

/** The engines engine-sim imitates: the platform's engine kinds, one API each. */
export const MODES = ENGINE_KINDS;
export type Mode = EngineKind;
export { TASKS, type Task };

export interface SimConfig {
  /** Which engine's HTTP API to speak. */
  mode: Mode;
  /** What the served model does; vllm mode serves /v1/embeddings (only) when "embeddings". */
  task: Task;
  /** Served model name(s); the first is the primary, requests naming another model get 404. */
  models: readonly string[];
  ttftMs: number;
  itlMs: number;
  prefillUsPerToken: number;
  /** Relative standard deviation of every latency draw, clamped to ±2σ. */
  jitter: number;
  /** Latency multiplier when running sequences reach maxNumSeqs. */
  loadFactor: number;
  maxNumSeqs: number;
  maxWaiting: number;
  kvCapacityTokens: number;
  maxModelLen: number;
  startupDelayMs: number;
  embeddingDim: number;
  /** Milliseconds to "generate" one image. */
  imageMs: number;
  failureRate: number;
  failureKinds: readonly FaultKind[];
  /** TEI's --max-client-batch-size. */
  maxClientBatchSize: number;
  /** Input modalities the model takes besides text (`image`, `audio`, `file`); others are vLLM's 400. */
  modalities: readonly string[];
  /** Prompt tokens one image stands for (its placeholder tokens: 576 for LLaVA-1.5). */
  imageTokens: number;
  /** Prompt tokens one audio clip stands for. */
  audioTokens: number;
  /** Randomness for jitter and fault draws (injected in tests). */
  random?: () => number;
  /** Monotonic clock in ms (injected in tests). */
  clock?: () => number;
  /** Log level for the sim's pino logger ("silent" in tests). */
  logLevel?: string;
}

export const DEFAULT_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
export const DEFAULT_EMBEDDING_MODEL = "BAAI/bge-large-en-v1.5";
export const DEFAULT_IMAGE_MODEL = "stabilityai/sdxl-turbo";

const defaultTask = (mode: Mode): Task => (mode === "tei" ? "embeddings" : mode === "image" ? "images" : "chat");

/** What createEngineSim takes: any subset of SimConfig; the rest comes from defaultConfig. */
export type EngineSimOptions = Partial<SimConfig>;

/** Options with every default filled in; `overrides` wins. */
export function defaultConfig(overrides: EngineSimOptions = {}): SimConfig {
  const mode = overrides.mode ?? "vllm";
  const task = overrides.task ?? defaultTask(mode);
  const model = task === "embeddings" ? DEFAULT_EMBEDDING_MODEL : task === "images" ? DEFAULT_IMAGE_MODEL : DEFAULT_MODEL;
  return {
    mode,
    task,
    models: [model],
    ttftMs: 60,
    itlMs: 12,
    prefillUsPerToken: 40,
    jitter: 0.1,
    loadFactor: 2,
    maxNumSeqs: 256,
    maxWaiting: 1024,
    kvCapacityTokens: 200_000,
    maxModelLen: task === "embeddings" ? 512 : 8192,
    startupDelayMs: 0,
    embeddingDim: 1024,
    imageMs: 300,
    failureRate: 0,
    failureKinds: [],
    maxClientBatchSize: 32,
    modalities: ["text"],
    imageTokens: 576,
    audioTokens: 300,
    logLevel: "info",
    ...overrides,
  };
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env): SimConfig & { port: number; host: string } {
  const mode = oneOf(env, "SIM_MODE", MODES, "vllm");
  const task = oneOf(env, "SIM_TASK", TASKS, defaultTask(mode));
  if (mode === "tei" && task !== "embeddings") throw new ConfigError(`SIM_TASK must be embeddings when SIM_MODE=tei, got ${JSON.stringify(task)}`);
  if (mode === "image" && task !== "images") throw new ConfigError(`SIM_TASK must be images when SIM_MODE=image, got ${JSON.stringify(task)}`);
  if (mode === "vllm" && task === "images") throw new ConfigError("SIM_TASK=images needs SIM_MODE=image");
  if (mode === "tgi" && task !== "chat") throw new ConfigError(`SIM_TASK must be chat when SIM_MODE=tgi, got ${JSON.stringify(task)}`);
  const defaults = defaultConfig({ mode, task });
  let failureKinds: FaultKind[];
  try {
    failureKinds = parseFaultKinds(str(env, "SIM_FAILURE_KINDS", "server_error"));
  } catch (err) {
    throw new ConfigError(`SIM_FAILURE_KINDS: ${(err as Error).message}`);
  }
  const models = str(env, "SIM_MODEL", defaults.models[0] ?? DEFAULT_MODEL)
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  if (models.length === 0) throw new ConfigError("SIM_MODEL must name at least one model");
  return {
    ...defaults,
    port: int(env, "PORT", 8000, 0, 65535),
    host: str(env, "HOST", "127.0.0.1"),
    models,
    ttftMs: num(env, "SIM_TTFT_MS", defaults.ttftMs, 0, 600_000),
    itlMs: num(env, "SIM_ITL_MS", defaults.itlMs, 0, 60_000),
    prefillUsPerToken: num(env, "SIM_PREFILL_US_PER_TOKEN", defaults.prefillUsPerToken, 0, 1_000_000),
    jitter: num(env, "SIM_JITTER", defaults.jitter, 0, 0.5),
    loadFactor: num(env, "SIM_LOAD_FACTOR", defaults.loadFactor, 1, 100),
    maxNumSeqs: int(env, "SIM_MAX_NUM_SEQS", defaults.maxNumSeqs, 1, 1_000_000),
    maxWaiting: int(env, "SIM_MAX_WAITING", defaults.maxWaiting, 0, 10_000_000),
    kvCapacityTokens: int(env, "SIM_KV_CAPACITY_TOKENS", defaults.kvCapacityTokens, 16, 1_000_000_000),
    maxModelLen: int(env, "SIM_MAX_MODEL_LEN", defaults.maxModelLen, 16, 10_000_000),
    startupDelayMs: int(env, "SIM_STARTUP_DELAY_MS", 0, 0, 86_400_000),
    embeddingDim: int(env, "SIM_EMBEDDING_DIM", defaults.embeddingDim, 1, 65_536),
    imageMs: num(env, "SIM_IMAGE_MS", defaults.imageMs, 0, 600_000),
    failureRate: num(env, "SIM_FAILURE_RATE", 0, 0, 1),
    failureKinds,
    maxClientBatchSize: int(env, "SIM_MAX_CLIENT_BATCH_SIZE", defaults.maxClientBatchSize, 1, 1_000_000),
    modalities: str(env, "SIM_MODALITIES", "text")
      .split(",")
      .map((m) => m.trim())
      .filter((m) => m !== ""),
    imageTokens: int(env, "SIM_IMAGE_TOKENS", defaults.imageTokens, 1, 100_000),
    audioTokens: int(env, "SIM_AUDIO_TOKENS", defaults.audioTokens, 1, 100_000),
    logLevel: str(env, "LOG_LEVEL", "info"),
  };
}
